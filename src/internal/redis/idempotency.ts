/**
 * The Redis IdempotencyStore: one Lua script (or one command) per store method, `now` from the caller's Effect clock.
 *
 * One key per idempotency key, `P<key>` (P = the client's prefix): a hash `{ s: "i" | "c", f: <fingerprint>,
 * x: <expiresAt>, o: <owner token>, r: <record as JSON> }` — `s` is "i" for a claim in flight (`o` names its owner),
 * "c" for a settled record. `complete` and `release` compare the owner and act in one script. Whether an
 * entry is live is decided from `x` against the caller's `now`; Redis' own expiry (the logical lifetime plus a
 * margin) only collects what nobody reads any more.
 */
import { Effect, Layer, Option } from "effect"
import { type ClaimResult, type Entry, IdempotencyStore, type Store, type StoredRecord } from "../../Idempotency.js"
import { RedisClient, type RedisError, script } from "./client.js"

/** Redis keeps a key this long after its logical expiry: clocks differ, and the logical expiry decides anyway. */
export const TTL_MARGIN_MS = 60_000

// KEYS: entry. ARGV: fingerprint, now, expiresAt, redis ttl, owner.
const CLAIM = script(`
local e = redis.call("HMGET", KEYS[1], "s", "f", "x", "r")
if e[1] and e[3] and tonumber(e[3]) > tonumber(ARGV[2]) then
  if e[2] ~= ARGV[1] then return {"Mismatch"} end
  if e[1] == "c" then return {"Completed", e[4] or ""} end
  return {"InFlight"}
end
redis.call("DEL", KEYS[1])
redis.call("HSET", KEYS[1], "s", "i", "f", ARGV[1], "x", ARGV[3], "o", ARGV[5])
redis.call("PEXPIRE", KEYS[1], ARGV[4])
return {"Claimed"}
`)

// KEYS: entry. ARGV: fingerprint, record, expiresAt, redis ttl, ttl, owner. Only the owner's claim is settled.
const COMPLETE = script(`
local e = redis.call("HMGET", KEYS[1], "s", "o")
if e[1] ~= "i" or e[2] ~= ARGV[6] then return 0 end
redis.call("DEL", KEYS[1])
if tonumber(ARGV[5]) <= 0 then return 1 end
redis.call("HSET", KEYS[1], "s", "c", "f", ARGV[1], "x", ARGV[3], "r", ARGV[2])
redis.call("PEXPIRE", KEYS[1], ARGV[4])
return 1
`)

// KEYS: entry. ARGV: owner. Only the owner's claim is released.
const RELEASE = script(`
local e = redis.call("HMGET", KEYS[1], "s", "o")
if e[1] ~= "i" or e[2] ~= ARGV[1] then return 0 end
redis.call("DEL", KEYS[1])
return 1
`)

// KEYS: entry. ARGV: record as stored. Only that exact settled record is dropped.
const DISCARD = script(`
local e = redis.call("HMGET", KEYS[1], "s", "r")
if e[1] ~= "c" or (e[2] or "") ~= ARGV[1] then return 0 end
redis.call("DEL", KEYS[1])
return 1
`)

/** The scripts, for tests and for preloading. */
export const scripts = { CLAIM, COMPLETE, RELEASE, DISCARD } as const

/**
 * A record's JSON as the engine expects it. A record that does not parse (or is not a JSON object) is handed on as its raw text: the engine
 * decodes every record with the StoredRecord Schema, and drops (`discard`) one that does not decode before it runs
 * the call again. The text each parsed record came from is remembered, so `discard` compares the exact stored value.
 */
const rawText = new WeakMap<object, string>()
const parseRecord = (text: string): StoredRecord => {
  try {
    const parsed: unknown = JSON.parse(text)
    if (typeof parsed !== "object" || parsed === null) return text as unknown as StoredRecord
    rawText.set(parsed, text)
    return parsed as StoredRecord
  } catch {
    return text as unknown as StoredRecord
  }
}
const storedText = (record: StoredRecord): string =>
  typeof record === "string" ? record : rawText.get(record) ?? JSON.stringify(record)

const redisTtl = (ttl: number): number => Math.max(1, Math.ceil(ttl)) + TTL_MARGIN_MS

/** A failure that decides whether a call runs: logged, then a defect (fail closed: never a silent second call). */
const failClosed = (operation: string) => (error: RedisError) =>
  Effect.zipRight(
    Effect.logError(`IdempotencyStore (Redis): ${operation} failed; the call fails with a defect`).pipe(
      Effect.annotateLogs({ store: "IdempotencyStore", operation, reason: error.reason })
    ),
    Effect.die(error)
  )

/** A failure after the call ran: logged, and nothing was done; the claim blocks duplicates until its lease expires. */
const warn = (operation: string) => (error: RedisError) =>
  Effect.logWarning(
    `IdempotencyStore (Redis): ${operation} failed; the claim stays until its lease expires`
  ).pipe(Effect.annotateLogs({ store: "IdempotencyStore", operation, reason: error.reason }), Effect.as(false))

const applied = (reply: unknown): boolean => reply === 1

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
 * becomes a defect (the call fails; it never runs unguarded). A failed `complete`, `release` or `discard` comes after
 * the call (or before a new claim): it is logged as a warning and answers false; the caller keeps its outcome and the
 * claim expires at its lease.
 */
export const make = (redis: RedisClient["Type"]): Store => {
  const entry = (key: string) => `${redis.prefix}${key}`
  return {
    claim: (key, fingerprint, now, ttl, owner) =>
      redis.run(CLAIM, [entry(key)], [fingerprint, now, now + ttl, redisTtl(ttl), owner]).pipe(
        Effect.catchAll(failClosed("claim")),
        Effect.flatMap(claimResult)
      ),
    complete: (key, record, now, ttl, owner) =>
      redis.run(COMPLETE, [entry(key)], [
        record.fingerprint,
        JSON.stringify(record),
        now + ttl,
        redisTtl(ttl),
        ttl,
        owner
      ]).pipe(Effect.map(applied), Effect.catchAll(warn("complete"))),
    release: (key, owner) =>
      redis.run(RELEASE, [entry(key)], [owner]).pipe(Effect.map(applied), Effect.catchAll(warn("release"))),
    discard: (key, record) =>
      redis.run(DISCARD, [entry(key)], [storedText(record)]).pipe(Effect.map(applied), Effect.catchAll(warn("discard"))),
    get: (key, now) =>
      redis.use("HMGET", (client) => client.hmget(entry(key), "s", "f", "x", "r")).pipe(
        Effect.map((fields) => entryOf(fields, now)),
        Effect.catchAll(failClosed("get"))
      )
  }
}

/** The store over the `RedisClient` in context. */
export const layer: Layer.Layer<IdempotencyStore, never, RedisClient> = Layer.effect(
  IdempotencyStore,
  Effect.map(RedisClient, make)
)
