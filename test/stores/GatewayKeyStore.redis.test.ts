import { expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Option } from "effect"
import * as fc from "fast-check"
import { Redis as IORedis } from "ioredis"
import { hashSecret, type KeyRecord, KeyStore, type KeyStoreError, type KeyStoreService } from "../../src/internal/gateway/keys.js"
import { makeMemory } from "../../src/internal/gateway/keysMemory.js"
import { keysOf } from "../../src/internal/redis/gatewayKeys.js"
import * as Redis from "../../src/Redis.js"
import { describeRedis, keysUnder, layerRedisTest, layerRedisUnreachable, redisUrl, testPrefix } from "../support/redis.js"
import { gatewayKeyStoreContract, recordOf } from "./GatewayKeyStore.contract.js"

/** The store of one process: its own connection, over a shared prefix. */
const storeOn = (prefix: string) =>
  Effect.map(
    Layer.build(Redis.layerGatewayKeyStore.pipe(Layer.provide(Redis.layer({ url: redisUrl, prefix })))),
    (context) => Context.get(context, KeyStore)
  )

type Op =
  | { readonly _tag: "put"; readonly id: number; readonly secret: number; readonly createdAt: number; readonly revokedAt?: number | undefined }
  | { readonly _tag: "revoke"; readonly id: number; readonly now: number }
  | { readonly _tag: "get"; readonly secret: number }
  | { readonly _tag: "list" }

// few ids and secrets, so that repeats (refused puts, revocations of known and unknown ids) are common
const opArbitrary: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    _tag: fc.constant("put" as const),
    id: fc.nat(2),
    secret: fc.nat(2),
    createdAt: fc.nat(5),
    revokedAt: fc.option(fc.nat(20), { nil: undefined })
  }, { requiredKeys: ["_tag", "id", "secret", "createdAt"] }),
  fc.record({ _tag: fc.constant("revoke" as const), id: fc.nat(3), now: fc.nat(20) }),
  fc.record({ _tag: fc.constant("get" as const), secret: fc.nat(3) }),
  fc.constant({ _tag: "list" as const })
)

const recordFor = (op: Extract<Op, { _tag: "put" }>): KeyRecord => ({
  id: `key_p${op.id}`,
  tenant: `t${op.id}`,
  hash: hashSecret(`sk-gw-p${op.secret}`),
  createdAt: op.createdAt,
  ...(op.revokedAt === undefined ? {} : { revokedAt: op.revokedAt })
})

const replay = (store: KeyStoreService, ops: ReadonlyArray<Op>) =>
  Effect.forEach(ops, (op): Effect.Effect<unknown, KeyStoreError> => {
    switch (op._tag) {
      case "put":
        return store.put(recordFor(op))
      case "revoke":
        return store.revoke(`key_p${op.id}`, op.now)
      case "get":
        return store.get(hashSecret(`sk-gw-p${op.secret}`))
      case "list":
        return store.list
    }
  })

describeRedis("GatewayKeyStore (Redis)", () => {
  it.scoped("random sequences of put, revoke, get and list answer the same from Redis as from memory", () =>
    Effect.gen(function*() {
      const runtime = yield* Effect.runtime<never>()
      let runs = 0
      yield* Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(fc.array(opArbitrary, { minLength: 1, maxLength: 40, size: "max" }), async (ops) => {
            runs++
            const answers = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
              const memory = yield* Effect.orDie(makeMemory([]))
              const redis = yield* storeOn(testPrefix())
              return [yield* replay(memory, ops), yield* replay(redis, ops)] as const
            })).pipe(Effect.provide(runtime.context)))
            expect(answers[1]).toEqual(answers[0])
          }),
          { numRuns: 150 }
        )
      )
      expect(runs).toBeGreaterThanOrEqual(150)
    }), 60_000)

  gatewayKeyStoreContract("redis", () => Redis.layerGatewayKeyStore.pipe(Layer.provide(layerRedisTest()), Layer.orDie))

  it.scoped("three hashes in one slot under the prefix, no TTL; neither the secret nor the tenant in a key name", () =>
    Effect.gen(function*() {
      const prefix = testPrefix()
      const store = yield* storeOn(prefix)
      const { record, secret } = recordOf({ tenant: "tenant-secretive" })
      yield* store.put(record)
      yield* store.revoke(record.id, 42)
      const keys = yield* Effect.promise(() => keysUnder(prefix))
      expect(keys.map((k) => k.key).sort()).toEqual(Object.values(keysOf(prefix)).sort())
      expect(keys.every((k) => k.pttl === -1)).toBe(true)
      expect(keys.every((k) => k.key.includes("{gateway-keys}") && !k.key.includes("tenant"))).toBe(true)
      const raw = new IORedis(redisUrl)
      yield* Effect.addFinalizer(() => Effect.sync(() => raw.disconnect()))
      const dump = JSON.stringify(yield* Effect.promise(() =>
        Promise.all(Object.values(keysOf(prefix)).map((key) => raw.hgetall(key)))
      ))
      expect(dump).not.toContain(secret)
      expect(dump).toContain(record.hash)
    }))

  it.scoped("two processes share the keys: one's put and revoke are seen by the other at once", () =>
    Effect.gen(function*() {
      const prefix = testPrefix()
      const a = yield* storeOn(prefix)
      const b = yield* storeOn(prefix)
      const { record } = recordOf()
      expect(yield* a.put(record)).toBe(true)
      expect(yield* b.get(record.hash)).toEqual(Option.some(record))
      expect(yield* b.put(record)).toBe(false)
      expect(yield* b.revoke(record.id, 7)).toBe(true)
      expect(yield* a.get(record.hash)).toEqual(Option.some({ ...record, revokedAt: 7 }))
      expect(yield* a.list).toEqual([{ ...record, revokedAt: 7 }])
    }))

  it.live("across processes: 40 puts of one id over two connections at once, exactly one wins", () =>
    Effect.scoped(Effect.gen(function*() {
      const prefix = testPrefix()
      const a = yield* storeOn(prefix)
      const b = yield* storeOn(prefix)
      const id = recordOf().record.id
      const candidates = Array.from({ length: 40 }, () => recordOf({ id }).record)
      const answers = yield* Effect.all(
        candidates.map((r, i) => (i % 2 === 0 ? a : b).put(r)),
        { concurrency: "unbounded" }
      )
      expect(answers.filter((won) => won)).toHaveLength(1)
      expect(yield* b.list).toEqual([candidates[answers.indexOf(true)]])
    })))

  it.scoped("a stored record that does not decode is a KeyStoreError (never \"no key\"), naming the bad path", () =>
    Effect.gen(function*() {
      const prefix = testPrefix()
      const store = yield* storeOn(prefix)
      const { record } = recordOf()
      yield* store.put(record)
      const raw = new IORedis(redisUrl)
      yield* Effect.addFinalizer(() => Effect.sync(() => raw.disconnect()))
      yield* Effect.promise(() => raw.hset(keysOf(prefix).records, record.hash, JSON.stringify({ ...record, createdAt: "yesterday" })))
      const error = yield* Effect.flip(store.get(record.hash))
      expect(error._tag).toBe("KeyStoreError")
      expect(error.message).toContain("createdAt")
      expect((yield* Effect.flip(store.list))._tag).toBe("KeyStoreError")
    }))

  it.effect("Redis down: every method fails with KeyStoreError", () =>
    Effect.gen(function*() {
      const store = yield* KeyStore
      const { record } = recordOf()
      const calls: ReadonlyArray<Effect.Effect<unknown, KeyStoreError>> = [
        store.get(record.hash), store.put(record), store.list, store.revoke(record.id, 1)
      ]
      for (const effect of calls) {
        const error = yield* Effect.flip(effect)
        expect(error._tag).toBe("KeyStoreError")
        expect(error.message).not.toContain("redis://")
      }
    }).pipe(Effect.provide(Redis.layerGatewayKeyStore.pipe(Layer.provide(layerRedisUnreachable)))))
})
