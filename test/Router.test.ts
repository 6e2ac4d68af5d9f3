import { describe, expect, it } from "@effect/vitest"
import { Chunk, Context, Duration, Effect, Fiber, Layer, Metric, MetricLabel, Random, Stream, TestClock } from "effect"
import * as Fallback from "../src/Fallback.js"
import * as FakeLlm from "../src/FakeLlm.js"
import * as Hedge from "../src/Hedge.js"
import { ChatRequest } from "../src/Llm.js"
import * as LlmClient from "../src/LlmClient.js"
import * as LlmError from "../src/LlmError.js"
import * as LlmMetrics from "../src/LlmMetrics.js"
import * as Router from "../src/Router.js"
import * as Tokenizer from "../src/Tokenizer.js"
import * as Quota from "../src/internal/quota.js"
import { emptyState } from "../src/internal/routerStore.js"
import { order } from "../src/internal/routerStrategy.js"

const request = (options: { model?: string; content?: string; maxTokens?: number } = {}) =>
  new ChatRequest({
    model: options.model ?? "gpt-4o",
    messages: [{ role: "user", content: options.content ?? "hi" }],
    ...(options.maxTokens === undefined ? {} : { maxTokens: options.maxTokens })
  })

/** A router over the FakeLlm below it; each deployment sends its own provider model name (`dep-<id>`). */
const routed = (script: FakeLlm.Script, options: Omit<Router.Options, "deployments"> & {
  readonly deployments: ReadonlyArray<Omit<Router.Deployment, "model"> & { readonly model?: string }>
}) => {
  const fake = FakeLlm.layer(script)
  const deployments = options.deployments.map((d) => ({ model: "gpt-4o", providerModel: `dep-${d.id}`, ...d }))
  const client = LlmClient.layerWith(Router.policy({ ...options, deployments })).pipe(Layer.provide(fake))
  return Layer.merge(fake, client).pipe(Layer.provide(Router.layerStoreMemory))
}

const ok = FakeLlm.reply("ok", { usage: { inputTokens: 5, outputTokens: 5 } })

/** Runs `effect` with the TestClock moved forward `by` meanwhile. */
const settled = <A, E, R>(effect: Effect.Effect<A, E, R>, by: Duration.DurationInput = "10 seconds") =>
  Effect.gen(function* () {
    const fiber = yield* Effect.fork(effect)
    yield* TestClock.adjust(by)
    return yield* Fiber.join(fiber)
  })

const counts = (ids: ReadonlyArray<string | undefined>) => {
  const byId: Record<string, number> = {}
  for (const id of ids) byId[id ?? "none"] = (byId[id ?? "none"] ?? 0) + 1
  return byId
}

/**
 * A provider behind FakeLlm that keeps a quota of `rpm[model]` requests a 10-second window on the Effect clock, as
 * a real one does: every answer (and every 429) reports x-ratelimit-* headers; a call over the quota is a 429.
 */
const withProviderQuota = (rpm: Readonly<Record<string, number>>) => {
  const windows = new Map<string, { start: number; count: number }>()
  let rejected = 0
  const step = (model: string) =>
    Effect.flatMap(Effect.clock, (clock) => {
      const limit = rpm[model]
      if (limit === undefined) return Effect.void
      const now = clock.unsafeCurrentTimeMillis()
      let w = windows.get(model)
      if (w === undefined || now >= w.start + 10_000) windows.set(model, w = { start: now, count: 0 })
      const fits = w.count < limit
      if (fits) w.count++
      const resetMs = w.start + 10_000 - now
      const headers = {
        "x-ratelimit-limit-requests": String(limit),
        "x-ratelimit-remaining-requests": String(limit - w.count),
        "x-ratelimit-reset-requests": `${resetMs}ms`
      }
      return Effect.zipRight(
        Quota.report(headers),
        fits ? Effect.void : Effect.fail(new LlmError.RateLimited({ model, retryAfter: Duration.millis(resetMs) }))
      ).pipe(Effect.tapError(() => Effect.sync(() => rejected++)))
    })
  const wrap = (inner: LlmClient.Service): LlmClient.Service => ({
    complete: (r) => Effect.zipRight(step(r.model), inner.complete(r)),
    stream: (r) => Stream.unwrap(Effect.as(step(r.model), inner.stream(r)))
  })
  return { wrap, rejected: () => rejected }
}

const serverError = (ms?: number) =>
  FakeLlm.fail(new LlmError.ServerError({ status: 503, ...(ms === undefined ? {} : { retryAfter: Duration.millis(ms) }) }))

describe("Router", () => {
  it.effect("weighted: 2,000 seeded draws split within 2.5 points of the weights", () =>
    Effect.gen(function* () {
      const candidates = [2, 3, 5].map((weight, index) => ({
        index, weight, rpm: undefined, tpm: undefined, cost: undefined, state: emptyState
      }))
      const firsts = [0, 0, 0]
      for (let i = 0; i < 2_000; i++) {
        const randoms = [yield* Random.next, yield* Random.next, yield* Random.next, yield* Random.next]
        firsts[order("weighted", candidates, randoms, { staleBefore: 0, exploration: 0 })[0]]++
      }
      // within 2.5 percentage points of each weight's share (about 3 standard deviations at n = 2,000)
      expect(Math.abs(firsts[0] / 2_000 - 0.2)).toBeLessThan(0.025)
      expect(Math.abs(firsts[1] / 2_000 - 0.3)).toBeLessThan(0.025)
      expect(Math.abs(firsts[2] / 2_000 - 0.5)).toBeLessThan(0.025)
    }).pipe(Effect.withRandom(Random.make(7))))

  it.effect("weighted: 2,000 calls through the policy split within 5 points of the weights (seeded)", () =>
    Effect.gen(function* () {
      const ids: Array<string | undefined> = []
      for (let i = 0; i < 2_000; i++) ids.push((yield* LlmClient.complete(request())).deployment)
      const byId = counts(ids)
      expect(Math.abs(byId.a / 2_000 - 0.2)).toBeLessThan(0.05)
      expect(Math.abs(byId.b / 2_000 - 0.3)).toBeLessThan(0.05)
      expect(Math.abs(byId.c / 2_000 - 0.5)).toBeLessThan(0.05)
    }).pipe(
      Effect.withRandom(Random.make(7)),
      Effect.provide(routed(ok, { deployments: [{ id: "a", weight: 2 }, { id: "b", weight: 3 }, { id: "c", weight: 5 }] }))
    ))

  it.effect("weighted: the same seed replays the same choices; a weight of 0 takes nothing", () =>
    Effect.gen(function* () {
      const pick = Effect.map(LlmClient.complete(request()), (r) => r.deployment)
      const first = yield* Effect.withRandom(Effect.replicateEffect(pick, 50), Random.make(3))
      const second = yield* Effect.withRandom(Effect.replicateEffect(pick, 50), Random.make(3))
      expect(first).toEqual(second)
      expect(first).not.toContain("off")
      expect(new Set(first).size).toBe(2)
    }).pipe(Effect.provide(routed(ok, { deployments: [{ id: "a" }, { id: "b" }, { id: "off", weight: 0 }] }))))

  it.effect("the response names the deployment, the provider gets its model name; other models pass through", () =>
    Effect.gen(function* () {
      const response = yield* LlmClient.complete(request())
      expect(response.deployment).toBe("only")
      const other = yield* LlmClient.complete(request({ model: "gpt-4o-mini" }))
      expect(other.deployment).toBeUndefined()
      expect((yield* FakeLlm.calls).map((c) => c.request.model)).toEqual(["azure-gpt4o", "gpt-4o-mini"])
    }).pipe(Effect.provide(routed(ok, { deployments: [{ id: "only", providerModel: "azure-gpt4o" }] }))))

  it.effect("least-busy: a call goes to the deployment with the fewest calls in flight", () =>
    Effect.gen(function* () {
      const first = yield* Effect.fork(LlmClient.complete(request({ content: "slow" })))
      yield* TestClock.adjust("1 millis")
      const second = yield* LlmClient.complete(request())
      const busy = (yield* FakeLlm.calls)[0].request.model
      expect(`dep-${second.deployment}`).not.toBe(busy)
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.join(first)
    }).pipe(Effect.provide(routed(
      ({ request }) => request.messages[0].content === "slow" ? FakeLlm.delay("5 seconds", ok) : ok,
      { deployments: [{ id: "a" }, { id: "b" }], strategy: "least-busy" }
    ))))

  it.effect("latency: ≥ 80 % of calls go to the fast deployment; exploration still measures the slow one", () =>
    Effect.gen(function* () {
      const ids: Array<string | undefined> = []
      for (let i = 0; i < 80; i++) ids.push((yield* settled(LlmClient.complete(request()), "1 second")).deployment)
      const byId = counts(ids)
      expect(byId.fast / 80).toBeGreaterThanOrEqual(0.8)
      expect(byId.slow).toBeGreaterThan(1) // explored
      const status = yield* Effect.flatMap(policyFor, (p) => p.status)
      const state = (id: string) => status.find((s) => s.id === id)!.state
      expect(state("fast").latencyMs).toBe(50)
      expect(state("slow").latencyMs).toBe(400)
    }).pipe(
      Effect.withRandom(Random.make(11)),
      Effect.provide(latencyLayer)
    ))

  it.effect("latency: the moving average weighs a new sample by latencyAlpha; a stale one is replaced", () =>
    Effect.gen(function* () {
      const router = yield* Router.policy({
        deployments: [{ id: "x", model: "gpt-4o", client: yield* timedClient([100, 300, 300, 20]) }],
        strategy: "latency",
        latencyAlpha: 0.5,
        staleAfter: "1 minute"
      })
      const client = LlmClient.decorate(yield* LlmClient.LlmClient, router)
      const averages: Array<number> = []
      for (let i = 0; i < 3; i++) {
        yield* settled(client.complete(request()), "1 second")
        averages.push((yield* router.status)[0].state.latencyMs)
      }
      expect(averages).toEqual([100, 200, 250]) // 0.5 × 300 + 0.5 × 100, then 0.5 × 300 + 0.5 × 200
      yield* TestClock.adjust("61 seconds")
      yield* settled(client.complete(request()), "1 second")
      expect((yield* router.status)[0].state.latencyMs).toBe(20) // the old average was stale
    }).pipe(Effect.provide(Layer.mergeAll(Router.layerStoreMemory, FakeLlm.layer(ok), Tokenizer.layerApproximate))))

  it.effect("cooldown: a 503 with Retry-After skips the deployment for exactly that long, then it is tried again", () =>
    Effect.gen(function* () {
      // "a" fails once with Retry-After 5 s; the same call fails over to "b".
      const first = yield* LlmClient.complete(request())
      expect(first.deployment).toBe("b")
      yield* TestClock.adjust("4999 millis")
      expect((yield* LlmClient.complete(request())).deployment).toBe("b")
      yield* TestClock.adjust("1 millis")
      expect((yield* LlmClient.complete(request())).deployment).toBe("a")
      expect((yield* FakeLlm.calls).map((c) => c.request.model)).toEqual(["dep-a", "dep-b", "dep-b", "dep-a"])
    }).pipe(Effect.provide(routed(
      ({ request, call }) => request.model === "dep-a" && call === 1 ? serverError(5_000) : ok,
      { deployments: [{ id: "a", weight: 1e9 }, { id: "b", weight: 1e-9 }] }
    ))))

  it.effect("cooldown: after allowedFails consecutive failures without Retry-After, for `cooldown`", () =>
    Effect.gen(function* () {
      const router = yield* Router.policy({
        deployments: [{ id: "a", model: "gpt-4o" }],
        allowedFails: 2,
        cooldown: "30 seconds"
      })
      const client = LlmClient.decorate(yield* LlmClient.LlmClient, router)
      expect((yield* Effect.flip(client.complete(request())))._tag).toBe("ServerError")
      expect((yield* router.status)[0].state.failures).toBe(1)
      expect((yield* Effect.flip(client.complete(request())))._tag).toBe("ServerError")
      const cooling = yield* Effect.flip(client.complete(request()))
      expect(cooling).toBeInstanceOf(LlmError.CircuitOpen)
      if (cooling._tag === "CircuitOpen") {
        expect(cooling.key).toBe("router:gpt-4o")
        expect(Duration.toMillis(cooling.retryAfter)).toBe(30_000)
      }
      yield* TestClock.adjust("30 seconds")
      expect((yield* client.complete(request())).deployment).toBe("a")
      expect(yield* Effect.map(FakeLlm.calls, (c) => c.length)).toBe(3)
    }).pipe(Effect.provide(Layer.merge(Router.layerStoreMemory, FakeLlm.layer([serverError(), serverError(), ok])))))

  it.effect("all cooling down: CircuitOpen with the earliest time one is back, no provider call", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(LlmClient.complete(request()))
      // both failed within the call: a after 3 s, b after 8 s → earliest 3 s (the last error is b's)
      expect(error._tag).toBe("RateLimited")
      yield* TestClock.adjust("1 second")
      const cooling = yield* Effect.flip(LlmClient.complete(request()))
      expect(cooling._tag).toBe("CircuitOpen")
      expect(LlmError.isRetryable(cooling)).toBe(false)
      if (cooling._tag === "CircuitOpen") expect(Duration.toMillis(cooling.retryAfter)).toBe(2_000)
      expect(yield* Effect.map(FakeLlm.calls, (c) => c.length)).toBe(2)
    }).pipe(Effect.provide(routed(
      ({ request }) => FakeLlm.fail(new LlmError.RateLimited({
        retryAfter: Duration.seconds(request.model === "dep-a" ? 3 : 8)
      })),
      { deployments: [{ id: "a" }, { id: "b" }] }
    ))))

  it.effect("a caller's error (BadRequest) neither fails over nor cools down", () =>
    Effect.gen(function* () {
      expect((yield* Effect.flip(LlmClient.complete(request())))._tag).toBe("BadRequest")
      expect(yield* Effect.map(FakeLlm.calls, (c) => c.length)).toBe(1)
      expect((yield* Effect.flip(LlmClient.complete(request())))._tag).toBe("BadRequest")
      expect(yield* Effect.map(FakeLlm.calls, (c) => c.length)).toBe(2)
    }).pipe(Effect.provide(routed(FakeLlm.fail(new LlmError.BadRequest({})), {
      deployments: [{ id: "a" }, { id: "b" }],
      allowedFails: 1
    }))))

  it.effect("pre-call context check: a deployment too small for prompt + maxTokens is skipped; none fits → ContextTooLong", () =>
    Effect.gen(function* () {
      expect((yield* LlmClient.complete(request({ maxTokens: 200 }))).deployment).toBe("large")
      const error = yield* Effect.flip(LlmClient.complete(request({ maxTokens: 5_000 })))
      expect(error._tag).toBe("ContextTooLong")
      if (error._tag === "ContextTooLong") expect(error.contextWindow).toBe(1_000)
      expect(yield* Effect.map(FakeLlm.calls, (c) => c.length)).toBe(1)
    }).pipe(Effect.provide(routed(ok, {
      deployments: [{ id: "small", contextWindow: 100, weight: 1e9 }, { id: "large", contextWindow: 1_000 }]
    }))))

  it.effect("rpm: a deployment at its minute's limit is skipped until the minute ends", () =>
    Effect.gen(function* () {
      const ids: Array<string | undefined> = []
      for (let i = 0; i < 4; i++) ids.push((yield* LlmClient.complete(request())).deployment)
      expect(ids).toEqual(["a", "a", "b", "b"])
      yield* TestClock.adjust("1 minute")
      expect((yield* LlmClient.complete(request())).deployment).toBe("a")
    }).pipe(Effect.provide(routed(ok, { deployments: [{ id: "a", rpm: 2, weight: 1e9 }, { id: "b", weight: 1e-9 }] }))))

  it.effect("tpm: the estimate (prompt + maxTokens) is charged up front, the unused part given back after", () =>
    Effect.gen(function* () {
      const router = yield* Router.policy({ deployments: [{ id: "a", model: "gpt-4o", tpm: 1_000 }] })
      const client = LlmClient.decorate(yield* LlmClient.LlmClient, router)
      yield* client.complete(request({ maxTokens: 500 }))
      expect((yield* router.status)[0].state.tokens).toBe(10) // the reply's usage: 5 + 5
    }).pipe(Effect.provide(Layer.merge(Router.layerStoreMemory, FakeLlm.layer(ok)))))

  it.effect("maxConcurrent: a full deployment is skipped; when every one is full the call fails at once", () =>
    Effect.gen(function* () {
      const fiber = yield* Effect.fork(LlmClient.complete(request()))
      yield* TestClock.adjust("1 millis")
      const error = yield* Effect.flip(LlmClient.complete(request()))
      expect(error._tag).toBe("CircuitOpen")
      yield* TestClock.adjust("10 seconds")
      expect((yield* Fiber.join(fiber)).deployment).toBe("a")
      expect((yield* LlmClient.complete(request())).deployment).toBe("a")
    }).pipe(Effect.provide(routed(
      ({ call }) => call === 1 ? FakeLlm.delay("5 seconds", ok) : ok,
      { deployments: [{ id: "a", maxConcurrent: 1 }] }
    ))))

  it.effect("an interrupted call frees its slot and counts as nothing", () =>
    Effect.gen(function* () {
      const router = yield* Router.policy({ deployments: [{ id: "a", model: "gpt-4o", maxConcurrent: 1 }], allowedFails: 1 })
      const client = LlmClient.decorate(yield* LlmClient.LlmClient, router)
      const fiber = yield* Effect.fork(client.complete(request()))
      yield* TestClock.adjust("1 millis")
      expect((yield* router.status)[0].state.inFlight).toBe(1)
      yield* Fiber.interrupt(fiber)
      const state = (yield* router.status)[0].state
      expect([state.inFlight, state.failures, state.cooldownUntil]).toEqual([0, 0, 0])
    }).pipe(Effect.provide(Layer.merge(Router.layerStoreMemory, FakeLlm.layer(FakeLlm.hang)))))

  /** A router over a remote-like store: each begin is applied at once, its answer arrives 1 s later. */
  const slowBeginRouter = Effect.gen(function* () {
    const memory = yield* Router.makeStoreMemory
    const slow: Router.Store = { ...memory, begin: (key, admission, now) => Effect.zipLeft(memory.begin(key, admission, now), Effect.sleep("1 second")) }
    const router = yield* Router.policy({ deployments: [{ id: "a", model: "gpt-4o", maxConcurrent: 1 }] }).pipe(
      Effect.provideService(Router.RouterStore, slow)
    )
    return { router, client: LlmClient.decorate(yield* LlmClient.LlmClient, router) }
  })

  it.effect("a caller interrupted while its begin is on its way back from the store still settles its slot", () =>
    Effect.gen(function* () {
      const { client, router } = yield* slowBeginRouter
      const fiber = yield* Effect.fork(client.complete(request()))
      yield* TestClock.adjust("500 millis")
      expect((yield* router.status)[0].state.inFlight).toBe(1) // counted by the store, its answer not back yet
      const interrupting = yield* Effect.fork(Fiber.interrupt(fiber))
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(interrupting)
      expect((yield* router.status)[0].state.inFlight).toBe(0)
    }).pipe(Effect.provide(Layer.merge(FakeLlm.layer(FakeLlm.hang), Tokenizer.layerApproximate))))

  it.effect("a stream whose consumer is interrupted while its begin is on its way back still settles its slot", () =>
    Effect.gen(function* () {
      const { client, router } = yield* slowBeginRouter
      const fiber = yield* Effect.fork(Stream.runDrain(client.stream(request())))
      yield* TestClock.adjust("500 millis")
      expect((yield* router.status)[0].state.inFlight).toBe(1)
      const interrupting = yield* Effect.fork(Fiber.interrupt(fiber))
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(interrupting)
      expect((yield* router.status)[0].state.inFlight).toBe(0)
      // a stream that runs to its end is settled once: its slot is free and it counts one request
      const done = yield* Effect.fork(Stream.runDrain(client.stream(request())))
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(done)
      const state = (yield* router.status)[0].state
      expect([state.inFlight, state.requests, state.samples]).toEqual([0, 2, 1])
    }).pipe(Effect.provide(Layer.merge(
      FakeLlm.layer(FakeLlm.stream(["a", "b"])), // the interrupted stream never reaches the provider
      Tokenizer.layerApproximate
    ))))

  it.effect("usage: the deployment with the most of its minute left", () =>
    Effect.gen(function* () {
      const ids: Array<string | undefined> = []
      for (let i = 0; i < 6; i++) ids.push((yield* LlmClient.complete(request())).deployment)
      // a: 10 rpm, b: 4 rpm → a, then alternating by remaining fraction
      expect(counts(ids)).toEqual({ a: 4, b: 2 })
    }).pipe(Effect.provide(routed(ok, { deployments: [{ id: "a", rpm: 10 }, { id: "b", rpm: 4 }], strategy: "usage" }))))

  it.effect("providerQuota: a deployment whose quota the headers say is spent is skipped until its reset, before any 429", () =>
    Effect.gen(function* () {
      const run = (providerQuota: boolean) =>
        Effect.gen(function* () {
          const provider = withProviderQuota({ "dep-small": 3 })
          const router = yield* Router.policy({
            providerQuota,
            deployments: [
              { id: "small", model: "gpt-4o", providerModel: "dep-small", weight: 1e9 },
              { id: "big", model: "gpt-4o", providerModel: "dep-big", weight: 1e-9 }
            ]
          })
          const client = LlmClient.decorate(provider.wrap(yield* LlmClient.LlmClient), router)
          const ids: Array<string | undefined> = []
          for (let i = 0; i < 6; i++) ids.push((yield* client.complete(request())).deployment)
          yield* TestClock.adjust("10 seconds") // the reset
          ids.push((yield* client.complete(request())).deployment)
          return { ids, rejected: provider.rejected() }
        }).pipe(Effect.provide(Layer.merge(Router.layerStoreMemory, FakeLlm.layer(ok))))
      const on = yield* run(true)
      expect(on.ids).toEqual(["small", "small", "small", "big", "big", "big", "small"])
      expect(on.rejected).toBe(0)
      // without it the fourth call meets the 429 (and fails over), then the Retry-After cools the deployment down
      const off = yield* run(false)
      expect(off.ids).toEqual(["small", "small", "small", "big", "big", "big", "small"])
      expect(off.rejected).toBe(1)
    }))

  it.effect("providerQuota: a stream's headers count from its first chunk on, while it is still running", () =>
    Effect.gen(function* () {
      const provider = withProviderQuota({ "dep-small": 1 })
      const router = yield* Router.policy({
        deployments: [
          { id: "small", model: "gpt-4o", providerModel: "dep-small", weight: 1e9 },
          { id: "big", model: "gpt-4o", providerModel: "dep-big", weight: 1e-9 }
        ]
      })
      const client = LlmClient.decorate(provider.wrap(yield* LlmClient.LlmClient), router)
      const running = yield* Effect.fork(Stream.runCollect(client.stream(request())))
      yield* TestClock.adjust("1 second") // the stream has its headers; its chunks come at 5 s
      const small = (yield* router.status).find((d) => d.id === "small")
      expect(small?.state.quota?.requests?.remaining).toBe(0)
      expect((yield* client.complete(request())).deployment).toBe("big")
      yield* TestClock.adjust("5 seconds")
      const chunks = yield* Fiber.join(running)
      expect(Chunk.last(chunks).pipe((c) => c._tag === "Some" ? c.value.deployment : undefined)).toBe("small")
      expect(provider.rejected()).toBe(0)
    }).pipe(Effect.provide(Layer.merge(
      Router.layerStoreMemory,
      FakeLlm.layer([FakeLlm.delay("5 seconds", FakeLlm.stream(["a", "b"])), ok])
    ))))

  it.effect("usage: ranks by the provider's quota left too", () =>
    Effect.gen(function* () {
      const provider = withProviderQuota({ "dep-a": 10, "dep-b": 4 })
      const router = yield* Router.policy({
        strategy: "usage",
        deployments: [
          { id: "a", model: "gpt-4o", providerModel: "dep-a" },
          { id: "b", model: "gpt-4o", providerModel: "dep-b" }
        ]
      })
      const client = LlmClient.decorate(provider.wrap(yield* LlmClient.LlmClient), router)
      const ids: Array<string | undefined> = []
      for (let i = 0; i < 12; i++) ids.push((yield* client.complete(request())).deployment)
      // each answer lowers its deployment's fraction left; the other one is chosen while it has more
      expect(counts(ids)).toEqual({ a: 8, b: 4 })
      expect(provider.rejected()).toBe(0)
    }).pipe(Effect.withRandom(Random.make(3)), Effect.provide(Layer.merge(Router.layerStoreMemory, FakeLlm.layer(ok)))))

  it.effect("cost: the cheapest priced deployment that fits", () =>
    Effect.gen(function* () {
      const ids: Array<string | undefined> = []
      for (let i = 0; i < 5; i++) ids.push((yield* LlmClient.complete(request({ maxTokens: 100 }))).deployment)
      expect(ids).toEqual(["mini", "mini", "mini", "mini", "mini"])
    }).pipe(Effect.provide(routed(ok, {
      deployments: [{ id: "big", providerModel: "gpt-4o" }, { id: "mini", providerModel: "gpt-4o-mini" }, { id: "unpriced" }],
      strategy: "cost"
    }))))

  it.effect("streams: routed, tagged on the last chunk, failed over only before the first delta", () =>
    Effect.gen(function* () {
      const chunks = yield* settled(Stream.runCollect(LlmClient.stream(request())))
      const last = Chunk.toReadonlyArray(chunks).at(-1)!
      expect(last.deployment).toBe("b")
      expect(Chunk.toReadonlyArray(chunks).map((c) => c.content).join("")).toBe("hello")
      const calls = yield* FakeLlm.calls
      expect(calls.map((c) => c.request.model)).toEqual(["dep-a", "dep-b"])
      // started, then cut: the error surfaces, no second deployment
      const error = yield* settled(Effect.flip(Stream.runDrain(LlmClient.stream(request({ content: "cut" })))))
      expect(error._tag).toBe("StreamTruncated")
    }).pipe(Effect.provide(routed(
      ({ request, call }) =>
        request.messages[0].content === "cut" ? FakeLlm.cut(["par", "tial"]) :
        request.model === "dep-a" && call === 1 ? serverError() : FakeLlm.stream(["hel", "lo"], { firstChunkAfter: "40 millis" }),
      { deployments: [{ id: "a", weight: 1e9 }, { id: "b", weight: 1e-9 }] }
    ))))

  it.effect("streams: the latency sample is the time to first token", () =>
    Effect.gen(function* () {
      const router = yield* Router.policy({ deployments: [{ id: "a", model: "gpt-4o" }], strategy: "latency" })
      const client = LlmClient.decorate(yield* LlmClient.LlmClient, router)
      yield* settled(Stream.runDrain(client.stream(request())))
      expect((yield* router.status)[0].state.latencyMs).toBe(70)
    }).pipe(Effect.provide(Layer.merge(
      Router.layerStoreMemory,
      FakeLlm.layer(FakeLlm.stream(["a", "b", "c"], { firstChunkAfter: "70 millis", interval: "500 millis" }))
    ))))

  it.effect("metrics carry the deployment id", () =>
    Effect.gen(function* () {
      yield* LlmClient.complete(request())
      const pairs = yield* Metric.snapshot
      const found = pairs.find((p) =>
        p.metricKey.name === LlmMetrics.names.routerRequests &&
        p.metricKey.tags.some((t) => t.key === "deployment" && t.value === "metered-1"))
      expect(found).toBeDefined()
      expect(found!.metricKey.tags).toContainEqual(MetricLabel.make("outcome", "success"))
    }).pipe(Effect.provide(routed(ok, { deployments: [{ id: "metered-1" }] }))))

  it.effect("composition: when every deployment of a model is out, Fallback moves to the next model at once", () =>
    Effect.gen(function* () {
      const router = yield* Router.policy({ deployments: [{ id: "a", model: "gpt-4o" }, { id: "b", model: "gpt-4o" }] })
      const client = LlmClient.decorate(
        yield* LlmClient.LlmClient,
        Fallback.policy({ models: ["gpt-4o", "gpt-4o-mini"] }),
        router
      )
      const first = yield* client.complete(request())
      expect([first.model, first.deployment]).toEqual(["gpt-4o-mini", undefined])
      const second = yield* client.complete(request()) // both cooling down: no call to gpt-4o at all
      expect(second.model).toBe("gpt-4o-mini")
      expect((yield* FakeLlm.calls).map((c) => c.request.model)).toEqual(["gpt-4o", "gpt-4o", "gpt-4o-mini", "gpt-4o-mini"])
    }).pipe(Effect.provide(Layer.mergeAll(
      Router.layerStoreMemory,
      FakeLlm.layer(({ request }) => request.model === "gpt-4o" ? FakeLlm.fail(new LlmError.RateLimited({})) : ok)
    ))))

  it.effect("composition: Hedge above a least-busy Router sends the hedge to the other deployment", () =>
    Effect.gen(function* () {
      const router = yield* Router.policy({
        strategy: "least-busy",
        deployments: [{ id: "a", model: "gpt-4o", providerModel: "dep-a" }, { id: "b", model: "gpt-4o", providerModel: "dep-b" }]
      })
      const client = LlmClient.decorate(yield* LlmClient.LlmClient, yield* Hedge.policy({ after: "100 millis" }), router)
      const response = yield* settled(client.complete(request()))
      const models = (yield* FakeLlm.calls).map((c) => c.request.model)
      expect(new Set(models).size).toBe(2) // the primary on one deployment, the hedge on the other
      expect(`dep-${response.deployment}`).toBe(models[1])
    }).pipe(Effect.provide(Layer.mergeAll(
      Router.layerStoreMemory,
      FakeLlm.layer(({ call }) => FakeLlm.delay(call === 1 ? "5 seconds" : "10 millis", ok))
    ))))

  it.effect("bad options: every failing path is listed", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(Router.policy({
        deployments: [
          { id: "a", model: "gpt-4o", weight: -1 },
          { id: "a", model: "gpt-4o", rpm: 0 }
        ],
        strategy: "fastest" as Router.Strategy,
        exploration: 2,
        cooldwn: "1 second"
      } as Router.Options))
      expect(error._tag).toBe("InvalidOptions")
      expect(error.issues.map((i) => i.path).sort()).toEqual(
        ["cooldwn", "deployments.0.weight", "deployments.1.rpm", "exploration", "strategy"].sort()
      )
      const duplicate = yield* Effect.flip(Router.policy({ deployments: [{ id: "a", model: "m" }, { id: "a", model: "m" }] }))
      expect(duplicate.issues.map((i) => i.path)).toEqual(["deployments.1.id"])
      const empty = yield* Effect.flip(Router.policy({ deployments: [] }))
      expect(empty.issues.map((i) => i.path)).toEqual(["deployments.0"])
    }).pipe(Effect.provide(Router.layerStoreMemory)))
})

/** A client answering call n after `delays[n]` ms (the last repeats). */
const timedClient = (delays: ReadonlyArray<number>) =>
  Effect.map(FakeLlm.make(({ call }) => FakeLlm.delay(Duration.millis(delays[Math.min(call, delays.length) - 1]), ok)), (f) =>
    f.client)

const latencyRouter = Router.policy({
  deployments: [
    { id: "fast", model: "gpt-4o", providerModel: "fast" },
    { id: "slow", model: "gpt-4o", providerModel: "slow" }
  ],
  strategy: "latency"
})

class LatencyRouter extends Context.Tag("test/LatencyRouter")<LatencyRouter, Router.Policy>() {}

const policyFor = LatencyRouter

const latencyLayer = (() => {
  const fake = FakeLlm.layer(({ request }) => FakeLlm.delay(request.model === "slow" ? "400 millis" : "50 millis", ok))
  const router = Layer.effect(LatencyRouter, latencyRouter)
  const client = Layer.effect(
    LlmClient.LlmClient,
    Effect.map(Effect.zip(LlmClient.LlmClient, LatencyRouter), ([base, policy]) => LlmClient.decorate(base, policy))
  )
  return Layer.mergeAll(fake, router, client.pipe(Layer.provide(Layer.merge(fake, router)))).pipe(
    Layer.provide(Router.layerStoreMemory)
  )
})()
