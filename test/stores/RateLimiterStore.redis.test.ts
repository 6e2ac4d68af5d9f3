import * as RateLimiter from "@effect/experimental/RateLimiter"
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Layer } from "effect"
import { randomUUID } from "node:crypto"
import * as FakeLlm from "../../src/FakeLlm.js"
import { redisKey, TTL_MARGIN_MS } from "../../src/internal/redis/rateLimit.js"
import { ChatRequest } from "../../src/Llm.js"
import * as LlmClient from "../../src/LlmClient.js"
import * as RateLimit from "../../src/RateLimit.js"
import * as Redis from "../../src/Redis.js"
import { describeRedis, layerRedisTest, layerRedisUnreachable, redisUrl, testPrefix } from "../support/redis.js"
import { rateLimiterStoreContract } from "./RateLimiterStore.contract.js"

const storeOver = <E>(client: Layer.Layer<Redis.RedisClient, E>) =>
  Redis.layerRateLimiterStore.pipe(Layer.provideMerge(client))

describeRedis("RateLimiterStore over Redis", () => {
  rateLimiterStoreContract("redis", Redis.layerRateLimiterStore.pipe(Layer.provide(layerRedisTest())))

  const take = (key: string, tokens: number, limit: number, refillMs: number) =>
    Effect.flatMap(RateLimiter.RateLimiterStore, (store) =>
      store.tokenBucket({ key, tokens, limit, refillRate: Duration.millis(refillMs), allowOverflow: false }))

  describe("keys", () => {
    it.effect("live under the client's prefix, hashed (no user id in Redis), each with a TTL of its logical life + margin", () =>
      Effect.gen(function* () {
        const redis = yield* Redis.RedisClient
        const store = yield* RateLimiter.RateLimiterStore
        const userKey = "llm:rpm:user:alice@example.com"
        // 10 tokens refilled one per 6 s: 3 taken → full again 18 s later
        expect(yield* take(userKey, 3, 10, 6_000)).toBe(7)
        const windowKey = "llm:window:user:alice@example.com"
        expect(yield* store.fixedWindow({ key: windowKey, tokens: 2, refillRate: Duration.seconds(1), limit: 5 }))
          .toEqual([2, 2_000])
        const keys = yield* redis.use("KEYS", (c) => c.keys(`${redis.prefix}*`))
        expect([...keys].sort()).toEqual([redisKey(redis.prefix, userKey), redisKey(redis.prefix, windowKey)].sort())
        expect(keys.every((k) => k.startsWith(`${redis.prefix}ratelimit:`) && !k.includes("alice"))).toBe(true)
        const bucketTtl = yield* redis.use("PTTL", (c) => c.pttl(redisKey(redis.prefix, userKey)))
        expect(bucketTtl).toBeGreaterThan(18_000 + TTL_MARGIN_MS - 1_000)
        expect(bucketTtl).toBeLessThanOrEqual(18_000 + TTL_MARGIN_MS)
        const windowTtl = yield* redis.use("PTTL", (c) => c.pttl(redisKey(redis.prefix, windowKey)))
        expect(windowTtl).toBeGreaterThan(2_000 + TTL_MARGIN_MS - 1_000)
        expect(windowTtl).toBeLessThanOrEqual(2_000 + TTL_MARGIN_MS)
      }).pipe(Effect.provide(storeOver(layerRedisTest()))))

    it.effect("a bucket that is full again (refilled, or refunded) is deleted; a refusal writes nothing", () =>
      Effect.gen(function* () {
        const redis = yield* Redis.RedisClient
        const count = Effect.map(redis.use("KEYS", (c) => c.keys(`${redis.prefix}*`)), (keys) => keys.length)
        expect(yield* take("refused", 5, 3, 1_000)).toBe(-2) // more than a fresh bucket holds
        expect(yield* count).toBe(0)
        expect(yield* take("refunded", 1, 3, 1_000)).toBe(2)
        expect(yield* count).toBe(1)
        expect(yield* take("refunded", -1, 3, 1_000)).toBe(3)
        expect(yield* count).toBe(0)
      }).pipe(Effect.provide(storeOver(layerRedisTest()))))
  })

  describe("failure behaviour", () => {
    const unreachable = layerRedisUnreachable

    it.effect("a Redis failure is a RateLimitStoreError whose message does not name the key", () =>
      Effect.gen(function* () {
        const error = yield* Effect.flip(take("llm:rpm:user:alice@example.com", 1, 10, 6_000))
        expect(error.reason).toBe("StoreError")
        expect(error.message).toContain("Redis rate limiter store: tokenBucket failed")
        expect(error.message).not.toContain("alice")
        const store = yield* RateLimiter.RateLimiterStore
        const windowError = yield* Effect.flip(
          store.fixedWindow({ key: "k", tokens: 1, refillRate: Duration.seconds(1), limit: 1 })
        )
        expect(windowError.reason).toBe("StoreError")
      }).pipe(Effect.provide(storeOver(unreachable))))

    it.effect("RateLimit.policy lets the call through when Redis is down", () => {
      const fake = FakeLlm.layer(FakeLlm.reply("ok"))
      const decorated = LlmClient.layerWith(RateLimit.policy({ rpm: 1, onLimit: "fail" })).pipe(Layer.provide(fake))
      return Effect.gen(function* () {
        const request = new ChatRequest({ model: "m", messages: [{ role: "user", content: "hi" }] })
        yield* LlmClient.complete(request)
        yield* LlmClient.complete(request)
        expect(yield* FakeLlm.calls).toHaveLength(2)
      }).pipe(Effect.provide(Layer.merge(fake, decorated).pipe(Layer.provide(storeOver(unreachable)))))
    })
  })

  describe("across processes (two connections, one prefix)", () => {
    const prefix = testPrefix()
    const processA = storeOver(Redis.layer({ url: redisUrl, prefix }))
    const processB = storeOver(Redis.layer({ url: redisUrl, prefix }))

    it.effect("50 concurrent takes split over two connections from one bucket of 10 admit exactly 10", () =>
      Effect.gen(function* () {
        const key = `shared:${randomUUID()}`
        const half = (n: number) => Array.from({ length: n }, () => take(key, 1, 10, 6_000))
        const [a, b] = yield* Effect.all([
          Effect.all(half(25), { concurrency: "unbounded" }).pipe(Effect.provide(processA)),
          Effect.all(half(25), { concurrency: "unbounded" }).pipe(Effect.provide(processB))
        ], { concurrency: "unbounded" })
        // each remaining count 9 … 0 handed out once across both connections: one bucket, no lost update
        const admitted = [...a, ...b].filter((r) => r >= 0).sort((x, y) => x - y)
        expect(admitted).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
        expect([...a, ...b].filter((r) => r < 0)).toHaveLength(40)
      }))

    it.effect("a limit used up by one process refuses the other, with the shared retryAfter", () => {
      const name = `fleet-${randomUUID()}`
      const stack = <E>(store: Layer.Layer<RateLimiter.RateLimiterStore, E>) => {
        const fake = FakeLlm.layer(FakeLlm.reply("ok"))
        const decorated = LlmClient.layerWith(RateLimit.policy({ rpm: 2, onLimit: "fail", name })).pipe(
          Layer.provide(fake)
        )
        return Layer.merge(fake, decorated).pipe(Layer.provide(store))
      }
      const request = new ChatRequest({ model: "gpt-4o", messages: [{ role: "user", content: "hi" }] })
      return Effect.gen(function* () {
        yield* LlmClient.complete(request).pipe(Effect.provide(stack(processA)))
        yield* LlmClient.complete(request).pipe(Effect.provide(stack(processB)))
        const error = yield* Effect.flip(LlmClient.complete(request).pipe(Effect.provide(stack(processA))))
        expect(error._tag).toBe("RateLimited")
        if (error._tag === "RateLimited") expect(Duration.toMillis(error.retryAfter!)).toBe(30_000)
        const other = yield* Effect.flip(LlmClient.complete(request).pipe(Effect.provide(stack(processB))))
        expect(other._tag).toBe("RateLimited")
      })
    })
  })
})
