/**
 * The contract every RateLimiterStore backend meets (memory, Redis): the token-bucket and fixed-window algorithms of
 * `RateLimit.layerStoreMemory`, each call one atomic step, time from the Effect clock (TestClock here). Keys and
 * policy names are unique per run, so a shared backend needs no cleanup.
 */
import * as RateLimiter from "@effect/experimental/RateLimiter"
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Duration, Effect, Either, Fiber, Layer, TestClock, TestServices } from "effect"
import { randomUUID } from "node:crypto"
import * as FakeLlm from "../../src/FakeLlm.js"
import { makeMemoryStore } from "../../src/internal/rateLimitStore.js"
import { ChatRequest } from "../../src/Llm.js"
import * as LlmClient from "../../src/LlmClient.js"
import * as RateLimit from "../../src/RateLimit.js"

const request = (options: { user?: string; maxTokens?: number } = {}) =>
  new ChatRequest({
    model: "gpt-4o",
    messages: [{ role: "user", content: "hi" }],
    ...(options.user === undefined ? {} : { user: options.user }),
    ...(options.maxTokens === undefined ? {} : { maxTokens: options.maxTokens })
  })

const callTimes = Effect.map(FakeLlm.calls, (calls) => calls.map((c) => c.at))

/**
 * Waits (in real time, at most 2 s) until `n` fibers sleep on the TestClock. A store call may be real I/O (Redis),
 * so a forked caller reaches its sleep a few real milliseconds later: adjusting the clock before that would be lost.
 */
const sleeping = (n = 1) =>
  Effect.gen(function* () {
    for (let i = 0; i < 2_000; i++) {
      if (Chunk.size(yield* TestClock.sleeps()) >= n) return
      yield* TestServices.provideLive(Effect.sleep("1 millis"))
    }
    return yield* Effect.dieMessage(`expected ${n} fiber(s) sleeping on the TestClock`)
  })

/** A deterministic pseudo-random sequence (a 32-bit LCG), so a failing sequence can be replayed. */
const lcg = (seed: number) => {
  let state = seed >>> 0
  return (n: number) => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0
    return state % n
  }
}

export const rateLimiterStoreContract = <E>(
  name: string,
  storeLayer: Layer.Layer<RateLimiter.RateLimiterStore, E>
) =>
  describe(`RateLimiterStore contract: ${name}`, () => {
    const run = randomUUID()
    let n = 0
    const newKey = (label: string) => `rl-contract:${run}:${label}:${++n}`

    const bucket = (key: string, tokens: number, limit: number, refillMs: number, allowOverflow = false) =>
      Effect.flatMap(RateLimit.RateLimiterStore, (store) =>
        store.tokenBucket({ key, tokens, limit, refillRate: Duration.millis(refillMs), allowOverflow }))
    const window = (key: string, tokens: number, refillMs: number, limit: number | undefined) =>
      Effect.flatMap(RateLimit.RateLimiterStore, (store) =>
        store.fixedWindow({ key, tokens, refillRate: Duration.millis(refillMs), limit }))

    /** The policy over the store under test, with a policy name of its own (its keys are new). */
    const limited = (options: RateLimit.Options) => {
      const fake = FakeLlm.layer(FakeLlm.reply("ok"))
      const decorated = LlmClient.layerWith(RateLimit.policy({ name: `contract-${run}-${++n}`, ...options })).pipe(
        Layer.provide(fake)
      )
      return Layer.merge(fake, decorated).pipe(Layer.provide(storeLayer))
    }

    describe("token bucket", () => {
      it.effect("a new key holds `limit` tokens; a take that does not fit fails and takes nothing", () =>
        Effect.gen(function* () {
          const key = newKey("fresh")
          const results: Array<number> = []
          for (let i = 0; i < 5; i++) results.push(yield* bucket(key, 1, 3, 1_000))
          expect(results).toEqual([2, 1, 0, -1, -1])
          const big = newKey("big")
          expect(yield* bucket(big, 2, 3, 1_000)).toBe(1)
          expect(yield* bucket(big, 2, 3, 1_000)).toBe(-1)
          expect(yield* bucket(big, 1, 3, 1_000)).toBe(0)
        }).pipe(Effect.provide(storeLayer)))

      it.effect("refills one token per whole interval, and never beyond the limit", () =>
        Effect.gen(function* () {
          const key = newKey("refill")
          expect(yield* bucket(key, 3, 3, 1_000)).toBe(0)
          yield* TestClock.adjust("1500 millis")
          expect(yield* bucket(key, 1, 3, 1_000)).toBe(0) // one token back, the half interval kept
          yield* TestClock.adjust("500 millis")
          expect(yield* bucket(key, 1, 3, 1_000)).toBe(0) // the kept half completes a second token
          expect(yield* bucket(key, 1, 3, 1_000)).toBe(-1)
          yield* TestClock.adjust("10 minutes")
          expect(yield* bucket(key, 1, 3, 1_000)).toBe(2) // a full bucket, not 600 tokens
          expect(yield* bucket(key, 2, 3, 1_000)).toBe(0)
        }).pipe(Effect.provide(storeLayer)))

      it.effect("allowOverflow goes below zero (the caller waits the deficit) and refills from there", () =>
        Effect.gen(function* () {
          const key = newKey("overflow")
          const results: Array<number> = []
          for (let i = 0; i < 4; i++) results.push(yield* bucket(key, 1, 2, 1_000, true))
          expect(results).toEqual([1, 0, -1, -2])
          yield* TestClock.adjust("2 seconds")
          expect(yield* bucket(key, 0, 2, 1_000, true)).toBe(0)
          yield* TestClock.adjust("1 second")
          expect(yield* bucket(key, 1, 2, 1_000, true)).toBe(0)
        }).pipe(Effect.provide(storeLayer)))

      it.effect("a refund (negative tokens) gives tokens back but never fills a bucket beyond its limit", () =>
        Effect.gen(function* () {
          const key = newKey("refund")
          expect(yield* bucket(key, 2, 2, 30_000, true)).toBe(0)
          expect(yield* bucket(key, -1, 2, 30_000, true)).toBe(1)
          yield* TestClock.adjust("1 minute")
          yield* bucket(key, -1, 2, 30_000, true) // a late refund after the bucket refilled
          expect(yield* bucket(key, 1, 2, 30_000, true)).toBe(1)
          expect(yield* bucket(key, 1, 2, 30_000, true)).toBe(0)
          expect(yield* bucket(key, 1, 2, 30_000, true)).toBe(-1)
        }).pipe(Effect.provide(storeLayer)))

      it.effect("matches the reference algorithm step for step over 300 random operations (fractional refill)", () =>
        Effect.gen(function* () {
          const reference = makeMemoryStore().store
          const random = lcg(20250310)
          const keys = [newKey("diff-a"), newKey("diff-b"), newKey("diff-c")]
          // 60 s / 7: a fractional refill interval, as RateLimit uses for a limit that does not divide a minute
          const refillRate = Duration.unsafeDivide(Duration.minutes(1), 7)
          const mismatches: Array<string> = []
          for (let step = 0; step < 300; step++) {
            const options = {
              key: keys[random(keys.length)],
              tokens: random(8) - 2,
              limit: 7,
              refillRate,
              allowOverflow: random(2) === 1
            }
            const expected = yield* reference.tokenBucket(options)
            const actual = yield* Effect.flatMap(RateLimit.RateLimiterStore, (store) => store.tokenBucket(options))
            if (actual !== expected) mismatches.push(`step ${step}: expected ${expected}, got ${actual}`)
            yield* TestClock.adjust(Duration.millis(random(6_000)))
          }
          expect(mismatches).toEqual([])
        }).pipe(Effect.provide(storeLayer)))

      it.effect("is atomic: 50 concurrent takes from a bucket of 10 leave exactly 10 admitted", () =>
        Effect.gen(function* () {
          const key = newKey("concurrent")
          const results = yield* Effect.all(Array.from({ length: 50 }, () => bucket(key, 1, 10, 6_000)), {
            concurrency: "unbounded"
          })
          expect(results.filter((r) => r >= 0)).toHaveLength(10)
          expect([...results.filter((r) => r >= 0)].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
        }).pipe(Effect.provide(storeLayer)))

      it.effect("keys are independent", () =>
        Effect.gen(function* () {
          const a = newKey("a")
          const b = newKey("b")
          expect(yield* bucket(a, 1, 1, 1_000)).toBe(0)
          expect(yield* bucket(a, 1, 1, 1_000)).toBe(-1)
          expect(yield* bucket(b, 1, 1, 1_000)).toBe(0)
        }).pipe(Effect.provide(storeLayer)))
    })

    describe("fixed window", () => {
      it.effect("counts tokens, each stretching the window by the refill interval; a refusal changes nothing", () =>
        Effect.gen(function* () {
          const key = newKey("window")
          expect(yield* window(key, 1, 1_000, 3)).toEqual([1, 1_000])
          expect(yield* window(key, 1, 1_000, 3)).toEqual([2, 2_000])
          yield* TestClock.adjust("500 millis")
          expect(yield* window(key, 1, 1_000, 3)).toEqual([3, 2_500])
          expect(yield* window(key, 1, 1_000, 3)).toEqual([4, 2_500])
          expect(yield* window(key, 2, 1_000, 3)).toEqual([5, 2_500])
          yield* TestClock.adjust("2500 millis")
          expect(yield* window(key, 1, 1_000, 3)).toEqual([1, 1_000]) // the window ended exactly now
        }).pipe(Effect.provide(storeLayer)))

      it.effect("without a limit it keeps counting (the 'delay' mode)", () =>
        Effect.gen(function* () {
          const key = newKey("unlimited")
          expect(yield* window(key, 5, 1_000, undefined)).toEqual([5, 5_000])
          expect(yield* window(key, 5, 1_000, undefined)).toEqual([10, 10_000])
          yield* TestClock.adjust("4 seconds")
          expect(yield* window(key, 1, 1_000, undefined)).toEqual([11, 7_000])
        }).pipe(Effect.provide(storeLayer)))

      it.effect("is atomic: 50 concurrent takes with a limit of 10 admit exactly 10", () =>
        Effect.gen(function* () {
          const key = newKey("window-concurrent")
          const results = yield* Effect.all(Array.from({ length: 50 }, () => window(key, 1, 100, 10)), {
            concurrency: "unbounded"
          })
          expect(results.filter(([count]) => count <= 10).map(([count]) => count).sort((a, b) => a - b)).toEqual(
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
          )
          expect(results.filter(([count]) => count > 10).every(([count, ttl]) => count === 11 && ttl === 1_000)).toBe(
            true
          )
        }).pipe(Effect.provide(storeLayer)))
    })

    describe("RateLimit.policy over the store", () => {
      it.effect("wait: a burst of rpm passes at once, the next waits one refill (60 s / rpm)", () =>
        Effect.gen(function* () {
          const fiber = yield* Effect.fork(Effect.replicateEffect(LlmClient.complete(request()), 3))
          yield* sleeping()
          yield* TestClock.adjust("29999 millis")
          expect(yield* callTimes).toEqual([0, 0])
          yield* TestClock.adjust("1 millis")
          yield* Fiber.join(fiber)
          expect(yield* callTimes).toEqual([0, 0, 30_000])
        }).pipe(Effect.provide(limited({ rpm: 2, onLimit: "wait" }))))

      it.effect("fail: the request over the limit fails with RateLimited and its retryAfter, then fits", () =>
        Effect.gen(function* () {
          yield* LlmClient.complete(request())
          yield* LlmClient.complete(request())
          const error = yield* Effect.flip(LlmClient.complete(request()))
          expect(error._tag).toBe("RateLimited")
          if (error._tag === "RateLimited") {
            expect(error.source).toBe("client")
            expect(Duration.toMillis(error.retryAfter!)).toBe(30_000)
          }
          yield* TestClock.adjust("30 seconds")
          yield* LlmClient.complete(request())
          expect(yield* callTimes).toEqual([0, 0, 30_000])
        }).pipe(Effect.provide(limited({ rpm: 2, onLimit: "fail" }))))

      it.effect("tpm: waits for the deficit to refill (60 s / tpm a token)", () =>
        Effect.gen(function* () {
          // ≈ 7 prompt tokens + 40 = 47 a request; after two, 6 are left and 41 more take 41 × 600 ms
          const fiber = yield* Effect.fork(Effect.replicateEffect(LlmClient.complete(request({ maxTokens: 40 })), 3))
          yield* sleeping()
          yield* TestClock.adjust("1 minute")
          yield* Fiber.join(fiber)
          expect(yield* callTimes).toEqual([0, 0, 24_600])
        }).pipe(Effect.provide(limited({ tpm: 100, tpmCharge: "estimate" }))))

      // The give-back runs in the background (the answer is not held for it): polled in real time, at most 2 s.
      const fitsSoon = <R>(call: Effect.Effect<unknown, unknown, R>) =>
        Effect.gen(function* () {
          for (let i = 0; i < 2_000; i++) {
            if (Either.isRight(yield* Effect.either(call))) return true
            yield* TestServices.provideLive(Effect.sleep("1 millis"))
          }
          return false
        })

      it.effect("tpmCharge usage (the default): after the call the unused part of the estimate goes back", () =>
        Effect.gen(function* () {
          // ≈ 7 prompt tokens + 60 charged up front; the answer used ≈ 2, so ≈ 98 of 100 are free again
          yield* LlmClient.complete(request({ maxTokens: 60 }))
          expect(yield* fitsSoon(LlmClient.complete(request({ maxTokens: 80 })))).toBe(true)
          expect(yield* callTimes).toEqual([0, 0])
        }).pipe(Effect.provide(limited({ tpm: 100, onLimit: "fail" }))))

      it.effect("tpmCharge estimate: the estimate stays charged, as a provider that counts max_tokens up front", () =>
        Effect.gen(function* () {
          yield* LlmClient.complete(request({ maxTokens: 60 }))
          yield* TestServices.provideLive(Effect.sleep("50 millis")) // time for a give-back, were there one
          const refused = yield* Effect.flip(LlmClient.complete(request({ maxTokens: 80 })))
          expect(refused._tag).toBe("RateLimited")
          expect(yield* callTimes).toEqual([0])
        }).pipe(Effect.provide(limited({ tpm: 100, onLimit: "fail", tpmCharge: "estimate" }))))

      it.effect("a refused tpm request gives its rpm slot back", () =>
        Effect.gen(function* () {
          yield* LlmClient.complete(request({ maxTokens: 90 }))
          expect((yield* Effect.flip(LlmClient.complete(request({ maxTokens: 90 }))))._tag).toBe("RateLimited")
          yield* TestClock.adjust("3 seconds")
          yield* LlmClient.complete(request({ maxTokens: 1 }))
          expect(yield* callTimes).toEqual([0, 3_000])
        }).pipe(Effect.provide(limited({ rpm: 2, tpm: 100, onLimit: "fail" }))))

      it.effect("per user: one user's limit does not touch another's", () =>
        Effect.gen(function* () {
          yield* LlmClient.complete(request({ user: "alice@example.com" }))
          expect((yield* Effect.flip(LlmClient.complete(request({ user: "alice@example.com" }))))._tag).toBe(
            "RateLimited"
          )
          yield* LlmClient.complete(request({ user: "bob@example.com" }))
          expect((yield* FakeLlm.calls).map((c) => c.request.user)).toEqual(["alice@example.com", "bob@example.com"])
        }).pipe(Effect.provide(limited({ rpm: 1, per: "user", onLimit: "fail" }))))

      it.effect("a caller interrupted while waiting gives its slot back", () =>
        Effect.gen(function* () {
          yield* LlmClient.complete(request())
          const waiting = yield* Effect.fork(LlmClient.complete(request()))
          yield* sleeping()
          yield* TestClock.adjust("10 seconds")
          yield* Fiber.interrupt(waiting)
          yield* TestClock.adjust("50 seconds")
          const next = yield* Effect.fork(LlmClient.complete(request()))
          // no wait: it completes without the test clock moving (a live 2 s bound instead of a hang)
          yield* TestServices.provideLive(Effect.timeout(Fiber.join(next), "2 seconds"))
          expect(yield* callTimes).toEqual([0, 60_000])
        }).pipe(Effect.provide(limited({ rpm: 1 }))))
    })
  })
