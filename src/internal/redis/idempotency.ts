/**
 * The Redis IdempotencyStore: one Lua script (or one command) per store method, `now` from the caller's Effect clock.
 *
 * One key per idempotency key, `P<key>` (P = the client's prefix): a hash `{ s: "i" | "c", f: <fingerprint>,
 * x: <expiresAt>, r: <record as JSON> }` — `s` is "i" for a claim in flight, "c" for a settled record. Whether an
 * entry is live is decided from `x` against the caller's `now`; Redis' own expiry (the logical lifetime plus a
 * margin) only collects what nobody reads any more.
 */
import { createHash } from "node:crypto"
import { Effect, Option } from "effect"
import type { ClaimResult, Entry, Store, StoredRecord } from "../../Idempotency.js"
import type { RedisClient, RedisError, Script } from "../../Redis.js"

const lua = (source: string): Script => ({ source, sha1: createHash("sha1").update(source).digest("hex") })

/** Redis keeps a key this long after its logical expiry: clocks differ, and the logical expiry decides anyway. */
export const TTL_MARGIN_MS = 60_000

// KEYS: entry. ARGV: fingerprint, now, expiresAt, redis ttl.
const CLAIM = lua(`
local e = redis.call("HMGET", KEYS[1], "s", "f", "x", "r")
if e[1] and e[3] and tonumber(e[3]) > tonumber(ARGV[2]) then
  if e[2] ~= ARGV[1] then return {"Mismatch"} end
  if e[1] == "c" then return {"Completed", e[4] or ""} end
  return {"InFlight"}
end
redis.call("DEL", KEYS[1])
redis.call("HSET", KEYS[1], "s", "i", "f", ARGV[1], "x", ARGV[3])
redis.call("PEXPIRE", KEYS[1], ARGV[4])
return {"Claimed"}
`)

// KEYS: entry. ARGV: fingerprint, record, expiresAt, redis ttl, ttl.
const COMPLETE = lua(`
redis.call("DEL", KEYS[1])
if tonumber(ARGV[5]) <= 0 then return 0 end
redis.call("HSET", KEYS[1], "s", "c", "f", ARGV[1], "x", ARGV[3], "r", ARGV[2])
redis.call("PEXPIRE", KEYS[1], ARGV[4])
return 1
`)

/** The scripts, for tests and for preloading. */
export const scripts = { CLAIM, COMPLETE } as const

/**
 * A record's JSON as the engine expects it. A record that does not parse is handed on as is (null): the engine
 * decodes every record with the StoredRecord Schema, drops one that does not decode and runs the call again.
 */
const parseRecord = (text: string): StoredRecord => {
  try {
    return JSON.parse(text) as StoredRecord
  } catch {
    return null as unknown as StoredRecord
  }
}

const redisTtl = (ttl: number): number => Math.max(1, Math.ceil(ttl)) + TTL_MARGIN_MS

/** A failure that decides whether a call runs: logged, then a defect (fail closed: never a silent second call). */
const failClosed = (operation: string) => (error: RedisError) =>
  Effect.zipRight(
    Effect.logError(`IdempotencyStore (Redis): ${operation} failed; the call fails with a defect`).pipe(
      Effect.annotateLogs({ store: "IdempotencyStore", operation, reason: error.reason })
    ),
    Effect.die(error)
  )

/** A failure after the call ran: logged; the claim then blocks duplicates until its lease expires. */
const warn = (operation: string) => (error: RedisError) =>
  Effect.logWarning(
    `IdempotencyStore (Redis): ${operation} failed; the claim stays until its lease expires`
  ).pipe(Effect.annotateLogs({ store: "IdempotencyStore", operation, reason: error.reason }))

const claimResult = (reply: unknown): Effect.Effect<ClaimResult> => {
  const [tag, record] = Array.isArray(reply) ? reply : []
  switch (tag) {
    case "Claimed":
      return Effect.succeed({ _tag: "Claimed" })
    case "InFlight":
      return Effect.succeed({ _tag: "InFlight" })
    case "Mismatch":
      return Effect.succeed({ _tag: "Mismatch" })
    case "Completed":
      return Effect.succeed({ _tag: "Completed", record: parseRecord(typeof record === "string" ? record : "") })
    default:
      return Effect.dieMessage("IdempotencyStore (Redis): unexpected reply from the claim script")
  }
}

const entryOf = (fields: ReadonlyArray<string | null>, now: number): Option.Option<Entry> => {
  const [state, fingerprint, expiry, record] = fields
  const expiresAt = Number(expiry)
  if (state === null || fingerprint === null || expiry === null || !(expiresAt > now)) return Option.none()
  return state === "c"
    ? Option.some({ _tag: "Completed", record: parseRecord(record ?? ""), expiresAt })
    : Option.some({ _tag: "InFlight", fingerprint, expiresAt })
}

/**
 * The store over a RedisClient. `claim` and `get` decide whether a call runs, so a Redis failure there is logged and
 * becomes a defect (the call fails; it never runs unguarded). A failed `complete` or `release` comes after the call:
 * it is logged as a warning and the caller keeps its outcome; the claim then expires at its lease.
 */
export const make = (redis: RedisClient["Type"]): Store => {
  const entry = (key: string) => `${redis.prefix}${key}`
  return {
    claim: (key, fingerprint, now, ttl) =>
      redis.run(CLAIM, [entry(key)], [fingerprint, now, now + ttl, redisTtl(ttl)]).pipe(
        Effect.catchAll(failClosed("claim")),
        Effect.flatMap(claimResult)
      ),
    complete: (key, record, now, ttl) =>
      redis.run(COMPLETE, [entry(key)], [record.fingerprint, JSON.stringify(record), now + ttl, redisTtl(ttl), ttl]).pipe(
        Effect.asVoid,
        Effect.catchAll(warn("complete"))
      ),
    release: (key) =>
      redis.use("DEL", (client) => client.del(entry(key))).pipe(
        Effect.asVoid,
        Effect.catchAll(warn("release"))
      ),
    get: (key, now) =>
      redis.use("HMGET", (client) => client.hmget(entry(key), "s", "f", "x", "r")).pipe(
        Effect.map((fields) => entryOf(fields, now)),
        Effect.catchAll(failClosed("get"))
      )
  }
}
