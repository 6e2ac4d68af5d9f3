import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { Redis as IORedis } from "ioredis"
import { randomUUID } from "node:crypto"
import * as CircuitBreaker from "../../src/CircuitBreaker.js"
import * as FakeLlm from "../../src/FakeLlm.js"
import {
  compareAndSetLua,
  IDLE_RETENTION_MS,
  ISOLATED_RETENTION_MS,
  redisKey
} from "../../src/internal/redis/circuitBreaker.js"
import { ChatRequest } from "../../src/Llm.js"
import * as LlmClient from "../../src/LlmClient.js"
import { ServerError } from "../../src/LlmError.js"
import * as Redis from "../../src/Redis.js"
import { describeRedis, layerRedisTest, layerRedisUnreachable, redisUrl, testPrefix } from "../support/redis.js"
import { circuitBreakerStoreContract, config, T0 } from "./CircuitBreakerStore.contract.js"

/** Every outcome changes the state (a window of the last 1000 calls): each record is a write. */
const counting: CircuitBreaker.Config = {
  ...config,
  failureThreshold: null,
  failureRate: 0.99,
  window: { kind: "calls", size: 1_000 },
  minimumCalls: 1_000
}

const storeOver = <E>(client: Layer.Layer<Redis.RedisClient, E>) =>
  Redis.layerCircuitBreakerStore.pipe(Layer.provideMerge(client))

const ticketOf = (admission: CircuitBreaker.Admission): CircuitBreaker.Ticket => {
  if (admission._tag !== "Admitted") throw new Error(`expected an admission, got ${admission._tag}`)
  return admission.ticket
}

const openKey = (store: CircuitBreaker.Store, key: string) =>
  Effect.gen(function* () {
    for (let i = 0; i < 3; i++) {
      yield* store.record(key, T0, config, ticketOf(yield* store.admit(key, T0, config)), "failure")
    }
  })

/** A successful admitted call on `key`, recorded with the counting config. */
const countedCall = (store: CircuitBreaker.Store, key: string) =>
  Effect.flatMap(store.admit(key, T0, counting), (a) => store.record(key, T0 + 1, counting, ticketOf(a), "success"))

describeRedis("CircuitBreakerStore over Redis", () => {
  circuitBreakerStoreContract("redis", Redis.layerCircuitBreakerStore.pipe(Layer.provide(layerRedisTest())))

  describe("keys", () => {
    it.effect("one JSON state per key under the prefix, hashed, with a TTL of its break plus the idle retention", () =>
      Effect.gen(function* () {
        const redis = yield* Redis.RedisClient
        const store = yield* CircuitBreaker.CircuitBreakerStore
        const key = "custom:tenant-alice@example.com"
        // a closed admit changes nothing: nothing is written
        yield* store.admit(key, T0, config)
        expect(yield* redis.use("KEYS", (c) => c.keys(`${redis.prefix}*`))).toEqual([])
        yield* openKey(store, key)
        const keys = yield* redis.use("KEYS", (c) => c.keys(`${redis.prefix}*`))
        expect(keys).toEqual([redisKey(redis.prefix, key)])
        expect(keys[0].startsWith(`${redis.prefix}breaker:`) && !keys[0].includes("alice")).toBe(true)
        const stored = JSON.parse((yield* redis.use("GET", (c) => c.get(keys[0])))!) as CircuitBreaker.StoredState
        expect(stored).toMatchObject({ phase: "open", openUntil: T0 + 10_000 })
        // written at T0 with a 10 s break: 10 s + a day
        const ttl = yield* redis.use("PTTL", (c) => c.pttl(keys[0]))
        expect(ttl).toBeGreaterThan(10_000 + IDLE_RETENTION_MS - 2_000)
        expect(ttl).toBeLessThanOrEqual(10_000 + IDLE_RETENTION_MS)
        yield* store.isolate(key, T0 + 1, config)
        const isolatedTtl = yield* redis.use("PTTL", (c) => c.pttl(keys[0]))
        expect(isolatedTtl).toBeGreaterThan(ISOLATED_RETENTION_MS - 2_000)
      }).pipe(Effect.provide(storeOver(layerRedisTest()))))

    it.effect("a stored value that is not a breaker state is a CircuitBreakerStoreError", () =>
      Effect.gen(function* () {
        const redis = yield* Redis.RedisClient
        const store = yield* CircuitBreaker.CircuitBreakerStore
        yield* redis.use("SET", (c) => c.set(redisKey(redis.prefix, "corrupt"), "[1,2]", "PX", 60_000))
        const error = yield* Effect.flip(store.admit("corrupt", T0, config))
        expect(error._tag).toBe("CircuitBreakerStoreError")
        expect(error.operation).toBe("admit")
      }).pipe(Effect.provide(storeOver(layerRedisTest()))))
  })

  describe("one process, 50 concurrent callers", () => {
    it.effect("writes to one key queue on the per-key lock: 50 counted calls count 50, no conflict, no error", () =>
      Effect.gen(function* () {
        const store = yield* CircuitBreaker.CircuitBreakerStore
        const key = `lock:${randomUUID()}`
        yield* Effect.all(Array.from({ length: 50 }, () => countedCall(store, key)), { concurrency: "unbounded" })
        expect((yield* store.observe(key, T0 + 2, counting)).status).toMatchObject({ phase: "closed", calls: 50 })
      }).pipe(Effect.provide(storeOver(layerRedisTest()))))

    it.effect("writes to ten keys proceed side by side: every key counts its own 5 calls exactly", () =>
      Effect.gen(function* () {
        const store = yield* CircuitBreaker.CircuitBreakerStore
        const keys = Array.from({ length: 10 }, () => `pool:${randomUUID()}`)
        yield* Effect.all(Array.from({ length: 50 }, (_, i) => countedCall(store, keys[i % 10])), {
          concurrency: "unbounded"
        })
        const calls = yield* Effect.forEach(keys, (key) =>
          Effect.map(store.observe(key, T0 + 2, counting), (o) => o.status.calls))
        expect(calls).toEqual(Array.from({ length: 10 }, () => 5))
      }).pipe(Effect.provide(storeOver(layerRedisTest()))))
  })

  describe("compare-and-set", () => {
    it.effect("a write is applied only over the value it was decided on", () =>
      Effect.gen(function* () {
        const redis = yield* Redis.RedisClient
        const key = `${redis.prefix}cas:${randomUUID()}`
        const cas = (args: ReadonlyArray<string | number>) => redis.run(compareAndSetLua, [key], args)
        expect(yield* cas(["1", "a", "b", 60_000])).toBe(0) // expected "a", the key is absent
        expect(yield* redis.use("EXISTS", (c) => c.exists(key))).toBe(0)
        expect(yield* cas(["0", "", "a", 60_000])).toBe(1) // expected absent
        expect(yield* cas(["0", "", "x", 60_000])).toBe(0) // expected absent, the key holds "a"
        expect(yield* cas(["1", "b", "x", 60_000])).toBe(0) // expected "b", the key holds "a"
        expect(yield* cas(["1", "a", "b", 60_000])).toBe(1)
        expect(yield* redis.use("GET", (c) => c.get(key))).toBe("b")
        expect(yield* redis.use("PTTL", (c) => c.pttl(key))).toBeGreaterThan(50_000)
      }).pipe(Effect.provide(layerRedisTest())))

    it.live("another process writing between the read and the write, while the connection drops and reconnects: nothing lost", () =>
      Effect.gen(function* () {
        const prefix = testPrefix()
        const key = `cas:${randomUUID()}`
        const other = yield* Layer.build(storeOver(Redis.layer({ url: redisUrl, prefix })))
        const storeB = Context.get(other, CircuitBreaker.CircuitBreakerStore)
        const raw = yield* Effect.acquireRelease(Effect.sync(() => new IORedis(redisUrl)), (c) => Effect.sync(() => c.disconnect()))
        const ownerA = yield* Layer.build(Redis.layer({ url: redisUrl, prefix }))
        const redisA = Context.get(ownerA, Redis.RedisClient)
        const idA = yield* redisA.use("CLIENT ID", (c) => c.client("ID"))
        yield* countedCall(storeB, key)
        let armed = false
        let interfered = false
        // Process A's read, once armed, lets process B count a call and drops A's connection before A writes.
        const client = new Proxy(redisA.client, {
          get: (target, property) => {
            if (property === "get") {
              return async (k: string) => {
                const value = await target.get(k)
                if (armed && !interfered) {
                  interfered = true
                  await raw.client("KILL", "ID", String(idA))
                  await Effect.runPromise(countedCall(storeB, key))
                }
                return value
              }
            }
            const value: unknown = Reflect.get(target, property, target)
            return typeof value === "function" ? value.bind(target) : value
          }
        })
        const storeA = CircuitBreaker.CircuitBreakerStore.pipe(
          Effect.provide(Redis.layerCircuitBreakerStore),
          Effect.provideService(Redis.RedisClient, { ...redisA, client })
        )
        const store = yield* storeA
        const ticket = ticketOf(yield* store.admit(key, T0, counting))
        armed = true
        yield* store.record(key, T0 + 1, counting, ticket, "success")
        expect(interfered).toBe(true)
        // all three calls counted: A's write was decided again on B's state, never applied over it
        expect((yield* storeB.observe(key, T0 + 2, counting)).status.calls).toBe(3)
      }).pipe(Effect.scoped))
  })

  describe("failure behaviour", () => {
    const unreachable = layerRedisUnreachable

    it.effect("a Redis failure is a CircuitBreakerStoreError naming the operation, not the key", () =>
      Effect.gen(function* () {
        const store = yield* CircuitBreaker.CircuitBreakerStore
        const error = yield* Effect.flip(store.admit("model:secret-tenant", T0, config))
        expect(error._tag).toBe("CircuitBreakerStoreError")
        expect(error.operation).toBe("admit")
        expect(error.message).not.toContain("secret-tenant")
      }).pipe(Effect.provide(storeOver(unreachable))))

    it.effect("the policy fails open: calls run (untracked) while Redis is down", () => {
      const fake = FakeLlm.layer(FakeLlm.fail(new ServerError({ status: 503 })))
      const decorated = LlmClient.layerWith(CircuitBreaker.policy({ failureThreshold: 1 })).pipe(Layer.provide(fake))
      return Effect.gen(function* () {
        const request = new ChatRequest({ model: "m", messages: [{ role: "user", content: "hi" }] })
        for (let i = 0; i < 3; i++) expect((yield* Effect.flip(LlmClient.complete(request)))._tag).toBe("ServerError")
        expect(yield* FakeLlm.calls).toHaveLength(3)
      }).pipe(Effect.provide(Layer.merge(fake, decorated).pipe(Layer.provide(storeOver(unreachable)))))
    })
  })

  describe("across processes (two connections, one prefix)", () => {
    const prefix = testPrefix()
    const processA = storeOver(Redis.layer({ url: redisUrl, prefix }))
    const processB = storeOver(Redis.layer({ url: redisUrl, prefix }))

    it.effect("a breaker opened through one process rejects through the other", () => {
      const model = `model-${randomUUID()}`
      const stack = <E>(store: Layer.Layer<CircuitBreaker.CircuitBreakerStore, E>) => {
        const fake = FakeLlm.layer(FakeLlm.fail(new ServerError({ status: 503 })))
        const decorated = LlmClient.layerWith(
          CircuitBreaker.policy({ failureThreshold: 2, halfOpenAfter: "30 seconds" })
        ).pipe(Layer.provide(fake))
        return Layer.merge(fake, decorated).pipe(Layer.provide(store))
      }
      const request = new ChatRequest({ model, messages: [{ role: "user", content: "hi" }] })
      return Effect.gen(function* () {
        const [a, b] = [stack(processA), stack(processB)]
        yield* Effect.flip(LlmClient.complete(request)).pipe(Effect.provide(a))
        yield* Effect.flip(LlmClient.complete(request)).pipe(Effect.provide(b)) // the second failure opens it
        const rejected = yield* Effect.flip(LlmClient.complete(request)).pipe(
          Effect.zip(FakeLlm.calls),
          Effect.provide(a)
        )
        expect(rejected[0]._tag).toBe("CircuitOpen")
        expect(rejected[1]).toHaveLength(0) // process A's provider was not called
      })
    })

    it.live("50 concurrent callers split over both processes after the break: exactly halfOpenProbes probes", () =>
      Effect.gen(function* () {
        const two = { ...config, halfOpenProbes: 2 }
        const key = `probes:${randomUUID()}`
        const run = (n: number) =>
          Effect.flatMap(CircuitBreaker.CircuitBreakerStore, (store) =>
            Effect.all(Array.from({ length: n }, () => store.admit(key, T0 + 10_000, two)), {
              concurrency: "unbounded"
            }))
        yield* Effect.flatMap(CircuitBreaker.CircuitBreakerStore, (store) => openKey(store, key)).pipe(
          Effect.provide(processA)
        )
        const [a, b] = yield* Effect.all([
          run(25).pipe(Effect.provide(processA)),
          run(25).pipe(Effect.provide(processB))
        ], { concurrency: "unbounded" })
        const all = [...a, ...b]
        expect(all.filter((x) => x._tag === "Admitted" && x.ticket.probe)).toHaveLength(2)
        expect(all.filter((x) => x._tag === "Rejected")).toHaveLength(48)
        expect(all.flatMap((x) => x.transitions).map((t) => `${t.from}>${t.to}`)).toEqual(["open>halfOpen"])
      }))

    it.live("writes racing from both processes lose nothing: 100 counted calls split over both count 100", () =>
      Effect.gen(function* () {
        const key = `race:${randomUUID()}`
        const run = (n: number) =>
          Effect.flatMap(CircuitBreaker.CircuitBreakerStore, (store) =>
            Effect.all(Array.from({ length: n }, () => countedCall(store, key)), { concurrency: "unbounded" }))
        yield* Effect.all([run(50).pipe(Effect.provide(processA)), run(50).pipe(Effect.provide(processB))], {
          concurrency: "unbounded"
        })
        const observed = yield* Effect.flatMap(CircuitBreaker.CircuitBreakerStore, (s) => s.observe(key, T0 + 2, counting))
          .pipe(Effect.provide(processB))
        expect(observed.status.calls).toBe(100)
      }))
  })
})
