import { expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { randomUUID } from "node:crypto"
import { redisKey } from "../../src/internal/redis/router.js"
import * as Redis from "../../src/Redis.js"
import * as Router from "../../src/Router.js"
import { describeRedis, layerRedisTest, layerRedisUnreachable, redisUrl, testPrefix } from "../support/redis.js"
import { routerStoreContract } from "./RouterStore.contract.js"

const open = { maxConcurrent: undefined, rpm: undefined, tpm: undefined, tokens: 0 }

describeRedis("RouterStore over Redis", () => {
  routerStoreContract("redis", Redis.layerRouterStore.pipe(Layer.provide(layerRedisTest())))

  it.effect("one hashed key a deployment (no id in Redis), with a TTL of its cooldown plus the idle retention", () =>
    Effect.gen(function* () {
      const redis = yield* Redis.RedisClient
      const store = yield* Router.RouterStore
      const key = `router:east-us-${randomUUID()}`
      yield* store.begin(key, open, 1_000)
      yield* store.settle(key, {
        kind: "failure", tokensDelta: 0, alpha: 0.3, staleBefore: 0, allowedFails: 3, defaultCooldownMs: 10_000,
        cooldownMs: 30_000
      }, 1_000)
      const keys = yield* redis.use("KEYS", (c) => c.keys(`${redis.prefix}*`))
      expect(keys).toEqual([redisKey(redis.prefix, key)])
      expect(keys[0]).not.toContain("east")
      const ttl = yield* redis.use("PTTL", (c) => c.pttl(keys[0]))
      expect(ttl).toBeGreaterThan(30_000 + 3_600_000 - 1_000)
      expect(ttl).toBeLessThanOrEqual(30_000 + 3_600_000)
    }).pipe(Effect.provide(Redis.layerRouterStore.pipe(Layer.provideMerge(layerRedisTest())))))

  it.live("across processes: 50 concurrent begins over two connections with maxConcurrent 10 admit exactly 10", () => {
    const prefix = testPrefix()
    const processA = Redis.layerRouterStore.pipe(Layer.provide(Redis.layer({ url: redisUrl, prefix })))
    const processB = Redis.layerRouterStore.pipe(Layer.provide(Redis.layer({ url: redisUrl, prefix })))
    const key = `router:shared-${randomUUID()}`
    const begins = (n: number) =>
      Effect.flatMap(Router.RouterStore, (store) =>
        Effect.all(Array.from({ length: n }, () => store.begin(key, { ...open, maxConcurrent: 10 }, 0)), {
          concurrency: "unbounded"
        }))
    return Effect.gen(function* () {
      const [a, b] = yield* Effect.all([
        begins(25).pipe(Effect.provide(processA)),
        begins(25).pipe(Effect.provide(processB))
      ], { concurrency: "unbounded" })
      expect([...a, ...b].filter(Boolean)).toHaveLength(10)
      const [state] = yield* Effect.flatMap(Router.RouterStore, (store) => store.read([key], 0)).pipe(Effect.provide(processA))
      expect(state.inFlight).toBe(10)
    })
  })

  it.live("a busy key: 1,000 concurrent begins and settles over two connections stay exact with far fewer writes than steps", () => {
    const prefix = testPrefix()
    let writes = 0
    // A process whose connection counts the scripts it runs (every write is one compare-and-set script).
    const counted = Layer.effect(
      Redis.RedisClient,
      Effect.map(Redis.RedisClient, (redis) => ({
        ...redis,
        run: (...args: Parameters<typeof redis.run>) => (writes++, redis.run(...args))
      }))
    ).pipe(Layer.provide(Redis.layer({ url: redisUrl, prefix })))
    const processA = Redis.layerRouterStore.pipe(Layer.provide(counted))
    const processB = Redis.layerRouterStore.pipe(Layer.provide(counted))
    const key = `router:busy-${randomUUID()}`
    const success = { kind: "success", tokensDelta: 0, latencyMs: 5, alpha: 0.3, staleBefore: 0, allowedFails: 3, defaultCooldownMs: 10_000 } as const
    const calls = (n: number) =>
      Effect.flatMap(Router.RouterStore, (store) =>
        Effect.forEach(Array.from({ length: n }, (_, i) => i), () =>
          Effect.zipRight(store.begin(key, open, 0), store.settle(key, success, 0)), { concurrency: "unbounded" }))
    return Effect.gen(function* () {
      yield* Effect.all([calls(500).pipe(Effect.provide(processA)), calls(500).pipe(Effect.provide(processB))], {
        concurrency: "unbounded"
      })
      const [state] = yield* Effect.flatMap(Router.RouterStore, (store) => store.read([key], 0)).pipe(Effect.provide(processA))
      expect(state.requests).toBe(1000)
      expect(state.inFlight).toBe(0)
      expect(state.samples).toBe(1000)
      // 2,000 steps; combined, each process writes once per round (plus a retry per conflict with the other)
      expect(writes).toBeLessThan(1000)
    })
  })

  it.effect("a Redis failure is a RouterStoreError that names no key", () =>
    Effect.gen(function* () {
      const store = yield* Router.RouterStore
      const error = yield* Effect.flip(store.begin("router:east-us", open, 0))
      expect(error._tag).toBe("RouterStoreError")
      expect(error.message).not.toContain("east")
    }).pipe(Effect.provide(Redis.layerRouterStore.pipe(Layer.provide(layerRedisUnreachable)))))
})
