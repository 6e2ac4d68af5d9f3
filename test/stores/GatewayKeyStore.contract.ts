import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, type Layer, Option } from "effect"
import { authenticate, hashSecret, type KeyRecord, KeyStore } from "../../src/internal/gateway/keys.js"

let counter = 0
/** A record of a fresh secret (the secret is returned beside it, as a client would hold it). */
export const recordOf = (overrides: Partial<KeyRecord> = {}): { readonly secret: string; readonly record: KeyRecord } => {
  const n = ++counter
  const secret = `sk-gw-contract-${n}-${Math.random().toString(36).slice(2)}`
  return {
    secret,
    record: { id: `key_contract${n}`, tenant: "acme", hash: hashSecret(secret), createdAt: 1_700_000_000_000 + n, ...overrides }
  }
}

const full = (): KeyRecord =>
  recordOf({
    name: "CI runner",
    expiresAt: 1_800_000_000_000,
    models: ["gpt-4o", "gpt-4o-mini"],
    budgets: [{ tokens: 1_000_000, period: "day" }, { usd: 12.5, period: { rolling: "6 hours" } }, { tokens: 5, usd: 0.1, period: "month" }],
    rateLimit: { rpm: 600, tpm: 100_000 }
  }).record

/** The contract every KeyStore backend passes; `layer` builds a store holding no key. */
export const gatewayKeyStoreContract = (name: string, layer: () => Layer.Layer<KeyStore>) =>
  describe(`GatewayKeyStore contract: ${name}`, () => {
    const run = <A, E>(effect: Effect.Effect<A, E, KeyStore>) => effect.pipe(Effect.provide(layer()))

    it.effect("an unknown hash has no record; a put record is found by its hash with every field, and listed", () =>
      run(Effect.gen(function*() {
        const store = yield* KeyStore
        const record = full()
        expect(yield* store.get(record.hash)).toEqual(Option.none())
        expect(yield* store.put(record)).toBe(true)
        expect(yield* store.get(record.hash)).toEqual(Option.some(record))
        expect(yield* store.list).toEqual([record])
      })))

    it.effect("put refuses an id or a hash already present, and keeps the first record", () =>
      run(Effect.gen(function*() {
        const store = yield* KeyStore
        const first = recordOf().record
        const sameId = recordOf({ id: first.id }).record
        const sameHash = { ...recordOf().record, hash: first.hash }
        expect(yield* store.put(first)).toBe(true)
        expect(yield* store.put(sameId)).toBe(false)
        expect(yield* store.put(sameHash)).toBe(false)
        expect(yield* store.put(first)).toBe(false)
        expect(yield* store.get(sameId.hash)).toEqual(Option.none())
        expect(yield* store.get(first.hash)).toEqual(Option.some(first))
        expect(yield* store.list).toEqual([first])
      })))

    it.effect("a record that breaks the Schema is refused with KeyStoreError and nothing is stored", () =>
      run(Effect.gen(function*() {
        const store = yield* KeyStore
        const bad = { ...recordOf().record, createdAt: -5, rateLimit: { rpm: 0 } }
        const error = yield* Effect.flip(store.put(bad))
        expect(error._tag).toBe("KeyStoreError")
        expect(error.message).toContain("createdAt")
        expect(error.message).toContain("rateLimit.rpm")
        expect(yield* store.get(bad.hash)).toEqual(Option.none())
        expect(yield* store.list).toEqual([])
      })))

    it.effect("revoke marks the key at now; an unknown id is false; a later revoke keeps the first time", () =>
      run(Effect.gen(function*() {
        const store = yield* KeyStore
        const { record } = recordOf()
        yield* store.put(record)
        expect(yield* store.revoke("key_nosuchkey", 5_000)).toBe(false)
        expect(yield* store.revoke(record.id, 5_000)).toBe(true)
        expect(yield* store.get(record.hash)).toEqual(Option.some({ ...record, revokedAt: 5_000 }))
        expect(yield* store.revoke(record.id, 9_000)).toBe(true)
        expect(yield* store.get(record.hash)).toEqual(Option.some({ ...record, revokedAt: 5_000 }))
        expect(yield* store.list).toEqual([{ ...record, revokedAt: 5_000 }])
        // a replica whose clock lags revokes "earlier": the earliest time wins
        expect(yield* store.revoke(record.id, 4_000)).toBe(true)
        expect(yield* store.get(record.hash)).toEqual(Option.some({ ...record, revokedAt: 4_000 }))
      })))

    it.effect("a revocation earlier than one planned in the record wins; a later one does not move it", () =>
      run(Effect.gen(function*() {
        const store = yield* KeyStore
        const planned = recordOf({ revokedAt: 8_000 }).record
        yield* store.put(planned)
        yield* store.revoke(planned.id, 9_000)
        expect(Option.map(yield* store.get(planned.hash), (r) => r.revokedAt)).toEqual(Option.some(8_000))
        yield* store.revoke(planned.id, 3_000)
        expect(Option.map(yield* store.get(planned.hash), (r) => r.revokedAt)).toEqual(Option.some(3_000))
      })))

    it.effect("list answers every record, revoked ones included, oldest first whatever the order of puts", () =>
      run(Effect.gen(function*() {
        const store = yield* KeyStore
        const records = [3, 1, 4, 2, 5].map((t) => recordOf({ createdAt: t * 1_000 }).record)
        for (const record of records) yield* store.put(record)
        yield* store.revoke(records[2].id, 10_000)
        const listed = yield* store.list
        expect(listed.map((r) => r.createdAt)).toEqual([1_000, 2_000, 3_000, 4_000, 5_000])
        expect(listed.find((r) => r.id === records[2].id)?.revokedAt).toBe(10_000)
        expect(listed.filter((r) => r.revokedAt !== undefined)).toHaveLength(1)
      })))

    it.effect("50 fibers put one id at once (each with its own secret): exactly one wins, and only its hash is found", () =>
      run(Effect.gen(function*() {
        const store = yield* KeyStore
        const id = recordOf().record.id
        const candidates = Array.from({ length: 50 }, () => recordOf({ id }).record)
        const answers = yield* Effect.all(candidates.map((r) => store.put(r)), { concurrency: "unbounded" })
        expect(answers.filter((won) => won)).toHaveLength(1)
        const winner = candidates[answers.indexOf(true)]
        const found = yield* Effect.all(candidates.map((r) => store.get(r.hash)), { concurrency: "unbounded" })
        expect(found.filter(Option.isSome)).toEqual([Option.some(winner)])
        expect(yield* store.list).toEqual([winner])
      })))

    it.effect("50 fibers put one hash under different ids at once: exactly one wins", () =>
      run(Effect.gen(function*() {
        const store = yield* KeyStore
        const hash = recordOf().record.hash
        const candidates = Array.from({ length: 50 }, () => ({ ...recordOf().record, hash }))
        const answers = yield* Effect.all(candidates.map((r) => store.put(r)), { concurrency: "unbounded" })
        expect(answers.filter((won) => won)).toHaveLength(1)
        expect((yield* store.list).map((r) => r.id)).toEqual([candidates[answers.indexOf(true)].id])
      })))

    it.effect("authenticate over the store: the secret's key is let in until it is revoked", () =>
      run(Effect.gen(function*() {
        const store = yield* KeyStore
        const { record, secret } = recordOf()
        yield* store.put(record)
        expect(yield* authenticate(`Bearer ${secret}`, 2_000_000_000_000)).toEqual(record)
        yield* store.revoke(record.id, 2_000_000_000_000)
        const refused = yield* Effect.exit(authenticate(`Bearer ${secret}`, 2_000_000_000_001))
        expect(refused).toEqual(Exit.fail(expect.objectContaining({ _tag: "KeyRefused", reason: "revoked", keyId: record.id })))
      })))
  })
