/**
 * The Redis ResponseCacheStore: one Lua script per store method, `now` from the caller's Effect clock.
 *
 * Keys (all under the client's prefix `P`):
 * - `P<key>`: a hash `{ v: <ChatResponse as JSON>, x: <expiresAt> }`, PEXPIRE'd at its logical lifetime plus a margin;
 * - `P llm-cache-index:v1:lru`: a sorted set of keys scored by use order (the LRU index, bounded at `capacity`);
 * - `P llm-cache-index:v1:exp`: a sorted set of keys scored by `expiresAt` (for `size` and purging expired entries).
 *
 * Use order is a counter kept in the LRU set itself (the highest score + 1): Redis serializes the scripts of every
 * process, so the order is global and immune to clock skew between processes.
 */
import { Effect, Layer, Option, Schema } from "effect"
import { decode, type InvalidOptions } from "../../InvalidOptions.js"
import { RedisClient, type RedisError, script } from "./client.js"
import { ResponseCacheStore, type Store, type StoredResponse } from "../../ResponseCache.js"

/** Redis keeps a key this long after its logical expiry: clocks differ, and the logical expiry decides anyway. */
export const TTL_MARGIN_MS = 60_000

/** How many logically expired entries a `set` purges on its way (keeps the indexes small without a sweeper). */
const PURGE_BATCH = 64

const HELPERS = `
local function extend(key, ttl)
  if redis.call("PTTL", key) < ttl then redis.call("PEXPIRE", key, ttl) end
end
local function nextUse(lru)
  local top = redis.call("ZRANGE", lru, -1, -1, "WITHSCORES")
  if top[2] then return tonumber(top[2]) + 1 end
  return 1
end
local function forget(prefix, lru, exp, member)
  redis.call("DEL", prefix .. member)
  redis.call("ZREM", lru, member)
  redis.call("ZREM", exp, member)
end
`

// KEYS: entry, lru, exp. ARGV: member, now, prefix.
const GET = script(`${HELPERS}
local entry = redis.call("HMGET", KEYS[1], "v", "x")
if not entry[1] or not entry[2] or tonumber(entry[2]) <= tonumber(ARGV[2]) then
  forget(ARGV[3], KEYS[2], KEYS[3], ARGV[1])
  return false
end
redis.call("ZADD", KEYS[2], nextUse(KEYS[2]), ARGV[1])
redis.call("ZADD", KEYS[3], entry[2], ARGV[1])
local ttl = redis.call("PTTL", KEYS[1])
if ttl > 0 then
  extend(KEYS[2], ttl)
  extend(KEYS[3], ttl)
end
return entry[1]
`)

// KEYS: entry, lru, exp. ARGV: member, value, expiresAt, now, redis ttl, capacity, prefix, purge batch.
const SET = script(`${HELPERS}
local member, prefix = ARGV[1], ARGV[7]
local now = tonumber(ARGV[4])
forget(prefix, KEYS[2], KEYS[3], member)
if tonumber(ARGV[3]) <= now then return 0 end
local expired = redis.call("ZRANGEBYSCORE", KEYS[3], "-inf", now, "LIMIT", 0, tonumber(ARGV[8]))
for _, old in ipairs(expired) do forget(prefix, KEYS[2], KEYS[3], old) end
local ttl = tonumber(ARGV[5])
redis.call("HSET", KEYS[1], "v", ARGV[2], "x", ARGV[3])
redis.call("PEXPIRE", KEYS[1], ttl)
redis.call("ZADD", KEYS[2], nextUse(KEYS[2]), member)
redis.call("ZADD", KEYS[3], ARGV[3], member)
extend(KEYS[2], ttl)
extend(KEYS[3], ttl)
local over = redis.call("ZCARD", KEYS[2]) - tonumber(ARGV[6])
if over > 0 then
  local victims = redis.call("ZPOPMIN", KEYS[2], over)
  for i = 1, #victims, 2 do
    redis.call("DEL", prefix .. victims[i])
    redis.call("ZREM", KEYS[3], victims[i])
  end
end
return 1
`)

// KEYS: entry, lru, exp. ARGV: member.
const DELETE = script(`
local deleted = redis.call("DEL", KEYS[1])
redis.call("ZREM", KEYS[2], ARGV[1])
redis.call("ZREM", KEYS[3], ARGV[1])
return deleted
`)

// KEYS: lru, exp. ARGV: prefix. Deletes the indexed entries (every entry this store wrote), then the indexes.
const CLEAR = script(`
for _, index in ipairs(KEYS) do
  local members = redis.call("ZRANGE", index, 0, -1)
  for i = 1, #members, 500 do
    local batch = {}
    for j = i, math.min(i + 499, #members) do batch[#batch + 1] = ARGV[1] .. members[j] end
    redis.call("DEL", unpack(batch))
  end
end
redis.call("DEL", KEYS[1], KEYS[2])
return 1
`)

// KEYS: lru, exp. ARGV: now, prefix. Drops the entries expired at now and counts the rest.
const SIZE = script(`
local expired = redis.call("ZRANGEBYSCORE", KEYS[2], "-inf", ARGV[1])
for _, member in ipairs(expired) do
  redis.call("DEL", ARGV[2] .. member)
  redis.call("ZREM", KEYS[1], member)
end
redis.call("ZREMRANGEBYSCORE", KEYS[2], "-inf", ARGV[1])
return redis.call("ZCARD", KEYS[2])
`)

/** The scripts, for tests and for preloading. */
export const scripts = { GET, SET, DELETE, CLEAR, SIZE } as const

const parse = (text: string): Option.Option<StoredResponse> => {
  try {
    const value: unknown = JSON.parse(text)
    // The cache engine decodes the value with the ChatResponse Schema and drops an entry that does not decode.
    return typeof value === "object" && value !== null ? Option.some(value as StoredResponse) : Option.none()
  } catch {
    return Option.none()
  }
}

const warn = (operation: string, outcome: string) => (error: RedisError) =>
  Effect.logWarning(`ResponseCacheStore (Redis): ${operation} failed; ${outcome}`).pipe(
    Effect.annotateLogs({ store: "ResponseCacheStore", operation, reason: error.reason })
  )

/**
 * The store over a RedisClient. A Redis failure never fails a call: a failed `get` is a miss, a failed `set`,
 * `delete` or `clear` does nothing, a failed `size` answers 0; each is logged as a warning (operation and driver
 * reason only, never a key or a value).
 */
export const make = (redis: RedisClient["Type"], capacity: number): Store => {
  const lru = `${redis.prefix}llm-cache-index:v1:lru`
  const exp = `${redis.prefix}llm-cache-index:v1:exp`
  const entry = (key: string) => `${redis.prefix}${key}`

  return {
    get: (key, now) =>
      redis.run(GET, [entry(key), lru, exp], [key, now, redis.prefix]).pipe(
        Effect.map((reply) => (typeof reply === "string" ? parse(reply) : Option.none())),
        Effect.catchAll((error) => Effect.as(warn("get", "treated as a miss")(error), Option.none()))
      ),
    set: (key, value, expiresAt, now) =>
      Effect.suspend(() => {
        const redisTtl = Math.max(1, Math.ceil(expiresAt - now)) + TTL_MARGIN_MS
        return redis.run(
          SET,
          [entry(key), lru, exp],
          [key, JSON.stringify(value), expiresAt, now, redisTtl, capacity, redis.prefix, PURGE_BATCH]
        )
      }).pipe(Effect.asVoid, Effect.catchAll(warn("set", "the entry was not stored"))),
    delete: (key) =>
      redis.run(DELETE, [entry(key), lru, exp], [key]).pipe(
        Effect.map((deleted) => deleted === 1),
        Effect.catchAll((error) => Effect.as(warn("delete", "the entry may remain until it expires")(error), false))
      ),
    clear: redis.run(CLEAR, [lru, exp], [redis.prefix]).pipe(
      Effect.asVoid,
      Effect.catchAll(warn("clear", "entries remain until they expire"))
    ),
    size: (now) =>
      redis.run(SIZE, [lru, exp], [now, redis.prefix]).pipe(
        Effect.map((count) => (typeof count === "number" ? count : 0)),
        Effect.catchAll((error) => Effect.as(warn("size", "answered 0")(error), 0))
      )
  }
}

/** The bound of {@link layerDefault}. */
export const DEFAULT_CAPACITY = 10_000

const LayerOptions = Schema.Struct({
  capacity: Schema.optionalWith(Schema.Int.pipe(Schema.greaterThanOrEqualTo(1)), { default: () => DEFAULT_CAPACITY })
}).annotations({ parseOptions: { onExcessProperty: "error" } })

/** The store over the `RedisClient` in context, bounded at `capacity` entries; bad options fail the layer. */
export const layer = (
  options: { readonly capacity?: number | undefined }
): Layer.Layer<ResponseCacheStore, InvalidOptions, RedisClient> =>
  Layer.effect(
    ResponseCacheStore,
    Effect.flatMap(decode(LayerOptions, "Redis.layerResponseCacheStoreWith", options), ({ capacity }) =>
      Effect.map(RedisClient, (redis) => make(redis, capacity)))
  )

/** The store over the `RedisClient` in context, bounded at {@link DEFAULT_CAPACITY} entries. */
export const layerDefault: Layer.Layer<ResponseCacheStore, never, RedisClient> = Layer.effect(
  ResponseCacheStore,
  Effect.map(RedisClient, (redis) => make(redis, DEFAULT_CAPACITY))
)
