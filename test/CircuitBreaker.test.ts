import { describe, expect, expectTypeOf, it } from "@effect/vitest"
import {
  Cause,
  Chunk,
  Data,
  Duration,
  Effect,
  Either,
  Exit,
  Fiber,
  Layer,
  Metric,
  Option,
  Queue,
  Ref,
  Stream,
  TestClock
} from "effect"
import * as Bulkhead from "../src/Bulkhead.js"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as FakeLlm from "../src/FakeLlm.js"
import { ChatRequest } from "../src/Llm.js"
import * as LlmClient from "../src/LlmClient.js"
import * as LlmError from "../src/LlmError.js"
import * as LlmMetrics from "../src/LlmMetrics.js"
import * as Retry from "../src/Retry.js"
import * as Timeout from "../src/Timeout.js"

const Store = CircuitBreaker.layerStoreMemory
// The memory store without its synchronous steps: the breaker then goes through the Effect methods, the path every
// other store (Redis) takes.
const EffectStore = Layer.effect(
  CircuitBreaker.CircuitBreakerStore,
  Effect.map(CircuitBreaker.makeStoreMemory, (store) => ({ ...store, sync: undefined }))
)
const stores = [["memory store", Store], ["a store answering through Effects", EffectStore]] as const
const server = () => new LlmError.ServerError({ status: 503 })

let keys = 0
const uniqueKey = (name: string) => `${name}-${++keys}`

/** An effect that counts its runs and fails (or succeeds) as told. */
const counted = (runs: Ref.Ref<number>, result: Effect.Effect<string, LlmError.LlmError>) =>
  Effect.zipRight(Ref.update(runs, (n) => n + 1), result)

const fail = (breaker: CircuitBreaker.CircuitBreaker, times: number, error: LlmError.LlmError = server()) =>
  Effect.repeatN(Effect.ignore(breaker.execute(Effect.fail(error))), times - 1)

const transitionsOf = (queue: Queue.Dequeue<CircuitBreaker.Transition>) =>
  Effect.map(Queue.takeAll(queue), (all) => Chunk.toReadonlyArray(all).map((t) => `${t.from}>${t.to}:${t.reason}`))

const counter = (metric: Metric.Metric.Counter<number>, labels: ReadonlyArray<readonly [string, string]>) =>
  Effect.map(
    Metric.value(labels.reduce((m, [k, v]) => Metric.tagged(m, k, v), metric)),
    (state) => state.count
  )

const gauge = (key: string) =>
  Effect.map(Metric.value(Metric.tagged(LlmMetrics.breakerState, "key", key)), (state) => state.value)

const request = (model = "gpt-4o", metadata?: Record<string, string>) =>
  new ChatRequest({ model, messages: [{ role: "user", content: "hi" }], metadata })

for (const [storeName, Store] of stores) describe(`CircuitBreaker.make / withBreaker (${storeName})`, () => {
  it.scoped("starts closed and emits nothing on construction", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ key: uniqueKey("init") })
      const queue = yield* breaker.subscribe
      const status = yield* breaker.state
      expect(status).toMatchObject({ state: "closed", consecutiveFailures: 0, calls: 0 })
      expect(Duration.toMillis(status.retryAfter)).toBe(0)
      expect(yield* transitionsOf(queue)).toEqual([])
    }).pipe(Effect.provide(Store)))

  it.scoped("opens after failureThreshold failures and rejects with CircuitOpen without running the effect", () =>
    Effect.gen(function* () {
      const key = uniqueKey("open")
      const breaker = yield* CircuitBreaker.make({ key, failureThreshold: 3, halfOpenAfter: "10 seconds" })
      const runs = yield* Ref.make(0)
      for (let i = 0; i < 2; i++) yield* Effect.flip(breaker.execute(counted(runs, Effect.fail(server()))))
      expect((yield* breaker.state).state).toBe("closed")
      yield* Effect.flip(breaker.execute(counted(runs, Effect.fail(server()))))
      expect((yield* breaker.state).state).toBe("open")
      yield* TestClock.adjust("4 seconds")
      const error = yield* Effect.flip(counted(runs, Effect.succeed("ok")).pipe(CircuitBreaker.withBreaker(breaker)))
      expect(error).toBeInstanceOf(LlmError.CircuitOpen)
      expect(error).toMatchObject({ _tag: "CircuitOpen", key })
      expect(Duration.toMillis((error as LlmError.CircuitOpen).retryAfter)).toBe(6_000)
      expect(yield* Ref.get(runs)).toBe(3)
      expect(yield* counter(LlmMetrics.breakerRejections, [["key", key]])).toBe(1)
      expect(yield* counter(LlmMetrics.breakerTransitions, [["key", key], ["from", "closed"], ["to", "open"]])).toBe(1)
      expect(yield* gauge(key)).toBe(2)
    }).pipe(Effect.provide(Store)))

  it.effect("errors that do not count and interruptions leave it closed", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ key: uniqueKey("ignored"), failureThreshold: 2 })
      for (const error of [
        new LlmError.BadRequest({}),
        new LlmError.AuthError({ status: 401 }),
        new LlmError.ContextTooLong({}),
        new LlmError.QuotaExhausted({}),
        new LlmError.BadRequest({})
      ]) yield* Effect.flip(breaker.execute(Effect.fail(error)))
      const fiber = yield* Effect.fork(breaker.execute(Effect.never))
      yield* TestClock.adjust("1 second")
      yield* Fiber.interrupt(fiber)
      yield* Effect.exit(breaker.execute(Effect.die("bug")))
      expect(yield* breaker.state).toMatchObject({ state: "closed", consecutiveFailures: 0 })
      yield* fail(breaker, 2, new LlmError.Timeout({ phase: "attempt", after: Duration.seconds(1) }))
      expect((yield* breaker.state).state).toBe("open")
    }).pipe(Effect.provide(Store)))

  it.effect("countAsFailure replaces the classification", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({
        key: uniqueKey("custom"),
        failureThreshold: 2,
        countAsFailure: (e) => LlmError.isLlmError(e) && e._tag === "BadRequest"
      })
      yield* fail(breaker, 2, server())
      expect((yield* breaker.state).state).toBe("closed")
      yield* fail(breaker, 2, new LlmError.BadRequest({}))
      expect((yield* breaker.state).state).toBe("open")
    }).pipe(Effect.provide(Store)))

  it.effect("half-opens after exactly halfOpenAfter", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ key: uniqueKey("half"), failureThreshold: 1, halfOpenAfter: "30 seconds" })
      yield* fail(breaker, 1)
      yield* TestClock.adjust("29999 millis")
      const status = yield* breaker.state
      expect(status.state).toBe("open")
      expect(Duration.toMillis(status.retryAfter)).toBe(1)
      const early = yield* Effect.flip(breaker.execute(Effect.succeed("x")))
      expect(Duration.toMillis((early as LlmError.CircuitOpen).retryAfter)).toBe(1)
      yield* TestClock.adjust("1 millis")
      expect((yield* breaker.state).state).toBe("halfOpen")
      expect(yield* breaker.execute(Effect.succeed("probe"))).toBe("probe")
      expect((yield* breaker.state).state).toBe("closed")
    }).pipe(Effect.provide(Store)))

  it.scoped("50 concurrent callers after the break: exactly halfOpenProbes probes, the others rejected at once", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({
        key: uniqueKey("herd"),
        failureThreshold: 1,
        halfOpenAfter: "10 seconds",
        halfOpenProbes: 2
      })
      yield* fail(breaker, 1)
      yield* TestClock.adjust("10 seconds")
      const runs = yield* Ref.make(0)
      const fiber = yield* Effect.fork(Effect.all(
        Array.from({ length: 50 }, () => Effect.either(breaker.execute(counted(runs, Effect.as(Effect.sleep("1 second"), "ok"))))),
        { concurrency: "unbounded" }
      ))
      yield* TestClock.adjust("1 second")
      const results = yield* Fiber.join(fiber)
      expect(results.filter(Either.isRight)).toHaveLength(2)
      expect(results.filter(Either.isLeft).map((e) => e.left._tag)).toEqual(Array(48).fill("CircuitOpen"))
      expect(yield* Ref.get(runs)).toBe(2)
      expect((yield* breaker.state).state).toBe("closed")
    }).pipe(Effect.provide(Store)))

  it.scoped("a successful probe closes with fresh counts; transitions are emitted exactly once", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ key: uniqueKey("close"), failureThreshold: 2, halfOpenAfter: "5 seconds" })
      const queue = yield* breaker.subscribe
      yield* fail(breaker, 5)
      yield* TestClock.adjust("5 seconds")
      yield* breaker.execute(Effect.succeed("ok"))
      expect(yield* breaker.state).toMatchObject({ state: "closed", consecutiveFailures: 0, calls: 0 })
      yield* fail(breaker, 1)
      expect((yield* breaker.state).state).toBe("closed")
      expect(yield* transitionsOf(queue)).toEqual([
        "closed>open:consecutiveFailures",
        "open>halfOpen:breakElapsed",
        "halfOpen>closed:probesSucceeded"
      ])
    }).pipe(Effect.provide(Store)))

  it.scoped("a failed probe reopens with a longer break when a backoff is set; the backoff resets on close", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({
        key: uniqueKey("backoff"),
        failureThreshold: 1,
        halfOpenAfter: { initial: "1 second", max: "3 seconds", factor: 2 }
      })
      const queue = yield* breaker.subscribe
      yield* fail(breaker, 1)
      yield* TestClock.adjust("1 second")
      yield* fail(breaker, 1) // probe fails: 2 s
      yield* TestClock.adjust("1999 millis")
      expect((yield* breaker.state).state).toBe("open")
      yield* TestClock.adjust("1 millis")
      yield* fail(breaker, 1) // probe fails: 4 s capped at 3 s
      expect(Duration.toMillis((yield* breaker.state).retryAfter)).toBe(3_000)
      yield* TestClock.adjust("3 seconds")
      yield* breaker.execute(Effect.void)
      yield* fail(breaker, 1)
      expect(Duration.toMillis((yield* breaker.state).retryAfter)).toBe(1_000)
      const opens = Chunk.toReadonlyArray(yield* Queue.takeAll(queue)).filter((t) => t.to === "open")
      expect(opens.map((t) => Option.map(t.breakDuration, Duration.toMillis))).toEqual([
        Option.some(1_000),
        Option.some(2_000),
        Option.some(3_000),
        Option.some(1_000)
      ])
    }).pipe(Effect.provide(Store)))

  it.effect("an interrupted probe frees the half-open state: the next caller probes", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ key: uniqueKey("stuck"), failureThreshold: 1, halfOpenAfter: "1 second" })
      yield* fail(breaker, 1)
      yield* TestClock.adjust("1 second")
      const probe = yield* Effect.fork(breaker.execute(Effect.never))
      yield* TestClock.adjust("10 millis")
      expect((yield* Effect.flip(breaker.execute(Effect.succeed("x"))))._tag).toBe("CircuitOpen")
      yield* Fiber.interrupt(probe)
      expect((yield* breaker.state).state).toBe("halfOpen")
      expect(yield* breaker.execute(Effect.succeed("second probe"))).toBe("second probe")
      expect((yield* breaker.state).state).toBe("closed")
    }).pipe(Effect.provide(Store)))

  it.effect("a probe that fails with an error that does not count frees its slot too", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ key: uniqueKey("probe-ignored"), failureThreshold: 1, halfOpenAfter: "1 second" })
      yield* fail(breaker, 1)
      yield* TestClock.adjust("1 second")
      yield* Effect.flip(breaker.execute(Effect.fail(new LlmError.BadRequest({}))))
      expect((yield* breaker.state).state).toBe("halfOpen")
      yield* breaker.execute(Effect.void)
      expect((yield* breaker.state).state).toBe("closed")
    }).pipe(Effect.provide(Store)))

  it.scoped("outcomes of calls started before the break neither extend it nor reopen it", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ key: uniqueKey("late"), failureThreshold: 3, halfOpenAfter: "10 seconds" })
      const queue = yield* breaker.subscribe
      const slow = yield* Effect.fork(Effect.all(
        Array.from({ length: 5 }, () => Effect.either(breaker.execute(Effect.zipRight(Effect.sleep("12 seconds"), Effect.fail(server()))))),
        { concurrency: "unbounded" }
      ))
      yield* TestClock.adjust("1 second")
      yield* fail(breaker, 3) // opens at t = 1 s until t = 11 s
      yield* TestClock.adjust("10 seconds") // t = 11 s: half-open
      const probe = yield* Effect.fork(breaker.execute(Effect.as(Effect.sleep("2 seconds"), "ok")))
      yield* TestClock.adjust("1 second") // t = 12 s: the five old calls fail now
      yield* Fiber.join(slow)
      expect((yield* breaker.state).state).toBe("halfOpen")
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(probe)).toBe("ok")
      expect((yield* breaker.state).state).toBe("closed")
      expect((yield* transitionsOf(queue)).filter((t) => t.includes(">open"))).toEqual(["closed>open:consecutiveFailures"])
    }).pipe(Effect.provide(Store)))

  it.effect("an old failure that arrives while open does not extend the break", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ key: uniqueKey("extend"), failureThreshold: 1, halfOpenAfter: "10 seconds" })
      const old = yield* Effect.fork(Effect.either(breaker.execute(Effect.zipRight(Effect.sleep("5 seconds"), Effect.fail(server())))))
      yield* fail(breaker, 1)
      yield* TestClock.adjust("5 seconds")
      yield* Fiber.join(old)
      expect(Duration.toMillis((yield* breaker.state).retryAfter)).toBe(5_000)
    }).pipe(Effect.provide(Store)))

  it.scoped("50 concurrent failures open the circuit exactly once", () =>
    Effect.gen(function* () {
      const key = uniqueKey("storm")
      const breaker = yield* CircuitBreaker.make({ key, failureThreshold: 5, halfOpenAfter: "10 seconds" })
      const queue = yield* breaker.subscribe
      const fiber = yield* Effect.fork(Effect.all(
        Array.from({ length: 50 }, () => Effect.either(breaker.execute(Effect.zipRight(Effect.sleep("1 second"), Effect.fail(server()))))),
        { concurrency: "unbounded" }
      ))
      yield* TestClock.adjust("1 second")
      const results = yield* Fiber.join(fiber)
      expect(results.every((r) => Either.isLeft(r) && r.left._tag === "ServerError")).toBe(true)
      expect(yield* transitionsOf(queue)).toEqual(["closed>open:consecutiveFailures"])
      expect(yield* counter(LlmMetrics.breakerTransitions, [["key", key], ["from", "closed"], ["to", "open"]])).toBe(1)
      // The break was not lost or extended: it half-opens 10 s after the fifth failure.
      yield* TestClock.adjust("10 seconds")
      expect((yield* breaker.state).state).toBe("halfOpen")
    }).pipe(Effect.provide(Store)))

  it.scoped("isolate holds it open past halfOpenAfter; reset closes it", () =>
    Effect.gen(function* () {
      const key = uniqueKey("isolate")
      const breaker = yield* CircuitBreaker.make({ key, halfOpenAfter: "1 second" })
      const queue = yield* breaker.subscribe
      yield* breaker.isolate
      yield* TestClock.adjust("1 hour")
      const error = yield* Effect.flip(breaker.execute(Effect.succeed(1)))
      expect(error._tag).toBe("CircuitOpen")
      expect((yield* breaker.state).state).toBe("isolated")
      expect(yield* gauge(key)).toBe(3)
      yield* breaker.reset
      expect(yield* breaker.execute(Effect.succeed(1))).toBe(1)
      expect(yield* gauge(key)).toBe(0)
      expect(yield* transitionsOf(queue)).toEqual(["closed>isolated:isolated", "isolated>closed:reset"])
    }).pipe(Effect.provide(Store)))

  it.effect("a failure-rate breaker over a time window on the Effect clock", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({
        key: uniqueKey("rate"),
        failureRate: { threshold: 0.5, minimumCalls: 4, window: { duration: "10 seconds", buckets: 10 } }
      })
      yield* fail(breaker, 3)
      yield* TestClock.adjust("10 seconds") // the three failures expire
      yield* breaker.execute(Effect.void)
      yield* fail(breaker, 1)
      expect(yield* breaker.state).toMatchObject({ state: "closed", calls: 2, failures: 1 })
      yield* TestClock.adjust("1 second")
      yield* breaker.execute(Effect.void)
      yield* fail(breaker, 1)
      expect((yield* breaker.state).state).toBe("open")
    }).pipe(Effect.provide(Store)))

  it.effect("slow calls open it (measured on the Effect clock)", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({
        key: uniqueKey("slow"),
        slowCall: { duration: "2 seconds", rateThreshold: 0.5, minimumCalls: 2, window: { calls: 10 } }
      })
      const slowCall = Effect.fork(breaker.execute(Effect.as(Effect.sleep("2 seconds"), "slow but fine")))
      const a = yield* slowCall
      const b = yield* slowCall
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(a)
      yield* Fiber.join(b)
      expect(yield* breaker.state).toMatchObject({ state: "open" })
    }).pipe(Effect.provide(Store)))

  it.effect("an interrupted caller never runs the effect", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ key: uniqueKey("pre-interrupted") })
      const runs = yield* Ref.make(0)
      const exit = yield* Effect.exit(Effect.interrupt.pipe(Effect.zipRight(breaker.execute(counted(runs, Effect.succeed("x"))))))
      expect(Exit.isInterrupted(exit)).toBe(true)
      expect(yield* Ref.get(runs)).toBe(0)
    }).pipe(Effect.provide(Store)))

  it.effect("breakers with the same key and store share their state", () =>
    Effect.gen(function* () {
      const key = uniqueKey("shared")
      const a = yield* CircuitBreaker.make({ key, failureThreshold: 2 })
      const b = yield* CircuitBreaker.make({ key, failureThreshold: 2 })
      yield* fail(a, 2)
      expect((yield* Effect.flip(b.execute(Effect.void)))._tag).toBe("CircuitOpen")
    }).pipe(Effect.provide(Store)))

  it.effect("invalid options fail with InvalidOptions listing every path", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(CircuitBreaker.make({ failureThreshold: 0, halfOpenProbes: -1 }))
      expect(error._tag).toBe("InvalidOptions")
      expect(error.issues.map((i) => i.path).sort()).toEqual(["failureThreshold", "halfOpenProbes"])
      const policyError = yield* Effect.flip(CircuitBreaker.policy({ failureRate: { threshold: 2 } }))
      expect(policyError.issues.map((i) => i.path)).toEqual(["failureRate.threshold"])
    }).pipe(Effect.provide(Store)))

  it.effect("a countAsFailure that throws never leaves a probe stuck; the throw surfaces as a defect", () =>
    Effect.gen(function* () {
      let throwing = false
      const breaker = yield* CircuitBreaker.make({
        key: uniqueKey("throwing-classifier"),
        failureThreshold: 1,
        halfOpenAfter: "1 second",
        countAsFailure: () => {
          if (throwing) throw new Error("classifier bug")
          return true
        }
      })
      yield* fail(breaker, 1)
      yield* TestClock.adjust("1 second")
      throwing = true
      const exit = yield* Effect.exit(breaker.execute(Effect.fail(server())))
      expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
      expect(Exit.isFailure(exit) && Option.getOrUndefined(Cause.failureOption(exit.cause))).toBeInstanceOf(LlmError.ServerError)
      expect((yield* breaker.state).state).toBe("halfOpen")
      throwing = false
      expect(yield* breaker.execute(Effect.succeed("next probe"))).toBe("next probe")
      expect((yield* breaker.state).state).toBe("closed")
    }).pipe(Effect.provide(Store)))

  it.effect("a misspelt option is reported, not ignored", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(CircuitBreaker.make({ failureTreshold: 1 } as CircuitBreaker.MakeOptions))
      expect(error.issues.map((i) => i.path)).toEqual(["failureTreshold"])
      const policyError = yield* Effect.flip(CircuitBreaker.policy({ key: "k" } as CircuitBreaker.PolicyOptions))
      expect(policyError.issues.map((i) => i.path)).toEqual(["key"])
    }).pipe(Effect.provide(Store)))

  it.effect("a failing store fails open: the call runs, untracked", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ key: uniqueKey("store-down"), failureThreshold: 1 })
      yield* fail(breaker, 3)
      expect(yield* breaker.execute(Effect.succeed("still served"))).toBe("still served")
      const error = yield* Effect.flip(breaker.state)
      expect(error._tag).toBe("CircuitBreakerStoreError")
    }).pipe(Effect.provide(Layer.succeed(CircuitBreaker.CircuitBreakerStore, {
      admit: () => Effect.fail(new CircuitBreaker.CircuitBreakerStoreError({ operation: "admit", reason: "down" })),
      record: () => Effect.fail(new CircuitBreaker.CircuitBreakerStoreError({ operation: "record", reason: "down" })),
      observe: () => Effect.fail(new CircuitBreaker.CircuitBreakerStoreError({ operation: "observe", reason: "down" })),
      isolate: () => Effect.fail(new CircuitBreaker.CircuitBreakerStoreError({ operation: "isolate", reason: "down" })),
      reset: () => Effect.fail(new CircuitBreaker.CircuitBreakerStoreError({ operation: "reset", reason: "down" }))
    }))))
})

describe("CircuitBreaker.policy", () => {
  const outage = (models: ReadonlyArray<string>) =>
    FakeLlm.layer(({ request: r }) => (models.includes(r.model) ? FakeLlm.fail(server()) : FakeLlm.reply("ok")))

  it.effect("keeps one breaker per model; an open one rejects without calling the provider", () =>
    Effect.gen(function* () {
      const policy = yield* CircuitBreaker.policy({ failureThreshold: 2, halfOpenAfter: "1 minute" })
      const program = Effect.gen(function* () {
        const down = uniqueKey("down-model")
        for (let i = 0; i < 2; i++) yield* Effect.flip(LlmClient.complete(request(down)))
        const error = yield* Effect.flip(LlmClient.complete(request(down)))
        expect(error).toMatchObject({ _tag: "CircuitOpen", key: down, model: down })
        expect(Duration.toMillis((error as LlmError.CircuitOpen).retryAfter)).toBe(60_000)
        const fine = yield* LlmClient.complete(request("healthy"))
        expect(fine.content).toBe("ok")
        const calls = yield* FakeLlm.calls
        expect(calls.filter((c) => c.request.model === down)).toHaveLength(2)
        expect((yield* policy.state(down)).state).toBe("open")
        expect((yield* policy.state("healthy")).state).toBe("closed")
      })
      yield* LlmClient.withPolicies(program, policy)
    }).pipe(
      Effect.provide(Layer.merge(FakeLlm.layer(({ request: r }) => (r.model.startsWith("down-model") ? FakeLlm.fail(server()) : FakeLlm.reply("ok"))), Store))
    ))

  it.effect("Retry outside the breaker stops at CircuitOpen: no attempt is wasted on an open circuit", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.policy({ failureThreshold: 2, halfOpenAfter: "1 minute" })
      const program = Effect.gen(function* () {
        const fiber = yield* Effect.fork(Effect.flip(LlmClient.complete(request("retried"))))
        yield* TestClock.adjust("30 seconds")
        const error = yield* Fiber.join(fiber)
        expect(error._tag).toBe("CircuitOpen")
        expect(yield* FakeLlm.calls).toHaveLength(2)
      })
      yield* LlmClient.withPolicies(program, Retry.policy({ maxRetries: 5 }), breaker)
    }).pipe(Effect.provide(Layer.merge(FakeLlm.layer(FakeLlm.fail(server())), Store))))

  it.effect("per provider: metadata.provider, else the model prefix, else \"default\"", () =>
    Effect.gen(function* () {
      const policy = yield* CircuitBreaker.policy({ per: "provider" })
      expect(policy.keyOf(request("openai/gpt-4o"))).toBe("openai")
      expect(policy.keyOf(request("gpt-4o", { provider: "azure" }))).toBe("azure")
      expect(policy.keyOf(request("gpt-4o"))).toBe("default")
      const custom = yield* CircuitBreaker.policy({ per: (r) => `tenant:${r.metadata?.tenant ?? "none"}` })
      expect(custom.keyOf(request("m", { tenant: "acme" }))).toBe("tenant:acme")
    }).pipe(Effect.provide(Store)))

  it.effect("works through LlmClient.layerWith", () =>
    Effect.gen(function* () {
      for (let i = 0; i < 5; i++) yield* Effect.flip(LlmClient.complete(request("layered")))
      const error = yield* Effect.flip(LlmClient.complete(request("layered")))
      expect(error._tag).toBe("CircuitOpen")
      expect(yield* FakeLlm.calls).toHaveLength(5)
    }).pipe(
      Effect.provide(LlmClient.layerWith(CircuitBreaker.policy({ per: "model" })).pipe(
        Layer.provideMerge(outage(["layered"])),
        Layer.provide(Store)
      ))
    ))

  it.effect("guards streams: a failing stream counts, a rejected one never reaches the provider", () =>
    Effect.gen(function* () {
      const policy = yield* CircuitBreaker.policy({ failureThreshold: 2, halfOpenAfter: "10 seconds" })
      const program = Effect.gen(function* () {
        const model = "streamer"
        for (let i = 0; i < 2; i++) {
          const chunks = yield* Effect.either(Stream.runCollect(LlmClient.stream(request(model))))
          expect(Either.isLeft(chunks) && chunks.left._tag).toBe("StreamTruncated")
        }
        const rejected = yield* Effect.flip(Stream.runCollect(LlmClient.stream(request(model))))
        expect(rejected).toMatchObject({ _tag: "CircuitOpen", key: model })
        expect(yield* FakeLlm.calls).toHaveLength(2)
        yield* TestClock.adjust("10 seconds")
        const ok = yield* Stream.runCollect(LlmClient.stream(request(model)))
        expect(Chunk.size(ok)).toBeGreaterThan(0)
        expect((yield* policy.state(model)).state).toBe("closed")
      })
      yield* LlmClient.withPolicies(program, policy)
    }).pipe(Effect.provide(Layer.merge(
      FakeLlm.layer([FakeLlm.cut(["a", "b"]), FakeLlm.cut(["a"]), FakeLlm.stream(["fine ", "now"])]),
      Store
    ))))

  it.effect("a stream the consumer stops early counts as a success; a consumer's own error does not count", () =>
    Effect.gen(function* () {
      const policy = yield* CircuitBreaker.policy({ failureThreshold: 1 })
      const program = Effect.gen(function* () {
        const first = yield* Stream.runCollect(Stream.take(LlmClient.stream(request("early")), 1))
        expect(Chunk.size(first)).toBe(1)
        yield* Effect.flip(Stream.runDrain(Stream.mapEffect(LlmClient.stream(request("early")), () => Effect.fail(server()))))
        const interrupted = yield* Effect.fork(Stream.runDrain(LlmClient.stream(request("early"))))
        yield* TestClock.adjust("1 second")
        yield* Fiber.interrupt(interrupted)
        expect(yield* policy.state("early")).toMatchObject({ state: "closed", consecutiveFailures: 0 })
      })
      yield* LlmClient.withPolicies(program, policy)
    }).pipe(Effect.provide(Layer.merge(
      FakeLlm.layer([FakeLlm.stream(["a ", "b ", "c"]), FakeLlm.stream(["a"]), FakeLlm.stream(["a", "b"], { interval: "1 hour" })]),
      Store
    ))))

  it.scoped("the transitions stream and the subscription see every key", () =>
    Effect.gen(function* () {
      const policy = yield* CircuitBreaker.policy({ failureThreshold: 1 })
      const queue = yield* policy.subscribe
      const collected = yield* Effect.fork(Stream.runCollect(Stream.take(policy.transitions, 2)))
      yield* Effect.yieldNow()
      yield* Effect.yieldNow()
      yield* policy.isolate("a")
      yield* policy.isolate("b")
      yield* policy.reset("a")
      const all = Chunk.toReadonlyArray(yield* Queue.takeAll(queue)).map((t) => `${t.key}:${t.to}`)
      expect(all).toEqual(["a:isolated", "b:isolated", "a:closed"])
      const streamed = Chunk.toReadonlyArray(yield* Fiber.join(collected)).map((t) => `${t.key}:${t.to}`)
      expect(streamed).toEqual(["a:isolated", "b:isolated"])
    }).pipe(Effect.provide(Store)))
})

describe("a per function that throws", () => {
  it.effect("is a defect of the call (breaker and bulkhead), never a synchronous throw", () =>
    Effect.gen(function* () {
      const per = () => {
        throw new Error("bad key function")
      }
      const { client } = yield* FakeLlm.make(FakeLlm.reply("ok"))
      const breaker = yield* CircuitBreaker.policy({ per })
      const bulkhead = yield* Bulkhead.policy({ maxConcurrent: 1, per })
      const request = new ChatRequest({ model: "m", messages: [{ role: "user", content: "hi" }] })
      for (const policy of [breaker, bulkhead]) {
        const decorated = LlmClient.decorate(client, policy)
        let effect: Effect.Effect<unknown, unknown> | undefined
        expect(() => (effect = decorated.complete(request))).not.toThrow()
        const exit = yield* Effect.exit(effect!)
        expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
        const streamExit = yield* Effect.exit(Stream.runDrain(decorated.stream(request)))
        expect(Exit.isFailure(streamExit) && Cause.isDie(streamExit.cause)).toBe(true)
      }
    }).pipe(Effect.provide(CircuitBreaker.layerStoreMemory)))
})

// ---------------------------------------------------------------------------------------------------------------
// Any error type: a user's own HTTP error, which is not an LlmError.

class HttpFailure extends Data.TaggedError("HttpFailure")<{ status: number }> {}
const http = (status: number) => Effect.fail(new HttpFailure({ status })) as Effect.Effect<string, HttpFailure>
const serverSide = (e: HttpFailure) => e.status >= 500

for (const [storeName, Store] of stores) describe(`CircuitBreaker.withBreaker over a user's error type (${storeName})`, () => {
  it.effect("isFailure picks the user's errors that count: 404s do not, three 503s open it", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ key: uniqueKey("http"), failureThreshold: 3, halfOpenAfter: "10 seconds" })
      const guard = CircuitBreaker.withBreaker(breaker, { isFailure: serverSide })
      for (let i = 0; i < 5; i++) yield* Effect.flip(http(404).pipe(guard))
      expect(yield* breaker.state).toMatchObject({ state: "closed", consecutiveFailures: 0 })
      for (let i = 0; i < 2; i++) yield* Effect.flip(http(503).pipe(guard))
      yield* Effect.flip(http(404).pipe(guard)) // neither counts nor resets the count
      expect(yield* breaker.state).toMatchObject({ state: "closed", consecutiveFailures: 2 })
      expect(yield* Effect.flip(CircuitBreaker.withBreaker(http(503), breaker, { isFailure: serverSide }))).toEqual(
        new HttpFailure({ status: 503 })
      )
      expect((yield* breaker.state).state).toBe("open")
      const runs = yield* Ref.make(0)
      const rejected = yield* Effect.flip(Effect.zipRight(Ref.update(runs, (n) => n + 1), http(503)).pipe(guard))
      expect(rejected).toBeInstanceOf(LlmError.CircuitOpen)
      expect(yield* Ref.get(runs)).toBe(0)
      yield* TestClock.adjust("10 seconds")
      expect(yield* Effect.succeed("back").pipe(guard)).toBe("back") // the probe closes it
      expect((yield* breaker.state).state).toBe("closed")
    }).pipe(Effect.provide(Store)))

  it.effect("without isFailure every error that is not an LlmError counts (the default classification)", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ key: uniqueKey("http-default"), failureThreshold: 2 })
      yield* Effect.flip(http(404).pipe(CircuitBreaker.withBreaker(breaker)))
      yield* Effect.flip(http(400).pipe(CircuitBreaker.withBreaker(breaker)))
      expect((yield* breaker.state).state).toBe("open")
    }).pipe(Effect.provide(Store)))

  it.effect("isFailure overrides the breaker's countAsFailure for its calls only", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ key: uniqueKey("http-override"), failureThreshold: 2, countAsFailure: () => false })
      yield* Effect.flip(http(503).pipe(CircuitBreaker.withBreaker(breaker)))
      yield* Effect.flip(breaker.execute(http(503)))
      expect(yield* breaker.state).toMatchObject({ state: "closed", consecutiveFailures: 0 })
      yield* Effect.flip(breaker.execute(http(503), { isFailure: serverSide }))
      yield* Effect.flip(http(502).pipe(CircuitBreaker.withBreaker(breaker, { isFailure: serverSide })))
      expect((yield* breaker.state).state).toBe("open")
    }).pipe(Effect.provide(Store)))

  it.effect("a probe failing with an error isFailure rejects frees its slot; one it accepts reopens", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ key: uniqueKey("http-probe"), failureThreshold: 1, halfOpenAfter: "5 seconds" })
      const guard = CircuitBreaker.withBreaker(breaker, { isFailure: serverSide })
      yield* Effect.flip(http(500).pipe(guard))
      yield* TestClock.adjust("5 seconds")
      yield* Effect.flip(http(404).pipe(guard)) // ignored: the slot is free again
      expect((yield* breaker.state).state).toBe("halfOpen")
      yield* Effect.flip(http(503).pipe(guard))
      expect((yield* breaker.state).state).toBe("open")
    }).pipe(Effect.provide(Store)))
})

describe("CircuitBreaker.withBreaker: types and options", () => {
  it("adds exactly CircuitOpen to E, whatever E is; A and R are unchanged", () => {
    // Only the types matter here: a stand-in breaker that runs the effect as is.
    const breaker = { execute: (effect: Effect.Effect<unknown>) => effect } as unknown as CircuitBreaker.CircuitBreaker
    const call = http(503)
    expectTypeOf(call.pipe(CircuitBreaker.withBreaker(breaker))).toEqualTypeOf<
      Effect.Effect<string, HttpFailure | LlmError.CircuitOpen>
    >()
    expectTypeOf(call.pipe(CircuitBreaker.withBreaker(breaker, { isFailure: (e) => e.status >= 500 }))).toEqualTypeOf<
      Effect.Effect<string, HttpFailure | LlmError.CircuitOpen>
    >()
    expectTypeOf(CircuitBreaker.withBreaker(call, breaker, { isFailure: (e) => e.status >= 500 })).toEqualTypeOf<
      Effect.Effect<string, HttpFailure | LlmError.CircuitOpen>
    >()
    expectTypeOf(Effect.succeed(1).pipe(CircuitBreaker.withBreaker(breaker))).toEqualTypeOf<
      Effect.Effect<number, LlmError.CircuitOpen>
    >()
    // @ts-expect-error: isFailure sees E (an HttpFailure has no `code`)
    call.pipe(CircuitBreaker.withBreaker(breaker, { isFailure: (e) => e.code === "x" }))
    // the three generic combinators together: E gains exactly Timeout and CircuitOpen
    const all = call.pipe(
      Timeout.withTimeout({ attempt: "30 seconds" }),
      CircuitBreaker.withBreaker(breaker, { isFailure: (e) => e._tag === "Timeout" || e.status >= 500 }),
      Retry.withRetry({ retryOn: (e) => e._tag !== "HttpFailure" || e.status >= 500 })
    )
    expectTypeOf(all).toEqualTypeOf<Effect.Effect<string, HttpFailure | LlmError.Timeout | LlmError.CircuitOpen>>()
  })

  it.effect("invalid options throw InvalidOptions when the combinator is built", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ key: uniqueKey("options") })
      expect(() => CircuitBreaker.withBreaker(breaker, { isFailure: 1 as unknown as () => boolean })).toThrow(/isFailure/)
      expect(() => CircuitBreaker.withBreaker(breaker, { isFailur: serverSide } as CircuitBreaker.CallOptions<HttpFailure>)).toThrow(
        /isFailur/
      )
      expect(() => breaker.execute(http(503), { isFailure: "no" as unknown as () => boolean })).toThrow(/isFailure/)
    }).pipe(Effect.provide(Store)))
})
