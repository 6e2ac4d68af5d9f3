/**
 * The Redis `KeyStore` of the gateway, shared by every replica. Three hashes under the client's prefix, in one hash
 * slot (`{gateway-keys}`) so that each script touches one slot:
 *
 *   <prefix>{gateway-keys}:records   SHA-256 of the secret → the record as JSON (no secret anywhere)
 *   <prefix>{gateway-keys}:ids       key id → SHA-256 (for `revoke` by id, and a unique id)
 *   <prefix>{gateway-keys}:revoked   SHA-256 → epoch ms of the revocation
 *
 * `put` is one script (refuses an id or hash already present, then writes both hashes), `revoke` one script (sets the
 * revocation time unless an earlier one stands), `get` one script (the record and its revocation, read together),
 * `list` one script (every record and revocation). A revocation lives beside the record, not inside its JSON, so no
 * script ever re-encodes a record. These keys carry no TTL, unlike the other stores' state: they are the gateway's
 * configuration, and a TTL would delete a live key; an expired or revoked record stays until it is removed by hand.
 * A Redis failure, or a stored record that does not decode, is a `KeyStoreError` (authentication fails closed).
 */
import { Effect, Either, Layer, Option, Schema } from "effect"
import { InvalidOptions } from "../../InvalidOptions.js"
import { byCreation, type KeyRecord, KeyRecordSchema, KeyStore, KeyStoreError, type KeyStoreService } from "../gateway/keys.js"
import { RedisClient, type RedisError, script } from "./client.js"

// KEYS: records, ids. ARGV: hash, id, record JSON.
const PUT = script(`
if redis.call("HEXISTS", KEYS[1], ARGV[1]) == 1 or redis.call("HEXISTS", KEYS[2], ARGV[2]) == 1 then return 0 end
redis.call("HSET", KEYS[1], ARGV[1], ARGV[3])
redis.call("HSET", KEYS[2], ARGV[2], ARGV[1])
return 1
`)

// KEYS: ids, revoked. ARGV: id, now. An earlier revocation stands.
const REVOKE = script(`
local hash = redis.call("HGET", KEYS[1], ARGV[1])
if not hash then return 0 end
local at = redis.call("HGET", KEYS[2], hash)
if at and tonumber(at) <= tonumber(ARGV[2]) then return 1 end
redis.call("HSET", KEYS[2], hash, ARGV[2])
return 1
`)

// KEYS: records, revoked. ARGV: hash.
const GET = script(`
return { redis.call("HGET", KEYS[1], ARGV[1]), redis.call("HGET", KEYS[2], ARGV[1]) }
`)

// KEYS: records, revoked.
const LIST = script(`
return { redis.call("HGETALL", KEYS[1]), redis.call("HGETALL", KEYS[2]) }
`)

/** The scripts, for tests and for preloading. */
export const scripts = { PUT, REVOKE, GET, LIST } as const

/** The three Redis keys of the store under `prefix`. */
export const keysOf = (prefix: string) => ({
  records: `${prefix}{gateway-keys}:records`,
  ids: `${prefix}{gateway-keys}:ids`,
  revoked: `${prefix}{gateway-keys}:revoked`
})

const decodeJson = Schema.decodeUnknownEither(Schema.parseJson(KeyRecordSchema), { errors: "all", onExcessProperty: "error" })

/** A stored record with its revocation (the earlier of the record's own and the one beside it). */
const recordOf = (json: string, revoked: unknown): Either.Either<KeyRecord, InvalidOptions> =>
  Either.map(
    Either.mapLeft(decodeJson(json), (error) => InvalidOptions.fromParseError("Gateway key (Redis)", error)),
    (record) => {
      const at = typeof revoked === "string" ? Number(revoked) : undefined
      if (at === undefined || !Number.isFinite(at)) return record
      return record.revokedAt !== undefined && record.revokedAt <= at ? record : { ...record, revokedAt: at }
    }
  )

const pairs = (flat: unknown): ReadonlyArray<readonly [string, string]> => {
  const items = Array.isArray(flat) ? flat.map(String) : []
  const out: Array<readonly [string, string]> = []
  for (let i = 0; i + 1 < items.length; i += 2) out.push([items[i], items[i + 1]])
  return out
}

/** The store over a RedisClient (its connection and key prefix). */
export const make = (redis: RedisClient["Type"]): KeyStoreService => {
  const keys = keysOf(redis.prefix)
  const failed = (operation: string) => (cause: RedisError | InvalidOptions) => new KeyStoreError({ operation, cause })
  return {
    get: (hash) =>
      redis.run(GET, [keys.records, keys.revoked], [hash]).pipe(
        Effect.flatMap((reply) => {
          const [json, revoked] = Array.isArray(reply) ? reply : []
          return typeof json !== "string" ? Effect.succeed(Option.none()) : Effect.map(recordOf(json, revoked), Option.some)
        }),
        Effect.mapError(failed("get"))
      ),
    put: (record) =>
      Schema.encode(Schema.parseJson(KeyRecordSchema), { errors: "all" })(record).pipe(
        Effect.mapError((error) => InvalidOptions.fromParseError("Gateway key", error)),
        Effect.flatMap((json) => redis.run(PUT, [keys.records, keys.ids], [record.hash, record.id, json])),
        Effect.map((reply) => reply === 1),
        Effect.mapError(failed("put"))
      ),
    list: redis.run(LIST, [keys.records, keys.revoked], []).pipe(
      Effect.flatMap((reply) => {
        const [records, revocations] = Array.isArray(reply) ? reply : []
        const revokedAt = new Map(pairs(revocations))
        return Effect.all(pairs(records).map(([hash, json]) => recordOf(json, revokedAt.get(hash))))
      }),
      Effect.map((records) => [...records].sort(byCreation)),
      Effect.mapError(failed("list"))
    ),
    revoke: (id, now) =>
      redis.run(REVOKE, [keys.ids, keys.revoked], [id, Math.floor(now)]).pipe(
        Effect.map((reply) => reply === 1),
        Effect.mapError(failed("revoke"))
      )
  }
}

/** The `KeyStore` over the `RedisClient` in context. */
export const layer: Layer.Layer<KeyStore, never, RedisClient> = Layer.effect(KeyStore, Effect.map(RedisClient, make))
