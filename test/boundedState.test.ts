import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Metric } from "effect"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as FakeLlm from "../src/FakeLlm.js"
import { BoundedKeys } from "../src/internal/boundedKeys.js"
import { makeMemoryStore } from "../src/internal/rateLimitStore.js"
import { ChatRequest } from "../src/Llm.js"
import * as LlmClient from "../src/LlmClient.js"
import * as LlmError from "../src/LlmError.js"
import * as LlmMetrics from "../src/LlmMetrics.js"
import * as TokenBudget from "../src/TokenBudget.js"

const evictions = (store: string) =>
  Effect.map(Metric.value(Metric.tagged(LlmMetrics.stateEvictions, "store", store)), (s) => s.count)

const day = { _tag: "Calendar", start: 0, end: 86_400_000 } as const

// Before the bound, each of these maps grew by one entry per distinct key for the life of the process.
describe("bounded per-key state", () => {
  it("BoundedKeys: least recently used goes first past the capacity; access refreshes a key", () => {
    const keys = new BoundedKeys<number>("test-lru", 3)
    keys.set("a", 1)
    keys.set("b", 2)
    keys.set("c", 3)
    expect(keys.get("a")).toBe(1) // a is now the most recent
    keys.set("d", 4)
    expect(keys.peek("b")).toBeUndefined()
    expect([keys.peek("a"), keys.peek("c"), keys.peek("d")]).toEqual([1, 3, 4])
    keys.release("a")
    expect(keys.size).toBe(2)
  })

  it.effect("TokenBudget memory store: a key back to the fresh state is forgotten; live keys are capped, counted", () =>
    Effect.gen(function* () {
      const store = yield* TokenBudget.makeStoreMemoryWith({ maxKeys: 100 })
      const before = yield* evictions("token-budget")
      // 1,000 users whose calls were refunded: nothing is held for any of them
      for (let i = 0; i < 1000; i++) {
        const key = `refunded-${i}`
        yield* store.reserve({ key, reservationId: "r", amount: { tokens: 10, nanoUsd: 0 }, limits: { tokens: 100 }, window: day, now: 1, expiresAt: 1000 })
        yield* store.refund({ key, reservationId: "r", window: day, now: 2 })
      }
      expect(yield* evictions("token-budget")).toBe(before)
      // 150 users with usage: the 50 least recently used are evicted, each counted
      for (let i = 0; i < 150; i++) {
        const key = `used-${i}`
        yield* store.reserve({ key, reservationId: "r", amount: { tokens: 10, nanoUsd: 0 }, limits: { tokens: 100 }, window: day, now: 1, expiresAt: 1000 })
        yield* store.commit({ key, reservationId: "r", actual: { tokens: 7, nanoUsd: 0 }, limits: { tokens: 100 }, alertAt: [], window: day, now: 2 })
      }
      expect((yield* evictions("token-budget")) - before).toBe(50)
      expect((yield* store.usage({ key: "used-149", window: day, now: 3 })).used.tokens).toBe(7)
      expect((yield* store.usage({ key: "used-0", window: day, now: 3 })).used.tokens).toBe(0)
    }))

  it.effect("TokenBudget memory store: maxKeys is validated", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(TokenBudget.makeStoreMemoryWith({ maxKeys: 0 }))
      expect(error._tag).toBe("InvalidOptions")
      expect(error.message).toContain("maxKeys")
    }))

  it.effect("CircuitBreaker memory store: a breaker back to closed with nothing counted is forgotten", () =>
    Effect.gen(function* () {
      const before = yield* evictions("circuit-breaker")
      const policy = yield* CircuitBreaker.policy({ per: (request) => request.user ?? "anonymous" })
      const fake = yield* FakeLlm.make(FakeLlm.reply("ok"), { record: false })
      const client = LlmClient.decorate(fake.client, policy)
      // ten times more distinct users than the bound, each with a healthy call: none is live state
      for (let i = 0; i < 1000; i++) {
        yield* client.complete(new ChatRequest({ model: "m", messages: [{ role: "user", content: "hi" }], user: `u${i}` }))
      }
      expect(yield* evictions("circuit-breaker")).toBe(before)
      // users whose calls failed are live state: past the bound the oldest go, counted
      const failing = yield* FakeLlm.make(FakeLlm.fail(new LlmError.ServerError({ status: 503 })), { record: false })
      const broken = LlmClient.decorate(failing.client, policy)
      for (let i = 0; i < 150; i++) {
        yield* Effect.flip(broken.complete(new ChatRequest({ model: "m", messages: [{ role: "user", content: "hi" }], user: `f${i}` })))
      }
      expect((yield* evictions("circuit-breaker")) - before).toBe(50)
    }).pipe(Effect.provideServiceEffect(CircuitBreaker.CircuitBreakerStore, CircuitBreaker.makeStoreMemoryWith({ maxKeys: 100 }))))

  it("RateLimiter memory store: full buckets are forgotten, live ones capped", async () => {
    const { size, store } = makeMemoryStore()
    await Effect.runPromise(Effect.forEach(Array.from({ length: 120_000 }, (_, i) => i), (i) =>
      store.tokenBucket({ key: `k${i}`, tokens: 1, limit: 10, refillRate: Duration.seconds(1), allowOverflow: false }), { discard: true }))
    expect(size()).toBeLessThanOrEqual(100_000)
  })

  it.effect("FakeLlm keeps the most recent calls only, or none", () =>
    Effect.gen(function* () {
      const request = (i: number) => new ChatRequest({ model: "m", messages: [{ role: "user", content: `q${i}` }] })
      const bounded = yield* FakeLlm.make(FakeLlm.reply("ok"), { record: 10 })
      yield* Effect.forEach(Array.from({ length: 35 }, (_, i) => i), (i) => bounded.client.complete(request(i)))
      const calls = yield* bounded.recorder.calls
      expect(calls.map((c) => c.call)).toEqual(Array.from({ length: 10 }, (_, i) => 26 + i))
      const off = yield* FakeLlm.make(FakeLlm.reply("ok"), { record: false })
      yield* off.client.complete(request(1))
      expect(yield* off.recorder.calls).toEqual([])
      expect(() => Effect.runSync(FakeLlm.make(FakeLlm.reply("ok"), { record: -1 }))).toThrow(/record/)
    }))
})
