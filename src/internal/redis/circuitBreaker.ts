/**
 * The Redis `CircuitBreakerStore`: each method runs the SAME pure state machine as the memory store
 * (`internal/breaker.ts`'s `decide`) in TypeScript, made atomic per key by an optimistic transaction:
 *
 *   WATCH key + GET key → decide(state, now, event) → MULTI · SET key json PX ttl · EXEC (null: a conflict, retry)
 *
 * Why not Lua (as the other stores): `decide` is a subtle state machine (generations, windows, probes, backoff) with
 * exhaustive tests; a Lua port would be a second implementation to keep in step with it forever. The price is up to
 * three round trips for a step that changes the state, and retries when processes write one key at once.
 *
 * - Steps that change nothing (a closed circuit admitting; a success with nothing to count; every rejection) are
 *   answered from one plain GET on the shared connection: a read is atomic by itself. Only a step whose `decide`
 *   returns a new state takes the transaction.
 * - WATCH state belongs to a connection, and any EXEC or UNWATCH on it (another fiber's, another store's, the
 *   application's) would silently drop our watch. So transactions run on a small pool of dedicated connections
 *   (`client.duplicate()`), each used by one transaction at a time, and never on the shared connection.
 * - Within one process, transactions on one key are serialized by a per-key mutex: a process never conflicts with
 *   itself (fifty concurrent callers on one key queue instead of aborting each other's EXEC), and keys do not wait
 *   for each other beyond the pool size. Conflicts therefore only come from other processes; each is retried after a
 *   tiny jittered pause (Effect `Random`, Effect clock), at most {@link MAX_ATTEMPTS} attempts, then the step fails
 *   with `CircuitBreakerStoreError` (the breaker then fails open, as for any store failure).
 * - A transaction attempt (commands in flight on a pooled connection) is uninterruptible, so a connection never goes
 *   back to the pool with a WATCH or a MULTI of ours still pending.
 */
import { Effect, Pool, Random, type Scope } from "effect"
import type { Redis as IORedis } from "ioredis"
import { createHash } from "node:crypto"
import { CircuitBreakerStoreError, type Store } from "../../CircuitBreaker.js"
import type { RedisClient } from "../../Redis.js"
import * as breaker from "../breaker.js"

/** Dedicated connections for WATCH transactions (per store layer). */
export const POOL_SIZE = 4

/** Attempts of one transaction before giving up with a CircuitBreakerStoreError. */
export const MAX_ATTEMPTS = 25

/** A key is kept this long after its last change, beyond every deadline its state holds (a break, a probe). */
export const IDLE_RETENTION_MS = 24 * 3_600_000

/** An isolated key is kept this long after its last change (isolation is meant to hold until `reset`). */
export const ISOLATED_RETENTION_MS = 30 * 24 * 3_600_000

/** The Redis key of a breaker key: `<prefix>breaker:<sha-256 of the key, base64url>`. */
export const redisKey = (prefix: string, key: string): string =>
  `${prefix}breaker:${createHash("sha256").update(key).digest("base64url")}`

/**
 * The TTL of a state written at `now`: at least its logical life (an open break, an outstanding probe's timeout, a
 * time window's span), plus the idle retention.
 */
export const ttlMs = (state: breaker.State, now: number, config: breaker.Config): number => {
  if (state.phase === "isolated") return ISOLATED_RETENTION_MS
  const windowMs = config.window?.kind === "time" ? config.window.durationMs : 0
  const probeDeadline = state.probesAdmitted > state.probeSuccesses ? state.lastProbeAt + config.probeTimeoutMs : 0
  const until = Math.max(now, state.openUntil, probeDeadline) + windowMs
  return Math.ceil(until - now) + IDLE_RETENTION_MS
}

type Operation = "admit" | "record" | "observe" | "isolate" | "reset"

const reasonOf = (error: unknown): string => {
  const text = error instanceof Error ? error.message : String(error)
  return text.replace(/rediss?:\/\/\S+/g, "redis://…")
}

const parse = (raw: string | null): breaker.State => {
  if (raw === null) return breaker.initial
  const state = JSON.parse(raw) as breaker.State | null
  if (typeof state !== "object" || state === null || typeof state.phase !== "string") {
    throw new Error("the stored breaker state is not a breaker state")
  }
  return state
}

type Attempt<A> = { readonly _tag: "Done"; readonly result: A } | { readonly _tag: "Conflict" }

/** One optimistic attempt on a dedicated connection. */
const attempt = async <E extends breaker.Event>(
  connection: IORedis,
  key: string,
  now: number,
  event: E
): Promise<Attempt<breaker.Result<E>>> => {
  try {
    // Sent back to back on the connection: one round trip.
    const [, raw] = await Promise.all([connection.watch(key), connection.get(key)])
    const current = parse(raw)
    const [result, next] = breaker.decide(current, now, event)
    if (next === current) {
      await connection.unwatch()
      return { _tag: "Done", result }
    }
    const replies = await connection.multi().set(key, JSON.stringify(next), "PX", ttlMs(next, now, event.config)).exec()
    if (replies === null) return { _tag: "Conflict" }
    const failed = replies.find(([error]) => error !== null)
    if (failed !== undefined) throw failed[0]
    return { _tag: "Done", result }
  } catch (error) {
    await connection.unwatch().catch(() => undefined)
    throw error
  }
}

/** A mutex per key, dropped when nobody holds or waits for it. */
const makeKeyLocks = () => {
  const locks = new Map<string, { readonly semaphore: Effect.Semaphore; users: number }>()
  return <A, E, R>(key: string, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.uninterruptibleMask((restore) =>
      Effect.suspend(() => {
        let lock = locks.get(key)
        if (lock === undefined) {
          lock = { semaphore: Effect.unsafeMakeSemaphore(1), users: 0 }
          locks.set(key, lock)
        }
        const held = lock
        held.users += 1
        return restore(held.semaphore.withPermits(1)(effect)).pipe(
          Effect.ensuring(Effect.sync(() => {
            held.users -= 1
            if (held.users === 0) locks.delete(key)
          }))
        )
      })
    )
}

/** The store over one RedisClient; its dedicated connections live as long as `Scope`. */
export const make = (redis: RedisClient["Type"]): Effect.Effect<Store, never, Scope.Scope> =>
  Effect.gen(function* () {
    const pool = yield* Pool.make({
      acquire: Effect.acquireRelease(
        Effect.sync(() => redis.client.duplicate()),
        (connection) => Effect.promise(() => connection.quit().then(() => undefined, () => connection.disconnect()))
      ),
      size: POOL_SIZE
    })
    const withKeyLock = makeKeyLocks()
    const fail = (operation: Operation, reason: string) => new CircuitBreakerStoreError({ operation, reason })

    const transaction = <E extends breaker.Event>(
      operation: Operation,
      key: string,
      now: number,
      event: E
    ): Effect.Effect<breaker.Result<E>, CircuitBreakerStoreError> => {
      const loop = (connection: IORedis, n: number): Effect.Effect<breaker.Result<E>, CircuitBreakerStoreError> =>
        Effect.uninterruptible(Effect.tryPromise({
          try: () => attempt(connection, key, now, event),
          catch: (error) => fail(operation, reasonOf(error))
        })).pipe(Effect.flatMap((outcome) => {
          if (outcome._tag === "Done") return Effect.succeed(outcome.result)
          if (n >= MAX_ATTEMPTS) {
            return Effect.fail(fail(operation, `gave up after ${MAX_ATTEMPTS} attempts conflicting with other writers`))
          }
          // 0 to 2^(n-1) ms, at most 8 ms: enough to fall out of step with the other writer
          return Effect.flatMap(Random.nextIntBetween(0, Math.min(8, 2 ** (n - 1)) + 1), (pause) =>
            Effect.zipRight(Effect.sleep(pause), loop(connection, n + 1)))
        }))
      return withKeyLock(key, Effect.scoped(Effect.flatMap(Pool.get(pool), (connection) => loop(connection, 1))))
    }

    const step = <E extends breaker.Event>(
      operation: Operation,
      key: string,
      now: number,
      event: E
    ): Effect.Effect<breaker.Result<E>, CircuitBreakerStoreError> => {
      const stored = redisKey(redis.prefix, key)
      return Effect.tryPromise({
        try: async () => {
          const current = parse(await redis.client.get(stored))
          const [result, next] = breaker.decide(current, now, event)
          return next === current ? { changed: false as const, result } : { changed: true as const }
        },
        catch: (error) => fail(operation, reasonOf(error))
      }).pipe(Effect.flatMap((read) => read.changed ? transaction(operation, stored, now, event) : Effect.succeed(read.result)))
    }

    return {
      admit: (key, now, config) => step("admit", key, now, { _tag: "Admit", config }),
      record: (key, now, config, ticket, outcome) =>
        step("record", key, now, { _tag: "Record", config, ticket, outcome }),
      observe: (key, now, config) => step("observe", key, now, { _tag: "Observe", config }),
      isolate: (key, now, config) => step("isolate", key, now, { _tag: "Isolate", config }),
      reset: (key, now, config) => step("reset", key, now, { _tag: "Reset", config })
    }
  })
