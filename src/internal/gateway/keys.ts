/**
 * Virtual keys: the keys the gateway's clients authenticate with (`Authorization: Bearer <secret>`). A key is stored
 * by the SHA-256 of its secret only (the secret is shown once, when it is created), and maps to a tenant with its
 * own limits. Upstream provider keys never leave the gateway.
 *
 * This module holds the record and its Schema, key generation, the store Tag and authentication; the stores are
 * `keysMemory.ts` (in memory, or a key file for one process), `../redis/gatewayKeys.ts` (shared by every replica) and
 * `keysCache.ts` (a short in-process cache in front of either).
 */
import { randomBytes } from "node:crypto"
import { Context, Data, Duration, Effect, Either, Option, Redacted, Schema } from "effect"
import { decode, InvalidOptions } from "../../InvalidOptions.js"
import { sha256Hex } from "../hash.js"
import { DurationInput } from "../durationInput.js"
import { periodSchema, strict } from "../optionSchemas.js"

/** A budget of one key: tokens and/or USD per period, as `TokenBudget.policy` takes them. */
export interface KeyBudget {
  readonly tokens?: number | undefined
  readonly usd?: number | undefined
  /**
   * "minute" | "hour" | "day" | "month" (UTC), or `{ rolling: "6 hours" }` (a duration as JSON holds it: a string
   * Effect's `Duration` parses, or milliseconds).
   */
  readonly period: "minute" | "hour" | "day" | "month" | { readonly rolling: string | number }
}

/** What one virtual key may do. Every limit is optional: none means the route's own limits only. */
export interface KeyRecord {
  /** A short public id (`key_…`): shown in lists, logs and metric labels; never the secret. */
  readonly id: string
  /** The tenant (team) the key belongs to: scopes budgets, cache and idempotency records. */
  readonly tenant: string
  /** A human label. */
  readonly name?: string | undefined
  /** SHA-256 hex of the secret. */
  readonly hash: string
  /** Epoch milliseconds. */
  readonly createdAt: number
  /** Epoch milliseconds after which the key is refused; none = no expiry. */
  readonly expiresAt?: number | undefined
  /** Epoch milliseconds at which it was revoked. */
  readonly revokedAt?: number | undefined
  /** The models (gateway model names) the key may call; none = every model. */
  readonly models?: ReadonlyArray<string> | undefined
  /** Budgets of the key across every replica, outermost first. */
  readonly budgets?: ReadonlyArray<KeyBudget> | undefined
  /** Requests and tokens per minute of the key across every replica. */
  readonly rateLimit?: { readonly rpm?: number | undefined; readonly tpm?: number | undefined } | undefined
}

// ---------------------------------------------------------------------------------------------------------------
// Schema

const EpochMillis = Schema.Int.pipe(
  Schema.filter((n) => n >= 0 || `Expected epoch milliseconds (an integer ≥ 0), actual ${n}`)
)
const PositiveInt = Schema.Int.pipe(Schema.filter((n) => n >= 1 || `Expected an integer ≥ 1, actual ${n}`))
const PositiveNumber = Schema.Number.pipe(
  Schema.filter((n) => (Number.isFinite(n) && n > 0) || `Expected a positive number, actual ${n}`)
)
/** Printable text without control characters (ids and names reach logs and tables). */
const Label = (max: number) =>
  Schema.String.pipe(
    Schema.filter((s) =>
      (s.trim().length > 0 && s.length <= max && !/[\u0000-\u001f\u007f]/.test(s)) ||
      `Expected a non-empty text of at most ${max} characters without control characters`
    )
  )

/** `key_` then 1 to 64 letters, digits, `_` or `-`. */
export const KeyId = Schema.String.pipe(
  Schema.filter((s) => /^key_[A-Za-z0-9_-]{1,64}$/.test(s) || `Expected "key_" then letters, digits, "_" or "-", actual ${JSON.stringify(s)}`)
)

const Sha256Hex = Schema.String.pipe(
  Schema.filter((s) => /^[0-9a-f]{64}$/.test(s) || "Expected the SHA-256 of the secret as 64 lowercase hex digits")
)

const RollingWindow = Schema.Union(Schema.String, Schema.Number).pipe(
  Schema.filter((input) => {
    const decoded = Either.getRight(Schema.decodeUnknownEither(DurationInput)(input))
    return (Option.isSome(decoded) && Duration.isFinite(decoded.value) && Duration.toMillis(decoded.value) >= 1) ||
      `Expected a finite duration of at least 1 millisecond ("6 hours" or milliseconds), actual ${JSON.stringify(input)}`
  })
)

const RollingPeriod = Schema.Struct({ rolling: RollingWindow }).annotations(strict)
const PeriodSchema = periodSchema(RollingPeriod, `{ "rolling": duration }`)

/** The Schema of a {@link KeyBudget}: `tokens` (an integer ≥ 1) and/or `usd` (> 0), and a period. */
export const KeyBudgetSchema: Schema.Schema<KeyBudget, KeyBudget> = Schema.Struct({
  tokens: Schema.optional(PositiveInt),
  usd: Schema.optional(PositiveNumber),
  period: PeriodSchema
}).pipe(
  Schema.annotations(strict),
  Schema.filter((b) =>
    b.tokens !== undefined || b.usd !== undefined ||
    { path: ["tokens"], message: "A budget needs tokens and/or usd" }
  )
)

/**
 * The Schema of a {@link KeyRecord}, as a key file and the Redis store hold it (plain JSON). Misspelt fields are
 * refused; decode it through {@link decodeRecords} or `InvalidOptions.decode` to get every bad path listed.
 */
export const KeyRecordSchema: Schema.Schema<KeyRecord, KeyRecord> = Schema.Struct({
  id: KeyId,
  tenant: Label(256),
  name: Schema.optional(Label(256)),
  hash: Sha256Hex,
  createdAt: EpochMillis,
  expiresAt: Schema.optional(EpochMillis),
  revokedAt: Schema.optional(EpochMillis),
  models: Schema.optional(Schema.Array(Label(256))),
  budgets: Schema.optional(Schema.Array(KeyBudgetSchema)),
  rateLimit: Schema.optional(
    Schema.Struct({ rpm: Schema.optional(PositiveInt), tpm: Schema.optional(PositiveInt) }).annotations(strict)
  )
}).annotations(strict)

/** Records, each by the Schema, with no id or hash twice. */
export const decodeRecords = (
  input: unknown,
  target = "Gateway keys"
): Either.Either<ReadonlyArray<KeyRecord>, InvalidOptions> =>
  Either.flatMap(decode(Schema.Array(KeyRecordSchema), target, input), (records) => {
    const issues: Array<InvalidOptions["issues"][number]> = []
    const ids = new Map<string, number>()
    const hashes = new Map<string, number>()
    records.forEach((record, i) => {
      const id = ids.get(record.id)
      if (id !== undefined) issues.push({ path: `${i}.id`, message: `The id of key ${id} again` })
      else ids.set(record.id, i)
      const hash = hashes.get(record.hash)
      if (hash !== undefined) issues.push({ path: `${i}.hash`, message: `The hash of key ${hash} again` })
      else hashes.set(record.hash, i)
    })
    const error = InvalidOptions.fromIssues(target, issues)
    return error === undefined ? Either.right(records) : Either.left(error)
  })

/** One record by the Schema (every bad path listed). */
export const decodeRecord = (input: unknown, target = "Gateway key"): Either.Either<KeyRecord, InvalidOptions> =>
  decode(KeyRecordSchema, target, input)

/** A record as JSON: fields in the Schema's order, absent ones left out. */
export const encodeRecord = (record: KeyRecord): string => JSON.stringify(Schema.encodeSync(KeyRecordSchema)(record))

// ---------------------------------------------------------------------------------------------------------------
// Errors, store

/** The key store could not be read or written (Redis down, an unreadable key file, a stored record that does not decode). */
export class KeyStoreError extends Data.TaggedError("KeyStoreError")<{
  readonly cause: unknown
  /** What was being done ("get", "put", "read key file", …). */
  readonly operation?: string | undefined
}> {
  override get message(): string {
    const reason = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `Gateway key store${this.operation === undefined ? "" : ` ${this.operation}`} failed: ${reason}`
  }
}

/** Why a request's key was refused. */
export class KeyRefused extends Data.TaggedError("KeyRefused")<{
  readonly reason: "missing" | "unknown" | "revoked" | "expired"
  /** The key's public id when it is known. */
  readonly keyId?: string | undefined
}> {}

/** Where virtual keys are kept: each method one atomic step. */
export interface KeyStoreService {
  /** The record whose secret hashes to `hash`. */
  readonly get: (hash: string) => Effect.Effect<Option.Option<KeyRecord>, KeyStoreError>
  /** Adds a record (refuses an id or hash already present with `false`). */
  readonly put: (record: KeyRecord) => Effect.Effect<boolean, KeyStoreError>
  /** Every record, revoked ones included, oldest first. */
  readonly list: Effect.Effect<ReadonlyArray<KeyRecord>, KeyStoreError>
  /** Marks the key with this id revoked at `now` (an earlier revocation stands); false when there is no such key. */
  readonly revoke: (id: string, now: number) => Effect.Effect<boolean, KeyStoreError>
}

/** The gateway's key store. */
export class KeyStore extends Context.Tag("effect-llm-resilience/Gateway/KeyStore")<KeyStore, KeyStoreService>() {}

/** Records oldest first (by `createdAt`, then id), the order `list` answers in. */
export const byCreation = (a: KeyRecord, b: KeyRecord): number =>
  a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)

// ---------------------------------------------------------------------------------------------------------------
// Generation

/** The prefix of every secret the gateway generates. */
export const secretPrefix = "sk-gw-"

const idAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

/** `n` characters of the alphabet, each uniform (bytes of 248 or more are drawn again: 248 = 4 × 62). */
const randomChars = (n: number): string => {
  let out = ""
  while (out.length < n) {
    for (const byte of randomBytes(n * 2)) {
      if (byte < 248 && out.length < n) out += idAlphabet[byte % 62]
    }
  }
  return out
}

/** What a new key may do; `expiresAt` (epoch ms) or `ttl` (from `now`), not both. */
export interface GenerateOptions {
  readonly tenant: string
  readonly name?: string | undefined
  readonly models?: ReadonlyArray<string> | undefined
  readonly budgets?: ReadonlyArray<KeyBudget> | undefined
  readonly rateLimit?: { readonly rpm?: number | undefined; readonly tpm?: number | undefined } | undefined
  readonly expiresAt?: number | undefined
  readonly ttl?: Duration.DurationInput | undefined
}

/** A new key: its record (to store) and its secret (to hand over once; it is stored nowhere). */
export interface GeneratedKey {
  readonly record: KeyRecord
  readonly secret: Redacted.Redacted<string>
}

const TtlSchema = DurationInput.pipe(
  Schema.filter((d) => (Duration.isFinite(d) && Duration.toMillis(d) >= 1) || "Expected a finite duration of at least 1 millisecond")
)

const generateFields = ["tenant", "name", "models", "budgets", "rateLimit", "expiresAt", "ttl"]

/** The record `generate` would store, or every bad path of the options (misspelt ones, the record's, the expiry's). */
const recordOf = (
  options: GenerateOptions,
  now: number,
  id: string,
  hash: string
): Either.Either<KeyRecord, InvalidOptions> => {
  const target = "Gateway key"
  const given: Record<string, unknown> = typeof options === "object" && options !== null ? { ...options } : {}
  const issues: Array<InvalidOptions["issues"][number]> = Object.keys(given)
    .filter((key) => !generateFields.includes(key))
    .map((key) => ({ path: key, message: `is unexpected, expected one of ${generateFields.join(", ")}` }))
  let expiresAt = given.expiresAt
  if (given.ttl !== undefined) {
    const ttl = decode(TtlSchema, target, given.ttl)
    if (Either.isLeft(ttl)) issues.push(...ttl.left.issues.map((i) => ({ ...i, path: "ttl" })))
    else expiresAt = now + Math.ceil(Duration.toMillis(ttl.right))
    if (given.expiresAt !== undefined) issues.push({ path: "ttl", message: "Give expiresAt or ttl, not both" })
  }
  if (typeof expiresAt === "number" && expiresAt <= now) {
    const path = given.ttl !== undefined ? "ttl" : "expiresAt"
    issues.push({ path, message: `Expected a time after now (${new Date(now).toISOString()})` })
  }
  const candidate = Object.fromEntries(Object.entries({
    id, tenant: given.tenant, name: given.name, hash, createdAt: now, expiresAt,
    models: given.models, budgets: given.budgets, rateLimit: given.rateLimit
  }).filter(([, v]) => v !== undefined))
  const decoded = decode(KeyRecordSchema, target, candidate)
  const error = InvalidOptions.fromIssues(target, [...(Either.isLeft(decoded) ? decoded.left.issues : []), ...issues])
  return error !== undefined ? Either.left(error) : decoded
}

/** Every bad path of `generate`'s options at `now` (none when it would succeed), without drawing a secret. */
export const validate = (options: GenerateOptions, now: number): ReadonlyArray<InvalidOptions["issues"][number]> =>
  Either.match(recordOf(options, now, "key_000000000000", "0".repeat(64)), { onLeft: (e) => e.issues, onRight: () => [] })

/**
 * A new virtual key: a secret `sk-gw-` + 32 bytes of crypto randomness (base64url), and its record with the id
 * `key_` + 12 random letters and digits, created at `now` (epoch ms). Only the SHA-256 of the secret is in the
 * record; the secret is returned once (Redacted) and kept nowhere. Bad options fail with `InvalidOptions`, every
 * bad path listed.
 */
export const generate = (options: GenerateOptions, now: number): Effect.Effect<GeneratedKey, InvalidOptions> =>
  Effect.suspend(() => {
    const secret = `${secretPrefix}${randomBytes(32).toString("base64url")}`
    const record = recordOf(options, now, `key_${randomChars(12)}`, hashSecret(secret))
    return Either.match(record, {
      onLeft: Effect.fail,
      onRight: (record) => Effect.succeed({ record, secret: Redacted.make(secret) })
    })
  })

// ---------------------------------------------------------------------------------------------------------------
// Authentication

/** The SHA-256 hex of a secret, as stored. */
export const hashSecret = (secret: string): string => sha256Hex(secret)

/** The bearer token of an `Authorization` header value, if it holds one. */
export const bearer = (authorization: string | undefined): Option.Option<string> => {
  if (authorization === undefined) return Option.none()
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization)
  return match === null ? Option.none() : Option.some(match[1])
}

/** Whether a record lets a request in at `now`, or why not. */
export const check = (record: KeyRecord, now: number): Either.Either<KeyRecord, KeyRefused> => {
  if (record.revokedAt !== undefined && record.revokedAt <= now) {
    return Either.left(new KeyRefused({ reason: "revoked", keyId: record.id }))
  }
  if (record.expiresAt !== undefined && record.expiresAt <= now) {
    return Either.left(new KeyRefused({ reason: "expired", keyId: record.id }))
  }
  return Either.right(record)
}

/**
 * The record of the key a request presents, or why it is refused. `now` is epoch milliseconds from the Effect clock.
 */
export const authenticate = (
  authorization: string | undefined,
  now: number
): Effect.Effect<KeyRecord, KeyRefused | KeyStoreError, KeyStore> =>
  Option.match(bearer(authorization), {
    onNone: () => Effect.fail(new KeyRefused({ reason: "missing" })),
    onSome: (secret) =>
      Effect.flatMap(KeyStore, (store) =>
        Effect.flatMap(store.get(hashSecret(secret)), (found) =>
          Option.isNone(found)
            ? Effect.fail(new KeyRefused({ reason: "unknown" }))
            : check(found.value, now)))
  })
