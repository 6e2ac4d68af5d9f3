/**
 * The Redis BatchJobStore: one string key per job, `P<prefix>batch-job:<SHA-256 of the key>` holding the record as
 * JSON, with a TTL (30 days by default: the life of the batch's files at OpenAI). `claim` is one script (set if
 * absent, return what holds). A Redis failure, or a record that does not decode, is a defect: a job must not submit a second batch because it could not
 * read whether it submitted one.
 */
import { createHash } from "node:crypto"
import { Duration, Effect, Layer, Option, Schema } from "effect"
import { RedisClient, script } from "./client.js"
import { BatchJobStore, JobRecord } from "../batchJobStore.js"

// KEYS: record. ARGV: record JSON, ttl ms.
const CLAIM = script(`
local held = redis.call("GET", KEYS[1])
if held then return held end
redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
return ARGV[1]
`)

/** The scripts, for tests and for preloading. */
export const scripts = { CLAIM } as const

/** How long a record is kept when no TTL is given. */
export const defaultTtl = Duration.days(30)

const decode = Schema.decodeUnknownOption(Schema.parseJson(JobRecord))

// A record that does not decode (another version wrote it) is a defect, never "no record": that would submit again.
const decoded = (text: string): Effect.Effect<JobRecord> =>
  Option.match(decode(text), {
    onNone: () => Effect.dieMessage("BatchJobStore (Redis): the stored record does not decode"),
    onSome: Effect.succeed
  })

/** The store over a RedisClient; records expire after `ttl`. */
export const make = (redis: RedisClient["Type"], ttl: Duration.Duration = defaultTtl): BatchJobStore["Type"] => {
  const keyOf = (key: string) => `${redis.prefix}batch-job:${createHash("sha256").update(key).digest("hex")}`
  const ttlMs = Math.max(1, Math.ceil(Duration.toMillis(ttl)))
  return {
    get: (key) =>
      redis.use("batchJob.get", (client) => client.get(keyOf(key))).pipe(
        Effect.orDie,
        Effect.flatMap((text) => (text === null ? Effect.succeed(Option.none()) : Effect.map(decoded(text), Option.some)))
      ),
    claim: (key, record) =>
      redis.run(CLAIM, [keyOf(key)], [JSON.stringify(record), ttlMs]).pipe(
        Effect.orDie,
        Effect.flatMap((reply) => decoded(typeof reply === "string" ? reply : ""))
      )
  }
}

/** The store over the `RedisClient` in context; records expire after `ttl` (defaults to {@link defaultTtl}). */
export const layer = (ttl?: Duration.DurationInput): Layer.Layer<BatchJobStore, never, RedisClient> =>
  Layer.effect(BatchJobStore, Effect.map(RedisClient, (redis) => make(redis, ttl === undefined ? undefined : Duration.decode(ttl))))
