import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Exit, Layer, Option, Redacted } from "effect"
import {
  authenticate,
  bearer,
  decodeRecord,
  decodeRecords,
  encodeRecord,
  generate,
  hashSecret,
  type KeyRecord,
  KeyStore,
  KeyStoreError
} from "../../src/internal/gateway/keys.js"
import { layerMemory } from "../../src/internal/gateway/keysMemory.js"

const NOW = 1_760_000_000_000
const secret = "sk-gw-test-secret"
const base: KeyRecord = { id: "key_valid0000001", tenant: "acme", hash: hashSecret(secret), createdAt: NOW - 1_000 }

const withKeys = (records: ReadonlyArray<KeyRecord>) => Effect.provide(layerMemory(records).pipe(Layer.orDie))
const refusal = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.map(Effect.flip(effect), (error) => ({ ...(error as object) }))

describe("authenticate", () => {
  it.effect("no header, or one that is not a bearer token, is refused as missing", () =>
    Effect.gen(function*() {
      for (const header of [undefined, "", "Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Bearer a b", secret, "Token sk-gw-x"]) {
        expect(yield* refusal(authenticate(header, NOW)), String(header)).toEqual({ _tag: "KeyRefused", reason: "missing" })
      }
    }).pipe(withKeys([base])))

  it.effect("a well-formed token of no key is refused as unknown, without a key id", () =>
    Effect.gen(function*() {
      expect(yield* refusal(authenticate("Bearer sk-gw-someone-elses", NOW))).toEqual({ _tag: "KeyRefused", reason: "unknown" })
    }).pipe(withKeys([base])))

  it.effect("a valid key is let in, whatever the case of the scheme and the spaces around the token", () =>
    Effect.gen(function*() {
      expect(yield* authenticate(`Bearer ${secret}`, NOW)).toEqual(base)
      expect(yield* authenticate(`bearer   ${secret}  `, NOW)).toEqual(base)
      expect(bearer(`BEARER ${secret}`)).toEqual(Option.some(secret))
    }).pipe(withKeys([base])))

  it.effect("a revoked key is refused from its revocation time on, with its id; before it, it is let in", () =>
    Effect.gen(function*() {
      expect(yield* authenticate(`Bearer ${secret}`, NOW - 1)).toEqual({ ...base, revokedAt: NOW })
      for (const at of [NOW, NOW + 1]) {
        expect(yield* refusal(authenticate(`Bearer ${secret}`, at))).toEqual({ _tag: "KeyRefused", reason: "revoked", keyId: base.id })
      }
    }).pipe(withKeys([{ ...base, revokedAt: NOW }])))

  it.effect("an expired key is refused from its expiresAt on, with its id", () =>
    Effect.gen(function*() {
      expect(yield* authenticate(`Bearer ${secret}`, NOW - 1)).toEqual({ ...base, expiresAt: NOW })
      expect(yield* refusal(authenticate(`Bearer ${secret}`, NOW))).toEqual({ _tag: "KeyRefused", reason: "expired", keyId: base.id })
    }).pipe(withKeys([{ ...base, expiresAt: NOW }])))

  it.effect("revoked wins over expired", () =>
    Effect.gen(function*() {
      expect(yield* refusal(authenticate(`Bearer ${secret}`, NOW + 5))).toEqual({ _tag: "KeyRefused", reason: "revoked", keyId: base.id })
    }).pipe(withKeys([{ ...base, expiresAt: NOW, revokedAt: NOW }])))

  it.effect("a store failure is a KeyStoreError, never a refusal or a pass", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(authenticate(`Bearer ${secret}`, NOW))
      expect(exit).toEqual(Exit.fail(new KeyStoreError({ operation: "get", cause: new Error("down") })))
    }).pipe(Effect.provideService(KeyStore, {
      get: () => Effect.fail(new KeyStoreError({ operation: "get", cause: new Error("down") })),
      put: () => Effect.succeed(false),
      list: Effect.succeed([]),
      revoke: () => Effect.succeed(false)
    })))
})

describe("generate", () => {
  it.effect("a secret sk-gw- + 32 random bytes in base64url, an id key_ + 12 letters or digits, each new every time", () =>
    Effect.gen(function*() {
      const keys = yield* Effect.all(Array.from({ length: 20 }, () => generate({ tenant: "acme" }, NOW)))
      for (const { record, secret } of keys) {
        const text = Redacted.value(secret)
        expect(text).toMatch(/^sk-gw-[A-Za-z0-9_-]{43}$/)
        expect(Buffer.from(text.slice("sk-gw-".length), "base64url")).toHaveLength(32)
        expect(record.id).toMatch(/^key_[A-Za-z0-9]{12}$/)
      }
      expect(new Set(keys.map((k) => Redacted.value(k.secret))).size).toBe(20)
      expect(new Set(keys.map((k) => k.record.id)).size).toBe(20)
    }))

  it.effect("only the SHA-256 of the secret is in the record; the secret is Redacted", () =>
    Effect.gen(function*() {
      const { record, secret } = yield* generate({ tenant: "acme", name: "ci" }, NOW)
      const text = Redacted.value(secret)
      expect(record).toEqual({ id: record.id, tenant: "acme", name: "ci", hash: hashSecret(text), createdAt: NOW })
      expect(encodeRecord(record)).not.toContain(text)
      expect(encodeRecord(record)).not.toContain(text.slice(6, 20))
      expect(String(secret)).not.toContain(text)
      expect(JSON.stringify({ secret })).not.toContain(text)
    }))

  it.effect("the created key authenticates with its secret", () =>
    Effect.gen(function*() {
      const { record, secret } = yield* generate({ tenant: "acme", models: ["gpt-4o"], rateLimit: { rpm: 60 } }, NOW)
      const found = yield* authenticate(`Bearer ${Redacted.value(secret)}`, NOW).pipe(withKeys([record]))
      expect(found).toEqual(record)
    }))

  it.effect("limits, models and an expiry: ttl counts from now, expiresAt is taken as it is", () =>
    Effect.gen(function*() {
      const options = {
        tenant: "acme",
        models: ["gpt-4o", "gpt-4o-mini"],
        budgets: [{ tokens: 1_000_000, period: "day" as const }, { usd: 20, period: { rolling: "6 hours" } }],
        rateLimit: { rpm: 600, tpm: 100_000 }
      }
      const byTtl = yield* generate({ ...options, ttl: "30 days" }, NOW)
      expect(byTtl.record).toMatchObject({ ...options, expiresAt: NOW + 30 * 86_400_000 })
      const byDate = yield* generate({ tenant: "acme", expiresAt: Date.parse("2027-01-01T00:00:00Z") }, NOW)
      expect(byDate.record.expiresAt).toBe(Date.parse("2027-01-01T00:00:00Z"))
    }))

  it.effect("bad options fail with InvalidOptions listing every bad path", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(generate({
        tenant: "",
        models: ["gpt-4o", ""],
        budgets: [{ period: "week" }, { tokens: -5, period: "day" }],
        rateLimit: { rpm: 1.5 },
        expiresAt: NOW + 1,
        ttl: "1 day",
        tennant: "typo"
      } as never, NOW))
      expect(error._tag).toBe("InvalidOptions")
      expect(error.issues.map((i) => i.path).sort()).toEqual(
        ["budgets.0.period", "budgets.1.tokens", "models.1", "rateLimit.rpm", "tenant", "tennant", "ttl"].sort()
      )
      const past = yield* Effect.flip(generate({ tenant: "acme", expiresAt: NOW - 1 }, NOW))
      expect(past.issues).toEqual([{ path: "expiresAt", message: expect.stringContaining("after now") }])
    }))
})

describe("KeyRecord Schema", () => {
  it("a record decodes as it was encoded", () => {
    const record: KeyRecord = {
      ...base,
      name: "prod",
      expiresAt: NOW + 1,
      revokedAt: NOW,
      models: ["m"],
      budgets: [{ usd: 1.25, period: { rolling: 3_600_000 } }],
      rateLimit: { tpm: 1 }
    }
    expect(decodeRecord(JSON.parse(encodeRecord(record)))).toEqual(Either.right(record))
  })

  it("a key file with bad records lists every bad path (index, field), misspelt fields and repeats included", () => {
    const result = decodeRecords([
      base,
      { ...base, id: "bad id", hash: "ABC", tenant: "a\u0007b", createdAt: 1.5, budgets: [{ tokens: 10, period: { rolling: "soon" } }] },
      { id: "key_two", tenant: "t", hash: base.hash, createdAt: 0, rateLimit: { rpm: 0, rps: 1 }, expires: 5 },
      "not a record"
    ])
    expect(Either.isLeft(result)).toBe(true)
    if (Either.isRight(result)) return
    expect(result.left.issues.map((i) => i.path)).toEqual([
      "1.id", "1.tenant", "1.hash", "1.createdAt", "1.budgets.0.period.rolling",
      "2.expires", "2.rateLimit.rps", "2.rateLimit.rpm", "3"
    ])
    const repeated = decodeRecords([base, { ...base, id: "key_other" }])
    expect(Either.isLeft(repeated) && repeated.left.issues).toEqual([{ path: "1.hash", message: "The hash of key 0 again" }])
  })
})
