import { expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Option } from "effect"
import { Redis as IORedis } from "ioredis"
import { KeyStore, type KeyStoreError } from "../../src/internal/gateway/keys.js"
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

describeRedis("GatewayKeyStore (Redis)", () => {
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
