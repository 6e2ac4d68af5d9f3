/**
 * Redis backends for the stores that must be shared across processes (subpath `effect-llm-resilience/Redis`; the
 * core never loads `ioredis`).
 *
 * `RedisClient` holds one `ioredis` connection, a key prefix and a script runner; every store method is one atomic
 * step (one Lua script, `now` passed in from the Effect clock, every key with a TTL), so N replicas share one
 * breaker, one budget, one cache and one idempotency record per key.
 *
 * @since 0.1.0
 */
import { createHash } from "node:crypto"
import { Config, type ConfigError, Context, Effect, Layer, Option, Redacted, Schema } from "effect"
import { Redis as IORedis, type RedisOptions } from "ioredis"

/**
 * A Redis command failed (connection refused, timeout, script error). `reason` is the driver's message without the
 * connection URL (which may hold a password).
 *
 * @example
 * ```ts
 * import * as Redis from "effect-llm-resilience/Redis"
 * const error = new Redis.RedisError({ operation: "EVALSHA", reason: "Connection is closed." })
 * ```
 * @since 0.1.0
 * @category Errors
 */
export class RedisError extends Schema.TaggedError<RedisError>("effect-llm-resilience/RedisError")("RedisError", {
  operation: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `Redis ${this.operation} failed: ${this.reason}`
  }
}

/**
 * A Lua script, loaded once per connection and run with EVALSHA (EVAL when the server does not know it yet).
 *
 * @example
 * ```ts
 * import * as Redis from "effect-llm-resilience/Redis"
 * const incr = Redis.script(`return redis.call("INCRBY", KEYS[1], ARGV[1])`)
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Script {
  readonly source: string
  readonly sha1: string
}

/**
 * Defines a Lua script.
 *
 * @example
 * ```ts
 * import * as Redis from "effect-llm-resilience/Redis"
 * const get = Redis.script(`return redis.call("GET", KEYS[1])`)
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const script = (source: string): Script => ({
  source,
  sha1: createHash("sha1").update(source).digest("hex")
})

/**
 * The service: the connection, the key prefix every store puts before its keys, and helpers that turn driver
 * promises into Effects failing with {@link RedisError}.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as Redis from "effect-llm-resilience/Redis"
 * const ping = Effect.flatMap(Redis.RedisClient, (redis) => redis.use("PING", (client) => client.ping()))
 * ```
 * @since 0.1.0
 * @category Tags
 */
export class RedisClient extends Context.Tag("effect-llm-resilience/RedisClient")<
  RedisClient,
  {
    readonly client: IORedis
    /** Put before every key a store writes (e.g. "llm:"). */
    readonly prefix: string
    /** Runs a driver call; a rejection becomes a RedisError naming `operation`. */
    readonly use: <A>(operation: string, f: (client: IORedis) => Promise<A>) => Effect.Effect<A, RedisError>
    /** Runs a script atomically with `keys` and `args`. */
    readonly run: (
      script: Script,
      keys: ReadonlyArray<string>,
      args: ReadonlyArray<string | number>
    ) => Effect.Effect<unknown, RedisError>
  }
>() {}

const reasonOf = (error: unknown): string => {
  const text = error instanceof Error ? error.message : String(error)
  // never echo a connection URL (it may carry a password)
  return text.replace(/rediss?:\/\/\S+/g, "redis://…")
}

/**
 * Builds the service over an existing connection (you keep ownership of it).
 *
 * @example
 * ```ts
 * import { Redis as IORedis } from "ioredis"
 * import * as Redis from "effect-llm-resilience/Redis"
 * const service = Redis.fromClient(new IORedis("redis://127.0.0.1:6379"), "llm:")
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const fromClient = (client: IORedis, prefix = "llm:"): RedisClient["Type"] => {
  const use = <A>(operation: string, f: (client: IORedis) => Promise<A>): Effect.Effect<A, RedisError> =>
    Effect.tryPromise({
      try: () => f(client),
      catch: (error) => new RedisError({ operation, reason: reasonOf(error) })
    })
  const run = (s: Script, keys: ReadonlyArray<string>, args: ReadonlyArray<string | number>) =>
    Effect.tryPromise({
      try: async () => {
        try {
          return await client.evalsha(s.sha1, keys.length, ...keys, ...args)
        } catch (error) {
          if (error instanceof Error && error.message.includes("NOSCRIPT")) {
            return await client.eval(s.source, keys.length, ...keys, ...args)
          }
          throw error
        }
      },
      catch: (error) => new RedisError({ operation: "EVALSHA", reason: reasonOf(error) })
    })
  return { client, prefix, use, run }
}

/**
 * Options of {@link layer}: any `ioredis` option, plus `url` and the key `prefix` (defaults to "llm:").
 *
 * @example
 * ```ts
 * import * as Redis from "effect-llm-resilience/Redis"
 * const options: Redis.Options = { url: "redis://127.0.0.1:6379", prefix: "myapp:llm:" }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Options extends RedisOptions {
  readonly url?: string | Redacted.Redacted<string> | undefined
  readonly prefix?: string | undefined
}

/**
 * A layer holding one connection for its lifetime (closed with QUIT when the layer is released). The connection is
 * checked with PING when the layer is built, so a missing server fails at start-up, not at the first call.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { CircuitBreaker } from "effect-llm-resilience"
 * import * as Redis from "effect-llm-resilience/Redis"
 * const Stores = Redis.layerCircuitBreakerStore.pipe(Layer.provide(Redis.layer({ url: "redis://127.0.0.1:6379" })))
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layer = (options: Options = {}): Layer.Layer<RedisClient, RedisError> =>
  Layer.scoped(
    RedisClient,
    Effect.gen(function* () {
      const { prefix, url, ...rest } = options
      const client = yield* Effect.acquireRelease(
        Effect.sync(() => {
          const redisOptions: RedisOptions = { maxRetriesPerRequest: 1, enableOfflineQueue: true, ...rest }
          return url === undefined
            ? new IORedis(redisOptions)
            : new IORedis(Redacted.isRedacted(url) ? Redacted.value(url) : url, redisOptions)
        }),
        (client) => Effect.promise(() => client.quit().catch(() => client.disconnect()))
      )
      const service = fromClient(client, prefix ?? "llm:")
      yield* service.use("PING", (c) => c.ping())
      return service
    })
  )

/**
 * {@link layer} configured by `REDIS_URL` (redacted; defaults to `redis://127.0.0.1:6379`) and `REDIS_PREFIX`
 * (defaults to "llm:").
 *
 * @example
 * ```ts
 * import * as Redis from "effect-llm-resilience/Redis"
 * const Client = Redis.layerConfig()
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layerConfig = (): Layer.Layer<RedisClient, RedisError | ConfigError.ConfigError> =>
  Layer.unwrapEffect(
    Effect.map(
      Config.all({
        url: Config.option(Config.redacted("REDIS_URL")),
        prefix: Config.option(Config.string("REDIS_PREFIX"))
      }),
      ({ prefix, url }) =>
        layer({
          url: Option.getOrElse(url, () => Redacted.make("redis://127.0.0.1:6379")),
          prefix: Option.getOrUndefined(prefix)
        })
    )
  )
