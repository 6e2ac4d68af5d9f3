/**
 * The Redis client service every Redis store is built on: one `ioredis` connection, the key prefix, driver calls as
 * Effects failing with `RedisError`, and the one `Script` helper (a Lua script run with EVALSHA, EVAL when the server
 * does not know it yet). The stores under `internal/redis/<pattern>.ts` import this module and nothing else of the
 * Redis subpath; `Redis.ts` composes them and holds the public docs.
 */
import { createHash } from "node:crypto"
import { Config, type ConfigError, Context, Effect, Layer, Option, Redacted, Runtime, Schema } from "effect"
import { Redis as IORedis, type RedisOptions } from "ioredis"

/** A Redis command failed; `reason` is the driver's message without the connection URL. */
export class RedisError extends Schema.TaggedError<RedisError>("effect-llm-resilience/RedisError")("RedisError", {
  operation: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `Redis ${this.operation} failed: ${this.reason}`
  }
}

/** A Lua script and its SHA-1 (EVALSHA). */
export interface Script {
  readonly source: string
  readonly sha1: string
}

/** The one constructor of a {@link Script}: every store defines its scripts with it. */
export const script = (source: string): Script => ({
  source,
  sha1: createHash("sha1").update(source).digest("hex")
})

/** The service: the connection, the key prefix and the driver calls as Effects. */
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

/** A driver error's message, without any connection URL (it may carry a password). */
export const reasonOf = (error: unknown): string => {
  const text = error instanceof Error ? error.message : String(error)
  // never echo a connection URL (it may carry a password)
  return text.replace(/rediss?:\/\/\S+/g, "redis://…")
}

/** The service over an existing connection (the caller keeps ownership of it). */
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

/** Options of {@link layer}: any `ioredis` option, plus `url` and the key `prefix`. */
export interface Options extends RedisOptions {
  readonly url?: string | Redacted.Redacted<string> | undefined
  readonly prefix?: string | undefined
}

const QUIT_TIMEOUT = "1 second"

/** One connection for the layer's lifetime: checked with PING at build, closed with QUIT (a second at most). */
export const layer = (options: Options = {}): Layer.Layer<RedisClient, RedisError> =>
  Layer.scoped(
    RedisClient,
    Effect.gen(function* () {
      const { prefix, url, ...rest } = options
      const client = yield* Effect.acquireRelease(
        Effect.sync(() => {
          // A stalled (not closed) server must not stall every call: commands give up after 2 s unless told otherwise.
          const redisOptions: RedisOptions = {
            maxRetriesPerRequest: 1,
            enableOfflineQueue: true,
            commandTimeout: 2_000,
            ...rest
          }
          return url === undefined
            ? new IORedis(redisOptions)
            : new IORedis(Redacted.isRedacted(url) ? Redacted.value(url) : url, redisOptions)
        }),
        // QUIT waits for the server's reply: a server that stopped answering gets a second, then the socket is closed.
        // (A release runs uninterruptibly: the wait is made interruptible so that the timeout can end it.)
        (client) =>
          Effect.interruptible(Effect.promise(() => client.quit().then(() => true, () => false))).pipe(
            Effect.timeoutOption(QUIT_TIMEOUT),
            Effect.flatMap((quit) => Option.isSome(quit) && quit.value ? Effect.void : Effect.sync(() => client.disconnect()))
          )
      )
      // One warning per outage through the Effect logger (ioredis would print every reconnection error to stderr).
      const runtime = yield* Effect.runtime<never>()
      let down = false
      client.on("error", (error: unknown) => {
        if (down) return
        down = true
        Runtime.runFork(runtime)(
          Effect.logWarning("Redis connection failed; commands fail until it reconnects").pipe(
            Effect.annotateLogs({ reason: reasonOf(error) })
          )
        )
      })
      client.on("ready", () => {
        down = false
      })
      const service = fromClient(client, prefix ?? "llm:")
      yield* service.use("PING", (c) => c.ping())
      return service
    })
  )

/** {@link layer} from `REDIS_URL` and `REDIS_PREFIX`. */
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
