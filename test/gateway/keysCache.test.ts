import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Option, TestClock } from "effect"
import { authenticate, hashSecret, type KeyRecord, KeyStore, KeyStoreError, type KeyStoreService } from "../../src/internal/gateway/keys.js"
import { cached, layerCached } from "../../src/internal/gateway/keysCache.js"
import { makeMemory } from "../../src/internal/gateway/keysMemory.js"

const recordOf = (n: number, overrides: Partial<KeyRecord> = {}): { readonly secret: string; readonly record: KeyRecord } => {
  const secret = `sk-gw-cache-${n}`
  return { secret, record: { id: `key_cache${n}`, tenant: "acme", hash: hashSecret(secret), createdAt: 0, ...overrides } }
}

/** A store (the one every replica shares) that counts its `get`s. */
const counted = (records: ReadonlyArray<KeyRecord>) =>
  Effect.map(makeMemory(records), (inner) => {
    let gets = 0
    const store: KeyStoreService = { ...inner, get: (hash) => Effect.suspend(() => (gets++, inner.get(hash))) }
    return { inner, store, gets: () => gets }
  })

const asReplica = (service: KeyStoreService) => Effect.provideService(KeyStore, service)

describe("cached KeyStore", () => {
  it.effect("a known key is asked of the store once per ttl", () =>
    Effect.gen(function*() {
      const { record } = recordOf(1)
      const shared = yield* counted([record])
      const cache = yield* cached(shared.store, { ttl: "5 seconds" })
      for (let i = 0; i < 10; i++) expect(yield* cache.get(record.hash)).toEqual(Option.some(record))
      expect(shared.gets()).toBe(1)
      yield* TestClock.adjust("4999 millis")
      yield* cache.get(record.hash)
      expect(shared.gets()).toBe(1)
      yield* TestClock.adjust("1 milli")
      yield* cache.get(record.hash)
      expect(shared.gets()).toBe(2)
    }))

  it.effect("a revocation made by another replica takes effect here within the ttl, not before the cached entry ends", () =>
    Effect.gen(function*() {
      const { record, secret } = recordOf(2)
      const shared = yield* counted([record])
      const replica = yield* cached(shared.store, { ttl: "5 seconds" })
      const header = `Bearer ${secret}`
      expect((yield* authenticate(header, 0).pipe(asReplica(replica))).id).toBe(record.id)
      yield* TestClock.adjust("1 second")
      // another replica revokes the key in the shared store
      expect(yield* shared.inner.revoke(record.id, 1_000)).toBe(true)
      yield* TestClock.adjust("3 seconds")
      expect((yield* authenticate(header, 4_000).pipe(asReplica(replica))).id).toBe(record.id)
      yield* TestClock.adjust("1 second")
      const refused = yield* Effect.flip(authenticate(header, 5_000).pipe(asReplica(replica)))
      expect(refused).toMatchObject({ _tag: "KeyRefused", reason: "revoked", keyId: record.id })
    }))

  it.effect("a revocation through this replica's own cache takes effect at once", () =>
    Effect.gen(function*() {
      const { record, secret } = recordOf(3)
      const shared = yield* counted([record])
      const replica = yield* cached(shared.store)
      yield* authenticate(`Bearer ${secret}`, 0).pipe(asReplica(replica))
      expect(yield* replica.revoke(record.id, 10)).toBe(true)
      const refused = yield* Effect.flip(authenticate(`Bearer ${secret}`, 10).pipe(asReplica(replica)))
      expect(refused).toMatchObject({ reason: "revoked" })
    }))

  it.effect("an unknown key is remembered as unknown for missTtl; a key put through the cache is found at once", () =>
    Effect.gen(function*() {
      const { record } = recordOf(4)
      const shared = yield* counted([])
      const cache = yield* cached(shared.store, { ttl: "5 seconds", missTtl: "1 second" })
      for (let i = 0; i < 100; i++) expect(yield* cache.get(record.hash)).toEqual(Option.none())
      expect(shared.gets()).toBe(1)
      yield* TestClock.adjust("1 second")
      yield* cache.get(record.hash)
      expect(shared.gets()).toBe(2)
      expect(yield* cache.put(record)).toBe(true)
      expect(yield* cache.get(record.hash)).toEqual(Option.some(record))
    }))

  it.effect("a key put through another replica is found here once the miss ends (missTtl, not ttl)", () =>
    Effect.gen(function*() {
      const { record } = recordOf(5)
      const shared = yield* counted([])
      const cache = yield* cached(shared.store, { ttl: "5 seconds", missTtl: "1 second" })
      expect(yield* cache.get(record.hash)).toEqual(Option.none())
      yield* shared.inner.put(record)
      expect(yield* cache.get(record.hash)).toEqual(Option.none())
      yield* TestClock.adjust("1 second")
      expect(yield* cache.get(record.hash)).toEqual(Option.some(record))
    }))

  it.effect("a flood of distinct unknown keys never evicts the keys in use", () =>
    Effect.gen(function*() {
      const { record } = recordOf(6)
      const shared = yield* counted([record])
      const cache = yield* cached(shared.store, { capacity: 3 })
      yield* cache.get(record.hash)
      for (let i = 0; i < 500; i++) yield* cache.get(hashSecret(`sk-gw-flood-${i}`))
      const before = shared.gets()
      expect(yield* cache.get(record.hash)).toEqual(Option.some(record))
      expect(shared.gets()).toBe(before)
    }))

  it.effect("at most capacity known keys are held, the least recently used going first", () =>
    Effect.gen(function*() {
      const keys = [1, 2, 3].map((n) => recordOf(10 + n).record)
      const shared = yield* counted(keys)
      const cache = yield* cached(shared.store, { capacity: 2 })
      yield* cache.get(keys[0].hash)
      yield* cache.get(keys[1].hash)
      yield* cache.get(keys[0].hash) // keys[1] is now the least recently used
      yield* cache.get(keys[2].hash) // evicts keys[1]
      expect(shared.gets()).toBe(3)
      yield* cache.get(keys[0].hash)
      yield* cache.get(keys[2].hash)
      expect(shared.gets()).toBe(3)
      yield* cache.get(keys[1].hash)
      expect(shared.gets()).toBe(4)
    }))

  it.effect("concurrent lookups of one key share one store call", () =>
    Effect.gen(function*() {
      const { record } = recordOf(20)
      const inner = yield* makeMemory([record])
      let gets = 0
      const slow: KeyStoreService = {
        ...inner,
        get: (hash) => Effect.suspend(() => (gets++, Effect.delay(inner.get(hash), "100 millis")))
      }
      const cache = yield* cached(slow)
      const fiber = yield* Effect.fork(Effect.all(Array.from({ length: 20 }, () => cache.get(record.hash)), { concurrency: "unbounded" }))
      yield* TestClock.adjust("100 millis")
      const found = yield* Fiber.join(fiber)
      expect(found).toEqual(Array.from({ length: 20 }, () => Option.some(record)))
      expect(gets).toBe(1)
    }))

  it.effect("a failed lookup is not cached: the next request asks the store again", () =>
    Effect.gen(function*() {
      const { record } = recordOf(21)
      const inner = yield* makeMemory([record])
      let gets = 0
      const flaky: KeyStoreService = {
        ...inner,
        get: (hash) =>
          Effect.suspend(() => ++gets === 1 ? Effect.fail(new KeyStoreError({ operation: "get", cause: "down" })) : inner.get(hash))
      }
      const cache = yield* cached(flaky)
      expect((yield* Effect.flip(cache.get(record.hash)))._tag).toBe("KeyStoreError")
      expect(yield* cache.get(record.hash)).toEqual(Option.some(record))
      expect(gets).toBe(2)
    }))

  it.effect("a cached key still stops at its expiresAt exactly (checked on every request)", () =>
    Effect.gen(function*() {
      const { record, secret } = recordOf(22, { expiresAt: 3_000 })
      const shared = yield* counted([record])
      const replica = yield* cached(shared.store, { ttl: "1 minute" })
      yield* authenticate(`Bearer ${secret}`, 2_999).pipe(asReplica(replica))
      const refused = yield* Effect.flip(authenticate(`Bearer ${secret}`, 3_000).pipe(asReplica(replica)))
      expect(refused).toMatchObject({ reason: "expired" })
      expect(shared.gets()).toBe(1)
    }))

  it.effect("ttl 0 switches the cache off", () =>
    Effect.gen(function*() {
      const { record } = recordOf(23)
      const shared = yield* counted([record])
      const cache = yield* cached(shared.store, { ttl: 0, missTtl: 0 })
      yield* cache.get(record.hash)
      yield* cache.get(record.hash)
      yield* cache.get(hashSecret("unknown"))
      yield* cache.get(hashSecret("unknown"))
      expect(shared.gets()).toBe(4)
    }))

  it.effect("layerCached puts the cache in front of the KeyStore in context", () =>
    Effect.gen(function*() {
      const { record, secret } = recordOf(24)
      const shared = yield* counted([record])
      const live = layerCached({ ttl: "5 seconds" }).pipe(Layer.provide(Layer.succeed(KeyStore, shared.store)))
      yield* Effect.gen(function*() {
        for (let i = 0; i < 5; i++) yield* authenticate(`Bearer ${secret}`, 0)
      }).pipe(Effect.provide(live))
      expect(shared.gets()).toBe(1)
    }))

  it.effect("bad options fail with InvalidOptions listing every bad path", () =>
    Effect.gen(function*() {
      const shared = yield* counted([])
      const error = yield* Effect.flip(cached(shared.store, { ttl: "soon", missTtl: -1, capacity: 0, size: 3 } as never))
      expect(error.issues.map((i) => i.path).sort()).toEqual(["capacity", "missTtl", "size", "ttl"])
    }))
})
