/**
 * The Redis `RouterStore`: each method runs the SAME pure steps as the memory store (`internal/routerStore.ts`'s
 * `beginStep` / `settleStep`) in TypeScript, made atomic per key by an optimistic compare-and-set, as the Redis breaker
 * store does (its comment gives the reasons):
 *
 *   GET key → step(state, now) → one Lua script: "SET key next PX ttl if key still holds what was read"
 *
 * Within one process the steps on one key are serialized by a per-key mutex (read included), so a process never
 * conflicts with itself; conflicts with other processes are retried after a tiny jittered pause, at most
 * {@link MAX_ATTEMPTS} attempts. Every key has a TTL: the cooldown's end plus {@link IDLE_RETENTION_MS}, refreshed on
 * each write. Keys are `<prefix>router:<sha-256 of the router key>`: no deployment id in Redis.
 */
import { Effect, Random } from "effect"
import { createHash } from "node:crypto"
import type { RedisClient, RedisError } from "../../Redis.js"
import { RouterStoreError, type Store } from "../../Router.js"
import { compareAndSetLua } from "./circuitBreaker.js"
import { beginStep, type DeploymentState, emptyState, observeStep, rolled, settleStep } from "../routerStore.js"

/** Attempts of one write before giving up with a RouterStoreError. */
export const MAX_ATTEMPTS = 25

/** A key is kept this long after its last write (beyond its cooldown): a deployment idle that long starts afresh. */
export const IDLE_RETENTION_MS = 3_600_000

/** The Redis key of a router key. */
export const redisKey = (prefix: string, key: string): string =>
  `${prefix}router:${createHash("sha256").update(key).digest("base64url")}`

const fields: ReadonlyArray<keyof DeploymentState> = [
  "inFlight", "cooldownUntil", "latencyMs", "samples", "sampledAt", "failures", "windowStart", "requests", "tokens"
]

const parse = (raw: string | null): DeploymentState => {
  if (raw === null) return emptyState
  const value = JSON.parse(raw) as Record<string, unknown> | null
  if (typeof value !== "object" || value === null || !fields.every((f) => typeof value[f] === "number")) {
    throw new Error("the stored router state is not a router state")
  }
  return value as unknown as DeploymentState
}

const reasonOf = (error: unknown): string => {
  const text = error instanceof Error ? error.message : String(error)
  return text.replace(/rediss?:\/\/\S+/g, "redis://…")
}

/** A mutex per key, dropped when nobody holds or waits for it. */
const makeKeyLocks = () => {
  const locks = new Map<string, { readonly semaphore: Effect.Semaphore; users: number }>()
  return <A, E, R>(key: string, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.suspend(() => {
      let lock = locks.get(key)
      if (lock === undefined) {
        lock = { semaphore: Effect.unsafeMakeSemaphore(1), users: 0 }
        locks.set(key, lock)
      }
      const held = lock
      held.users += 1
      return held.semaphore.withPermits(1)(effect).pipe(
        Effect.ensuring(Effect.sync(() => {
          held.users -= 1
          if (held.users === 0) locks.delete(key)
        }))
      )
    })
}

/** The store over one RedisClient (its shared connection). */
export const make = (redis: RedisClient["Type"]): Store => {
  const withKeyLock = makeKeyLocks()
  const fail = (operation: string, reason: string) => new RouterStoreError({ operation, reason })

  const get = (operation: string, key: string) =>
    Effect.tryPromise({ try: () => redis.client.get(key), catch: (error) => fail(operation, reasonOf(error)) })

  const step = <A>(
    operation: string,
    key: string,
    now: number,
    f: (state: DeploymentState) => readonly [A, DeploymentState]
  ): Effect.Effect<A, RouterStoreError> => {
    const stored = redisKey(redis.prefix, key)
    const attempt = (n: number): Effect.Effect<A, RouterStoreError> =>
      Effect.flatMap(get(operation, stored), (raw) => {
        const decided = Effect.try({ try: () => f(parse(raw)), catch: (error) => fail(operation, reasonOf(error)) })
        return Effect.flatMap(decided, ([result, next]) => {
          const ttl = Math.max(0, next.cooldownUntil - now) + IDLE_RETENTION_MS
          // A write in flight is uninterruptible, so a step that changed the state reports its result.
          const write = Effect.uninterruptible(
            redis.run(compareAndSetLua, [stored], [raw === null ? "0" : "1", raw ?? "", JSON.stringify(next), ttl])
          ).pipe(Effect.mapError((error: RedisError) => fail(operation, error.reason)))
          return Effect.flatMap(write, (reply) => {
            if (reply === 1) return Effect.succeed(result)
            if (n >= MAX_ATTEMPTS) {
              return Effect.fail(fail(operation, `gave up after ${MAX_ATTEMPTS} attempts conflicting with other writers`))
            }
            const pause = Effect.flatMap(Random.nextIntBetween(0, Math.min(8, 2 ** (n - 1)) + 1), (ms) => Effect.sleep(ms))
            return Effect.zipRight(pause, attempt(n + 1))
          })
        })
      })
    return withKeyLock(stored, attempt(1))
  }

  return {
    read: (keys, now) =>
      Effect.tryPromise({
        try: () => (keys.length === 0 ? Promise.resolve([]) : redis.client.mget(...keys.map((k) => redisKey(redis.prefix, k)))),
        catch: (error) => fail("read", reasonOf(error))
      }).pipe(
        Effect.flatMap((raws) =>
          Effect.try({ try: () => raws.map((raw) => rolled(parse(raw), now)), catch: (error) => fail("read", reasonOf(error)) })
        )
      ),
    begin: (key, admission, now) => step("begin", key, now, (state) => beginStep(state, admission, now)),
    settle: (key, outcome, now) => step("settle", key, now, (state) => settleStep(state, outcome, now)),
    observe: (key, seen, now) => step("observe", key, now, (state) => observeStep(state, seen, now))
  }
}
