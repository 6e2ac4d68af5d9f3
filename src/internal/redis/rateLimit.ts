/**
 * The Redis `RateLimiterStore`: the token-bucket and fixed-window algorithms of the memory store
 * (`internal/rateLimitStore.ts`), each method one Lua script, so every process sharing the Redis sees one limit.
 *
 * - `now` comes from the Effect clock of the caller (never Redis TIME): the logical state (refills, window ends)
 *   is decided from stored `now`-based timestamps only.
 * - Every key gets a TTL of at least its logical lifetime (until the bucket has refilled completely, or until the
 *   window ends) plus {@link TTL_MARGIN_MS}; a bucket that is full holds nothing a fresh key would not, so it is
 *   deleted at once, like the memory store forgets it.
 * - The limiter key (which may name a user: `llm:rpm:user:<id>`) is hashed, so no user id is ever written to Redis.
 * - Numbers cross the Lua boundary as strings in `%.17g` (refill rates are fractional milliseconds; Lua's own
 *   number → string conversion keeps 14 digits and a Redis integer reply truncates).
 */
import * as RateLimiter from "@effect/experimental/RateLimiter"
import { Clock, Duration, Effect, Layer } from "effect"
import { createHash } from "node:crypto"
import { RedisClient, type RedisError, script } from "./client.js"

/** Added to every TTL: covers clock skew between the processes (whose clocks give `now`) and Redis. */
export const TTL_MARGIN_MS = 60_000

/** The Redis key of a limiter key: `<prefix>ratelimit:<sha-256 of the key, base64url>`. */
export const redisKey = (prefix: string, key: string): string =>
  `${prefix}ratelimit:${createHash("sha256").update(key).digest("base64url")}`

const common = `
local function fmt(n) return string.format("%.17g", n) end
local function expireIn(ms) redis.call("PEXPIRE", KEYS[1], string.format("%d", math.max(1, math.ceil(ms)))) end
`

/**
 * KEYS[1] the bucket (hash: tokens, lastRefill). ARGV: now, tokens, limit, refill interval (ms), allowOverflow (1/0),
 * TTL margin (ms). Returns the token count after taking `tokens` (negative when they did not fit).
 */
export const tokenBucketLua = script(`${common}
local now = tonumber(ARGV[1])
local take = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local refill = tonumber(ARGV[4])
local overflow = ARGV[5] == "1"
local margin = tonumber(ARGV[6])
local stored = redis.call("HMGET", KEYS[1], "tokens", "lastRefill")
local tokens = tonumber(stored[1])
local last = tonumber(stored[2])
if tokens == nil or last == nil then
  tokens = limit
  last = now
else
  local added = math.floor((now - last) / refill)
  if added > 0 then
    tokens = math.min(limit, tokens + added)
    last = last + added * refill
  end
end
local after = tokens - take
-- negative tokens give tokens back; a bucket never holds more than its limit
if overflow or after >= 0 then tokens = math.min(limit, after) end
if tokens >= limit then
  redis.call("DEL", KEYS[1])
else
  redis.call("HSET", KEYS[1], "tokens", fmt(tokens), "lastRefill", fmt(last))
  -- full again (and so forgettable) once (limit - tokens) intervals have passed since the last refill
  expireIn(last + (limit - tokens) * refill - now + margin)
end
return fmt(after)
`)

/**
 * KEYS[1] the counter (hash: count, expiresAt). ARGV: now, tokens, refill interval (ms), limit ("" for none), TTL
 * margin (ms). Returns { count, ms until the window ends }; over the limit nothing is written.
 */
export const fixedWindowLua = script(`${common}
local now = tonumber(ARGV[1])
local take = tonumber(ARGV[2])
local refill = tonumber(ARGV[3])
local limit = tonumber(ARGV[4])
local margin = tonumber(ARGV[5])
local stored = redis.call("HMGET", KEYS[1], "count", "expiresAt")
local count = tonumber(stored[1])
local expiresAt = tonumber(stored[2])
if count == nil or expiresAt == nil or expiresAt <= now then
  count = 0
  expiresAt = now
end
if limit ~= nil and count + take > limit then
  return { fmt(count + take), fmt(expiresAt - now) }
end
count = count + take
expiresAt = expiresAt + refill * take
if expiresAt <= now then
  redis.call("DEL", KEYS[1])
else
  redis.call("HSET", KEYS[1], "count", fmt(count), "expiresAt", fmt(expiresAt))
  expireIn(expiresAt - now + margin)
end
return { fmt(count), fmt(expiresAt - now) }
`)

const storeError = (method: string) => (error: RedisError) =>
  new RateLimiter.RateLimitStoreError({
    message: `Redis rate limiter store: ${method} failed (${error.message})`,
    cause: error
  })

const malformed = (method: string, reply: unknown) =>
  new RateLimiter.RateLimitStoreError({
    message: `Redis rate limiter store: ${method} got an unexpected reply of type ${typeof reply}`
  })

/** The store over one RedisClient. A Redis failure is a `RateLimitStoreError` (message without the key). */
export const make = (redis: RedisClient["Type"]): RateLimiter.RateLimiterStore["Type"] =>
  RateLimiter.RateLimiterStore.of({
    tokenBucket: (options) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        redis.run(tokenBucketLua, [redisKey(redis.prefix, options.key)], [
          now,
          options.tokens,
          options.limit,
          Duration.toMillis(options.refillRate),
          options.allowOverflow ? 1 : 0,
          TTL_MARGIN_MS
        ]).pipe(
          Effect.mapError(storeError("tokenBucket")),
          Effect.flatMap((reply) => {
            const remaining = typeof reply === "string" ? Number(reply) : Number.NaN
            return Number.isFinite(remaining) ? Effect.succeed(remaining) : Effect.fail(malformed("tokenBucket", reply))
          })
        )),
    fixedWindow: (options) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        redis.run(fixedWindowLua, [redisKey(redis.prefix, options.key)], [
          now,
          options.tokens,
          Duration.toMillis(options.refillRate),
          options.limit === undefined ? "" : options.limit,
          TTL_MARGIN_MS
        ]).pipe(
          Effect.mapError(storeError("fixedWindow")),
          Effect.flatMap((reply) => {
            if (Array.isArray(reply) && reply.length === 2) {
              const count = Number(reply[0])
              const ttl = Number(reply[1])
              if (Number.isFinite(count) && Number.isFinite(ttl)) return Effect.succeed([count, ttl] as const)
            }
            return Effect.fail(malformed("fixedWindow", reply))
          })
        ))
  })

/** The store over the `RedisClient` in context. */
export const layer: Layer.Layer<RateLimiter.RateLimiterStore, never, RedisClient> = Layer.effect(
  RateLimiter.RateLimiterStore,
  Effect.map(RedisClient, make)
)
