import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Either, Exit, Fiber, Layer, Metric, Queue, Stream, TestClock } from "effect"
import * as FakeLlm from "../src/FakeLlm.js"
import { approximateMessageTokens } from "../src/internal/approximateTokens.js"
import { ChatChunk, ChatRequest, ChatResponse } from "../src/Llm.js"
import * as LlmClient from "../src/LlmClient.js"
import * as LlmError from "../src/LlmError.js"
import * as LlmMetrics from "../src/LlmMetrics.js"
import * as TokenBudget from "../src/TokenBudget.js"
import * as Tokenizer from "../src/Tokenizer.js"

const request = (options: {
  readonly content?: string
  readonly maxTokens?: number | undefined
  readonly user?: string
  readonly model?: string
} = {}) =>
  new ChatRequest({
    model: options.model ?? "gpt-4o-mini",
    messages: [{ role: "user", content: options.content ?? "hi" }],
    maxTokens: "maxTokens" in options ? options.maxTokens : 100,
    user: options.user
  })

/** Prompt tokens of a request as the approximate Tokenizer (and FakeLlm's default usage) count them. */
const promptOf = (r: ChatRequest) => approximateMessageTokens(r.messages)

const services = Layer.mergeAll(TokenBudget.layerStoreMemory, TokenBudget.layerAlerts, Tokenizer.layerApproximate)

/** Builds budgets over a FakeLlm; everything shares the store provided to the test. */
const setup = (script: FakeLlm.Script, ...options: ReadonlyArray<TokenBudget.Options>) =>
  Effect.gen(function* () {
    const budgets = yield* Effect.forEach(options, (o) => TokenBudget.policy(o))
    const fake = yield* FakeLlm.make(script)
    return { budgets, client: LlmClient.decorate(fake.client, ...budgets), calls: fake.recorder.calls }
  })

const rejections = (budget: string) =>
  Effect.map(Metric.value(Metric.tagged(LlmMetrics.budgetRejections, "budget", budget)), (s) => s.count)

const usage = (inputTokens: number, outputTokens: number) => ({ inputTokens, outputTokens })

describe("TokenBudget.policy", () => {
  it.effect("refuses a call whose worst case does not fit, without calling the provider", () =>
    Effect.gen(function* () {
      const { calls, client } = yield* setup(FakeLlm.reply("ok"), {
        scope: "global",
        limit: { tokens: 1000 },
        period: "day",
        name: "refuse-test"
      })
      const big = request({ maxTokens: 2000 })
      const error = yield* Effect.flip(client.complete(big))
      expect(error).toBeInstanceOf(LlmError.BudgetExceeded)
      expect(error).toMatchObject({
        scope: "refuse-test",
        requested: promptOf(big) + 2000,
        remaining: 1000,
        unit: "tokens",
        model: "gpt-4o-mini"
      })
      expect(yield* calls).toHaveLength(0)
      expect(yield* rejections("refuse-test")).toBe(1)
    }).pipe(Effect.provide(services)))

  it.effect("commits the actual usage and releases the rest of the reservation", () =>
    Effect.gen(function* () {
      const { budgets: [budget], client } = yield* setup(
        FakeLlm.reply("ok", { usage: usage(7, 20) }),
        { scope: "global", limit: { tokens: 1000 }, period: "day" }
      )
      yield* client.complete(request({ maxTokens: 500 }))
      const report = yield* TokenBudget.usage(budget)
      expect(report).toMatchObject({
        budget: "global-day",
        unit: "tokens",
        used: 27,
        reserved: 0,
        limit: 1000,
        remaining: 973,
        periodStart: 0,
        periodEnd: 86_400_000
      })
    }).pipe(Effect.provide(services)))

  it.effect("an in-flight reservation holds its worst case until the call ends", () =>
    Effect.gen(function* () {
      const { budgets: [budget], calls, client } = yield* setup(
        FakeLlm.delay("1 second", FakeLlm.reply("ok", { usage: usage(7, 3) })),
        { scope: "global", limit: { tokens: 1000 }, period: "day" }
      )
      const first = request({ maxTokens: 593 }) // 600 reserved
      const fiber = yield* Effect.fork(client.complete(first))
      yield* TestClock.adjust("10 millis")
      expect(yield* budget.usage()).toMatchObject({ used: 0, reserved: 600, remaining: 400 })
      const refused = yield* Effect.flip(client.complete(request({ maxTokens: 494 }))) // 501 > 400
      expect(refused).toMatchObject({ _tag: "BudgetExceeded", requested: 501, remaining: 400 })
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(fiber)
      expect(yield* budget.usage()).toMatchObject({ used: 10, reserved: 0, remaining: 990 })
      expect(yield* calls).toHaveLength(1)
    }).pipe(Effect.provide(services)))

  it.effect("refunds the reservation when the call fails", () =>
    Effect.gen(function* () {
      const { budgets: [budget], client } = yield* setup(
        FakeLlm.fail(new LlmError.ServerError({ status: 503 })),
        { scope: "global", limit: { tokens: 1000 }, period: "day" }
      )
      const error = yield* Effect.flip(client.complete(request()))
      expect(error._tag).toBe("ServerError")
      expect(yield* budget.usage()).toMatchObject({ used: 0, reserved: 0, remaining: 1000 })
    }).pipe(Effect.provide(services)))

  it.effect("refunds the reservation when the caller interrupts the call", () =>
    Effect.gen(function* () {
      const { budgets: [budget], client } = yield* setup(FakeLlm.hang, {
        scope: "global",
        limit: { tokens: 1000 },
        period: "day"
      })
      const fiber = yield* Effect.fork(client.complete(request()))
      yield* TestClock.adjust("1 second")
      expect((yield* budget.usage()).reserved).toBe(promptOf(request()) + 100)
      yield* Fiber.interrupt(fiber)
      expect(yield* budget.usage()).toMatchObject({ used: 0, reserved: 0 })
    }).pipe(Effect.provide(services)))

  it.effect("a reservation nobody settles is charged its worst case after reservationTtl (default 10 minutes)", () =>
    Effect.gen(function* () {
      const { budgets: [budget], client } = yield* setup(FakeLlm.hang, {
        scope: "global",
        limit: { tokens: 1000 },
        period: "day"
      })
      const fiber = yield* Effect.fork(client.complete(request()))
      yield* TestClock.adjust("599999 millis")
      expect((yield* budget.usage()).reserved).toBe(promptOf(request()) + 100)
      yield* TestClock.adjust("1 millis")
      const worst = promptOf(request()) + 100
      expect(yield* budget.usage()).toMatchObject({ used: worst, reserved: 0, remaining: 1000 - worst })
      yield* Fiber.interrupt(fiber) // the late refund takes the worst-case charge back: nothing was spent
      expect(yield* budget.usage()).toMatchObject({ used: 0, reserved: 0, remaining: 1000 })
    }).pipe(Effect.provide(services)))

  it.effect("a cut stream is charged its prompt and the output it produced", () =>
    Effect.gen(function* () {
      const { budgets: [budget], client } = yield* setup(
        FakeLlm.cut(["aaaa", "bbbb", "cccc"], { interval: "10 millis" }),
        { scope: "global", limit: { tokens: 1000 }, period: "day" }
      )
      const seen: Array<string> = []
      const fiber = yield* client.stream(request()).pipe(
        Stream.runForEach((chunk) => Effect.sync(() => seen.push(chunk.content))),
        Effect.flip,
        Effect.fork
      )
      yield* TestClock.adjust("1 second")
      const error = yield* Fiber.join(fiber)
      expect(error).toMatchObject({ _tag: "StreamTruncated", receivedChunks: 3, outputTokens: 3 })
      expect(seen).toEqual(["aaaa", "bbbb", "cccc"])
      expect(yield* budget.usage()).toMatchObject({ used: promptOf(request()) + 3, reserved: 0 })
    }).pipe(Effect.provide(services)))

  it.effect("a cut completion (StreamTruncated from complete) is charged its prompt and output tokens", () =>
    Effect.gen(function* () {
      const { budgets: [budget], client } = yield* setup(
        FakeLlm.fail(new LlmError.StreamTruncated({ receivedChunks: 4, outputTokens: 12 })),
        { scope: "global", limit: { tokens: 1000 }, period: "day" }
      )
      yield* Effect.flip(client.complete(request()))
      expect(yield* budget.usage()).toMatchObject({ used: promptOf(request()) + 12, reserved: 0 })
    }).pipe(Effect.provide(services)))

  it.effect("a stream commits the last chunk's usage when it completes", () =>
    Effect.gen(function* () {
      const { budgets: [budget], client } = yield* setup(
        FakeLlm.stream(["Hel", "lo"], { interval: "10 millis" }),
        { scope: "global", limit: { tokens: 1000 }, period: "day" }
      )
      const fiber = yield* client.stream(request()).pipe(Stream.runCollect, Effect.fork)
      yield* TestClock.adjust("5 millis")
      expect((yield* budget.usage()).reserved).toBe(promptOf(request()) + 100)
      yield* TestClock.adjust("1 second")
      const chunks = Chunk.toReadonlyArray(yield* Fiber.join(fiber))
      const last = chunks[chunks.length - 1]
      expect(last.usage).toBeDefined()
      expect(yield* budget.usage()).toMatchObject({
        used: last.usage!.inputTokens + last.usage!.outputTokens,
        reserved: 0
      })
    }).pipe(Effect.provide(services)))

  it.effect("a cut stream without outputTokens is charged the chunks counted as they passed", () =>
    Effect.gen(function* () {
      const budget = yield* TokenBudget.policy({ scope: "global", limit: { tokens: 1000 }, period: "day" })
      const cutting: LlmClient.Service = {
        complete: () => Effect.die("not used"),
        stream: (r) =>
          Stream.concat(
            Stream.make(new ChatChunk({ content: "aaaabbbb", model: r.model }), new ChatChunk({ content: "cccc", model: r.model })),
            Stream.fail(new LlmError.StreamTruncated({ model: r.model, receivedChunks: 2 }))
          )
      }
      const error = yield* LlmClient.decorate(cutting, budget).stream(request()).pipe(Stream.runDrain, Effect.flip)
      expect(error._tag).toBe("StreamTruncated")
      // "aaaabbbbcccc" = 12 characters = 3 tokens (approximate tokenizer)
      expect(yield* budget.usage()).toMatchObject({ used: promptOf(request()) + 3, reserved: 0 })
    }).pipe(Effect.provide(services)))

  it.effect("a stream the consumer stops early is charged the chunks that passed", () =>
    Effect.gen(function* () {
      const { budgets: [budget], client } = yield* setup(
        FakeLlm.stream(["aaaa", "bbbbbbbb", "cccc"], { interval: "1 second" }),
        { scope: "global", limit: { tokens: 1000 }, period: "day" }
      )
      const fiber = yield* client.stream(request()).pipe(Stream.take(2), Stream.runCollect, Effect.fork)
      yield* TestClock.adjust("5 seconds")
      expect(Chunk.size(yield* Fiber.join(fiber))).toBe(2)
      // "aaaa" + "bbbbbbbb" = 12 characters = 3 tokens (approximate tokenizer)
      expect(yield* budget.usage()).toMatchObject({ used: promptOf(request()) + 3, reserved: 0 })
    }).pipe(Effect.provide(services)))

  it.effect("a stream refused by the budget fails before the provider is called", () =>
    Effect.gen(function* () {
      const { calls, client } = yield* setup(FakeLlm.stream(["a"]), {
        scope: "global",
        limit: { tokens: 10 },
        period: "day"
      })
      const error = yield* client.stream(request()).pipe(Stream.runDrain, Effect.flip)
      expect(error._tag).toBe("BudgetExceeded")
      expect(yield* calls).toHaveLength(0)
    }).pipe(Effect.provide(services)))

  it.effect("a response served from a cache costs nothing", () =>
    Effect.gen(function* () {
      const budget = yield* TokenBudget.policy({ scope: "global", limit: { tokens: 1000 }, period: "day" })
      const cached: LlmClient.Service = {
        complete: (r) =>
          Effect.succeed(
            new ChatResponse({
              id: "c",
              model: r.model,
              content: "cached",
              finishReason: "stop",
              usage: usage(7, 50),
              servedFrom: "cache"
            })
          ),
        stream: () => Stream.empty
      }
      yield* LlmClient.decorate(cached, budget).complete(request())
      expect(yield* budget.usage()).toMatchObject({ used: 0, reserved: 0 })
    }).pipe(Effect.provide(services)))
})

describe("TokenBudget stacking", () => {
  it.effect("a refusal by the inner budget refunds the outer budget's reservation", () =>
    Effect.gen(function* () {
      const { budgets: [global, perUser], calls, client } = yield* setup(
        FakeLlm.reply("ok", { usage: usage(7, 10) }),
        { scope: "global", limit: { tokens: 10_000 }, period: "month" },
        { scope: "user", limit: { tokens: 150 }, period: "day" }
      )
      const error = yield* Effect.flip(client.complete(request({ user: "alice", maxTokens: 200 })))
      expect(error).toMatchObject({ _tag: "BudgetExceeded", scope: "user-day", remaining: 150 })
      expect(yield* global.usage()).toMatchObject({ used: 0, reserved: 0, remaining: 10_000 })
      expect(yield* calls).toHaveLength(0)

      yield* client.complete(request({ user: "alice", maxTokens: 100 }))
      expect(yield* global.usage()).toMatchObject({ used: 17, reserved: 0 })
      expect(yield* perUser.usage("alice")).toMatchObject({ used: 17, reserved: 0, remaining: 133 })
      expect(yield* perUser.usage("bob")).toMatchObject({ used: 0, remaining: 150 })
    }).pipe(Effect.provide(services)))

  it.effect("a stream refused by the inner budget refunds the outer budget too", () =>
    Effect.gen(function* () {
      const { budgets: [global], calls, client } = yield* setup(
        FakeLlm.stream(["a"]),
        { scope: "global", limit: { tokens: 10_000 }, period: "month" },
        { scope: "user", limit: { tokens: 50 }, period: "day" }
      )
      const error = yield* client.stream(request({ user: "erin" })).pipe(Stream.runDrain, Effect.flip)
      expect(error).toMatchObject({ _tag: "BudgetExceeded", scope: "user-day" })
      expect(yield* global.usage()).toMatchObject({ used: 0, reserved: 0 })
      expect(yield* calls).toHaveLength(0)
    }).pipe(Effect.provide(services)))

  it.effect("each user has a budget of their own; requests without a user share the anonymous one", () =>
    Effect.gen(function* () {
      const { budgets: [budget], client } = yield* setup(
        FakeLlm.reply("ok", { usage: usage(7, 93) }),
        { scope: "user", limit: { tokens: 200 }, period: "day" }
      )
      yield* client.complete(request({ user: "alice", maxTokens: 93 }))
      yield* client.complete(request({ user: "alice", maxTokens: 93 }))
      const error = yield* Effect.flip(client.complete(request({ user: "alice", maxTokens: 93 })))
      expect(error._tag).toBe("BudgetExceeded")
      yield* client.complete(request({ user: "bob", maxTokens: 93 }))
      yield* client.complete(request({ maxTokens: 93 }))
      yield* client.complete(request({ user: "anonymous", maxTokens: 93 })) // a user named "anonymous" is not the anonymous scope
      expect((yield* budget.usage("alice")).used).toBe(200)
      expect((yield* budget.usage("bob")).used).toBe(100)
      expect(yield* budget.usage()).toMatchObject({ scope: "anonymous", used: 100 })
      expect((yield* budget.usage("anonymous")).used).toBe(100)
    }).pipe(Effect.provide(services)))

  it.effect("store keys, metric labels and errors never contain the user id", () =>
    Effect.gen(function* () {
      const memory = yield* TokenBudget.makeStoreMemory
      const keys = new Set<string>()
      const spy: TokenBudget.StoreService = {
        reserve: (input) => Effect.zipRight(Effect.sync(() => keys.add(input.key)), memory.reserve(input)),
        commit: (input) => Effect.zipRight(Effect.sync(() => keys.add(input.key)), memory.commit(input)),
        refund: (input) => Effect.zipRight(Effect.sync(() => keys.add(input.key)), memory.refund(input)),
        usage: (input) => Effect.zipRight(Effect.sync(() => keys.add(input.key)), memory.usage(input))
      }
      const user = "alice@example.com"
      const { client } = yield* setup(FakeLlm.reply("ok", { usage: usage(7, 93) }), {
        scope: "user",
        limit: { tokens: 150 },
        period: "day",
        alertAt: [0.5]
      }).pipe(Effect.provideService(TokenBudget.TokenBudgetStore, spy))
      yield* client.complete(request({ user }))
      const error = yield* Effect.flip(client.complete(request({ user })))
      expect(error.message).not.toContain(user)
      expect(JSON.stringify(error)).not.toContain(user)
      expect(keys.size).toBe(1)
      for (const key of keys) expect(key).not.toContain("alice")
      const pairs = yield* Metric.snapshot
      for (const pair of pairs) {
        for (const tag of pair.metricKey.tags) expect(tag.value).not.toContain("alice")
      }
    }).pipe(Effect.provide(services)))

  it.effect("a custom scope keys the budget by the function's value", () =>
    Effect.gen(function* () {
      const { budgets: [budget], client } = yield* setup(
        FakeLlm.reply("ok", { usage: usage(7, 13) }),
        { scope: (r) => r.metadata?.tenant ?? "none", limit: { tokens: 1000 }, period: "day" }
      )
      const tenant = (name: string) =>
        new ChatRequest({ ...request(), metadata: { tenant: name } })
      yield* client.complete(tenant("acme"))
      yield* client.complete(tenant("acme"))
      yield* client.complete(tenant("globex"))
      expect(budget.budget).toBe("custom-day")
      expect((yield* budget.usage("acme")).used).toBe(40)
      expect((yield* budget.usage("globex")).used).toBe(20)
    }).pipe(Effect.provide(services)))
})

describe("TokenBudget periods (TestClock)", () => {
  it.effect("a monthly budget resets at the calendar month boundary in UTC (Jan 31 23:59 → Feb 1 00:00)", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(Date.UTC(2025, 0, 31, 23, 59))
      const { budgets: [budget], client } = yield* setup(
        FakeLlm.reply("ok", { usage: usage(7, 83) }),
        { scope: "global", limit: { tokens: 150 }, period: "month" }
      )
      yield* client.complete(request({ maxTokens: 100 }))
      expect(yield* budget.usage()).toMatchObject({
        used: 90,
        periodStart: Date.UTC(2025, 0, 1),
        periodEnd: Date.UTC(2025, 1, 1)
      })
      expect((yield* Effect.flip(client.complete(request({ maxTokens: 100 }))))._tag).toBe("BudgetExceeded")
      yield* TestClock.adjust("59999 millis") // Jan 31 23:59:59.999: still January
      expect((yield* Effect.flip(client.complete(request({ maxTokens: 100 }))))._tag).toBe("BudgetExceeded")
      yield* TestClock.adjust("1 millis") // Feb 1 00:00:00.000 UTC
      yield* client.complete(request({ maxTokens: 100 }))
      expect(yield* budget.usage()).toMatchObject({
        used: 90,
        periodStart: Date.UTC(2025, 1, 1),
        periodEnd: Date.UTC(2025, 2, 1)
      })
    }).pipe(Effect.provide(services)))

  it.effect("a call that ends in the next period is charged there, and its reservation counted until then", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(Date.UTC(2025, 1, 28, 23, 59, 30))
      const { budgets: [budget], client } = yield* setup(
        FakeLlm.delay("1 minute", FakeLlm.reply("ok", { usage: usage(7, 33) })),
        { scope: "global", limit: { tokens: 1000 }, period: "month" }
      )
      const fiber = yield* Effect.fork(client.complete(request({ maxTokens: 100 })))
      yield* TestClock.adjust("31 seconds") // March 1st UTC, call still running
      expect(yield* budget.usage()).toMatchObject({
        used: 0,
        reserved: 107,
        remaining: 893,
        periodStart: Date.UTC(2025, 2, 1)
      })
      yield* TestClock.adjust("30 seconds")
      yield* Fiber.join(fiber)
      expect(yield* budget.usage()).toMatchObject({ used: 40, reserved: 0, periodStart: Date.UTC(2025, 2, 1) })
    }).pipe(Effect.provide(services)))

  it.effect("a daily budget resets at 00:00 UTC", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(Date.UTC(2025, 5, 10, 22, 0))
      const { budgets: [budget], client } = yield* setup(
        FakeLlm.reply("ok", { usage: usage(7, 93) }),
        { scope: "global", limit: { tokens: 100 }, period: "day" }
      )
      yield* client.complete(request({ maxTokens: 93 }))
      yield* TestClock.adjust("1 hour")
      expect((yield* budget.usage()).used).toBe(100)
      yield* TestClock.adjust("1 hour") // 00:00 UTC
      expect(yield* budget.usage()).toMatchObject({ used: 0, periodStart: Date.UTC(2025, 5, 11) })
    }).pipe(Effect.provide(services)))

  it.effect("a rolling window expires usage after its duration (plus at most one bucket)", () =>
    Effect.gen(function* () {
      const { budgets: [budget], client } = yield* setup(
        FakeLlm.reply("ok", { usage: usage(7, 73) }),
        { scope: "global", limit: { tokens: 200 }, period: { rolling: "1 hour", buckets: 60 } }
      )
      yield* client.complete(request()) // t = 0, 80 tokens, bucket [0, 1 min)
      yield* TestClock.adjust("30 minutes")
      yield* client.complete(request()) // t = 30 min, 80 tokens
      expect((yield* budget.usage()).used).toBe(160)
      expect((yield* Effect.flip(client.complete(request())))._tag).toBe("BudgetExceeded")
      yield* TestClock.adjust("30 minutes") // t = 1 h: the first call's bucket ends its hour at 1 h 1 min
      expect((yield* budget.usage()).used).toBe(160)
      yield* TestClock.adjust("1 minute") // t = 1 h 1 min
      expect((yield* budget.usage()).used).toBe(80)
      yield* client.complete(request())
      yield* TestClock.adjust("30 minutes") // t = 1 h 31 min: the 30 min call is gone too
      expect((yield* budget.usage()).used).toBe(80)
      yield* TestClock.adjust("1 hour")
      expect(yield* budget.usage()).toMatchObject({ used: 0, remaining: 200 })
    }).pipe(Effect.provide(services)))
})

describe("TokenBudget alerts", () => {
  it.effect("each threshold fires exactly once per period", () =>
    Effect.scoped(Effect.gen(function* () {
      const alerts = yield* TokenBudget.subscribeAlerts
      const { client } = yield* setup(
        FakeLlm.reply("ok", { usage: usage(7, 23) }), // 30 tokens a call
        { scope: "user", limit: { tokens: 100 }, period: "day", alertAt: [0.5, 0.9], name: "alerts-test" }
      )
      const call = client.complete(request({ user: "carol", maxTokens: 23 })) // reserves 30, uses 30
      yield* call // 30
      expect(yield* Queue.size(alerts)).toBe(0)
      yield* call // 60 → 0.5
      yield* call // 90 → 0.9
      expect((yield* Effect.flip(call))._tag).toBe("BudgetExceeded")
      const firstDay = Chunk.toReadonlyArray(yield* Queue.takeAll(alerts))
      expect(firstDay.map((a) => a.threshold)).toEqual([0.5, 0.9])
      expect(firstDay[0]).toMatchObject({
        budget: "alerts-test",
        scopeKind: "user",
        scope: "carol",
        unit: "tokens",
        used: 60,
        limit: 100,
        periodStart: 0,
        periodEnd: 86_400_000
      })
      yield* TestClock.adjust("1 day")
      yield* call
      yield* call
      yield* call
      const secondDay = Chunk.toReadonlyArray(yield* Queue.takeAll(alerts))
      expect(secondDay.map((a) => [a.threshold, a.periodStart])).toEqual([[0.5, 86_400_000], [0.9, 86_400_000]])
      const counted = yield* Metric.value(
        LlmMetrics.budgetAlerts.pipe(Metric.tagged("budget", "alerts-test"), Metric.tagged("threshold", "0.5"))
      )
      expect(counted.count).toBe(2)
    })).pipe(Effect.provide(services)))

  it.effect("the alert stream delivers crossings to a subscriber", () =>
    Effect.gen(function* () {
      const { client } = yield* setup(
        FakeLlm.reply("ok", { usage: usage(7, 93) }),
        { scope: "global", limit: { tokens: 100 }, period: "hour", alertAt: [1] }
      )
      const fiber = yield* TokenBudget.alerts.pipe(Stream.take(1), Stream.runCollect, Effect.fork)
      yield* TestClock.adjust("1 millis") // let the subscriber start
      yield* client.complete(request({ maxTokens: 93 }))
      const [alert] = Chunk.toReadonlyArray(yield* Fiber.join(fiber))
      expect(alert).toMatchObject({ threshold: 1, used: 100, limit: 100, budget: "global-hour" })
    }).pipe(Effect.provide(services)))
})

describe("TokenBudget pricing", () => {
  it.effect("a USD limit reserves the priced worst case and refuses in USD", () =>
    Effect.gen(function* () {
      // gpt-4o-mini: $0.15 / M input, $0.60 / M output
      const { budgets: [budget], client } = yield* setup(
        FakeLlm.reply("ok", { usage: usage(7, 500) }),
        { scope: "global", limit: { usd: 0.001 }, period: "day" }
      )
      const r = request({ maxTokens: 1000 })
      yield* client.complete(r) // charged 7 × 0.15 + 500 × 0.6 = 301.05 µ$ → 301 050 n$
      const report = yield* budget.usage()
      expect(report.unit).toBe("usd")
      expect(report.used).toBeCloseTo(0.00030105, 12)
      expect(report.tokens).toBeUndefined()
      yield* client.complete(r)
      const error = yield* Effect.flip(client.complete(r))
      expect(error).toMatchObject({ _tag: "BudgetExceeded", unit: "usd" })
      const exceeded = error as LlmError.BudgetExceeded
      expect(exceeded.requested).toBeCloseTo((7 * 0.15 + 1000 * 0.6) / 1e6, 12)
      expect(exceeded.remaining).toBeCloseTo(0.001 - 2 * 0.00030105, 12)
    }).pipe(Effect.provide(services)))

  it.effect("an unpriced model under a USD limit is refused explicitly, or charged 0 USD when allowed", () =>
    Effect.gen(function* () {
      const strict = yield* setup(FakeLlm.reply("ok"), { scope: "global", limit: { usd: 1 }, period: "day" })
      const local = request({ model: "my-local-llama" })
      const error = yield* Effect.flip(strict.client.complete(local))
      expect(error).toMatchObject({ _tag: "BadRequest", code: "unpriced_model", model: "my-local-llama" })
      expect(yield* strict.calls).toHaveLength(0)

      const lenient = yield* setup(FakeLlm.reply("ok", { usage: usage(7, 3) }), {
        scope: "global",
        limit: { usd: 1, tokens: 1000 },
        period: "day",
        name: "lenient",
        onUnpriced: "ignoreUsd"
      })
      yield* lenient.client.complete(local)
      const report = yield* lenient.budgets[0].usage()
      expect(report.tokens).toMatchObject({ used: 10 })
      expect(report.usd).toMatchObject({ used: 0 })
    }).pipe(Effect.provide(services)))

  it.effect("without maxTokens the model's max output (capped by its context window) is reserved", () =>
    Effect.gen(function* () {
      const { client } = yield* setup(FakeLlm.reply("ok"), { scope: "global", limit: { tokens: 10_000 }, period: "day" })
      const r = request({ maxTokens: undefined }) // gpt-4o-mini: 16 384 max output tokens
      expect(yield* Effect.flip(client.complete(r))).toMatchObject({ requested: promptOf(r) + 16_384 })
    }).pipe(Effect.provide(services)))

  it.effect("without maxTokens an unknown model needs defaultMaxOutputTokens", () =>
    Effect.gen(function* () {
      const r = request({ maxTokens: undefined, model: "my-local-llama" })
      const strict = yield* setup(FakeLlm.reply("ok"), { scope: "global", limit: { tokens: 10_000 }, period: "day" })
      expect(yield* Effect.flip(strict.client.complete(r))).toMatchObject({
        _tag: "BadRequest",
        code: "unknown_max_output"
      })
      const withDefault = yield* setup(FakeLlm.reply("ok"), {
        scope: "global",
        limit: { tokens: 100 },
        period: "day",
        name: "with-default",
        defaultMaxOutputTokens: 500
      })
      expect(yield* Effect.flip(withDefault.client.complete(r))).toMatchObject({
        _tag: "BudgetExceeded",
        requested: promptOf(r) + 500
      })
    }).pipe(Effect.provide(services)))
})

describe("TokenBudget options", () => {
  it.effect("invalid options list every failing path", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        TokenBudget.policy({
          scope: "team" as never,
          limit: { tokens: -1, usd: -2 },
          period: "week" as never,
          alertAt: [0, 0.5, 1.2]
        })
      )
      expect(error._tag).toBe("InvalidOptions")
      expect(error.issues.map((i) => i.path)).toEqual([
        "scope",
        "limit.tokens",
        "limit.usd",
        "period",
        "alertAt.0",
        "alertAt.2"
      ])
      const noLimit = yield* Effect.flip(
        TokenBudget.policy({ scope: "user", limit: {}, period: { rolling: 0, buckets: 0 } })
      )
      expect(noLimit.issues.map((i) => i.path)).toEqual(["limit", "period.rolling", "period.buckets"])
      expect(noLimit.issues[0].message).toContain("at least one limit")
      // A misspelt option is reported, not silently ignored (here it would have dropped the alerts to the default).
      const typo = yield* Effect.flip(TokenBudget.policy({
        scope: "user",
        limit: { tokens: 100, usdd: 1 },
        period: { rolling: "1 hour", bucket: 10 },
        alertsAt: [0.5]
      } as never))
      expect(typo.issues.map((i) => i.path).sort()).toEqual(["alertsAt", "limit.usdd", "period.bucket"])
    }).pipe(Effect.provide(services)))

  it.effect("defaults: name from scope and period, alerts at 80 % and 100 %", () =>
    Effect.gen(function* () {
      const daily = yield* TokenBudget.policy({ scope: "user", limit: { tokens: 1 }, period: "day" })
      const rolling = yield* TokenBudget.policy({ scope: "global", limit: { usd: 1 }, period: { rolling: "1 hour" } })
      expect([daily.budget, daily.alertAt]).toEqual(["user-day", [0.8, 1]])
      expect(rolling.budget).toBe("global-rolling-1h")
    }).pipe(Effect.provide(services)))
})

describe("TokenBudget under concurrency", () => {
  it.effect("1000 concurrent calls never overshoot a 50,000-token budget and every refusal was a real lack of room", () =>
    Effect.gen(function* () {
      const limit = 50_000
      let seed = 42
      const next = (n: number) => {
        seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648
        return seed % n
      }
      const requests = Array.from({ length: 1000 }, (_, i) =>
        request({ content: "x".repeat(next(400)), maxTokens: 20 + next(600), user: `u${i % 7}` }))
      // Watch every store step: `used + reserved` must never pass the limit, and calls must really overlap.
      const memory = yield* TokenBudget.makeStoreMemory
      let peak = 0
      let peakReserved = 0
      const watch = <A extends { readonly snapshot: TokenBudget.Snapshot }>(result: A): A => {
        peak = Math.max(peak, result.snapshot.used.tokens + result.snapshot.reserved.tokens)
        peakReserved = Math.max(peakReserved, result.snapshot.reserved.tokens)
        return result
      }
      // A refusal is checked against the snapshot read in the same atomic step, not against the store's own
      // `remaining`: the request must really not have fitted next to what was used and reserved at that moment.
      let refusedWithRoom = 0
      const watched: TokenBudget.StoreService = {
        reserve: (input) =>
          Effect.map(memory.reserve(input), (result) => {
            const free = limit - result.snapshot.used.tokens - result.snapshot.reserved.tokens
            if (result._tag === "Rejected" && input.amount.tokens <= free) refusedWithRoom++
            return watch(result)
          }),
        commit: (input) => Effect.map(memory.commit(input), watch),
        refund: (input) => Effect.map(memory.refund(input), watch),
        usage: memory.usage
      }
      const { budgets: [budget], client } = yield* Effect.provideService(setup(
        ({ call, request: r }) =>
          FakeLlm.delay(
            `${((call * 37) % 10) * 50} millis`,
            FakeLlm.reply("ok", {
              usage: usage(promptOf(r) - (call % 3), (call * 7919) % (r.maxTokens! + 1))
            })
          ),
        { scope: "global", limit: { tokens: limit }, period: "day" }
      ), TokenBudget.TokenBudgetStore, watched)
      // Four waves of 250 calls, 200 ms apart, each call lasting up to 450 ms: hundreds in flight at once, and
      // budget released by finished calls is reused by later waves.
      const waves: Array<Fiber.RuntimeFiber<ReadonlyArray<Either.Either<ChatResponse, LlmError.LlmError>>>> = []
      for (let wave = 0; wave < 4; wave++) {
        const batch = requests.slice(wave * 250, (wave + 1) * 250)
        waves.push(
          yield* Effect.fork(Effect.forEach(batch, (r) => Effect.either(client.complete(r)), { concurrency: "unbounded" }))
        )
        yield* TestClock.adjust("200 millis")
      }
      yield* TestClock.adjust("1 second")
      const outcomes = (yield* Fiber.join(Fiber.all(waves))).flat()

      let charged = 0
      let refused = 0
      for (const outcome of outcomes) {
        if (Either.isRight(outcome)) {
          charged += outcome.right.usage.inputTokens + outcome.right.usage.outputTokens
        } else {
          const error = outcome.left as LlmError.BudgetExceeded
          expect(error._tag).toBe("BudgetExceeded")
          expect(error.requested).toBeGreaterThan(error.remaining)
          refused++
        }
      }
      const report = yield* budget.usage()
      expect(report.used).toBe(charged)
      expect(report.reserved).toBe(0)
      expect(charged).toBeLessThanOrEqual(limit)
      expect(charged).toBeGreaterThan(limit * 0.6) // later waves reused what earlier calls released
      expect(peak).toBeLessThanOrEqual(limit)
      expect(refusedWithRoom).toBe(0)
      expect(peakReserved).toBeGreaterThan(limit / 2) // many calls were in flight at once
      expect(refused).toBeGreaterThan(0)
      expect(outcomes.length - refused).toBeGreaterThan(100)
    }).pipe(Effect.provide(services)))
})

describe("TokenBudget.usage", () => {
  it.effect("is dual", () =>
    Effect.gen(function* () {
      const budget = yield* TokenBudget.policy({ scope: "user", limit: { tokens: 10 }, period: "minute" })
      const a = yield* TokenBudget.usage(budget, "dave")
      const b = yield* Effect.flatMap(Effect.succeed(budget), TokenBudget.usage("dave"))
      expect(a).toEqual(b)
      expect(a).toMatchObject({ scope: "dave", used: 0, remaining: 10, periodStart: 0, periodEnd: 60_000 })
      expect(Exit.isSuccess(yield* Effect.exit(TokenBudget.usage(budget)))).toBe(true)
    }).pipe(Effect.provide(services)))
})
