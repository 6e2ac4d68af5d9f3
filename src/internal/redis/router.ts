/**
 * The Redis `RouterStore`: each method runs the SAME pure steps as the memory store (`internal/routerStore.ts`'s
 * `beginStep` / `settleStep`) in TypeScript, made atomic per key by an optimistic compare-and-set, as the Redis breaker
 * store does (its comment gives the reasons):
 *
 *   GET key → step(state, now) → one Lua script: "SET key next PX ttl if key still holds what was read"
 *
 * Within one process the steps on one key are combined (`makeCombiner`): while a round trip for a key is in flight
 * the steps that arrive for it wait, and the next round applies them all to one read and writes once, so a process
 * never conflicts with itself and a busy deployment costs one round trip per round, not one per call. Conflicts with
 * other processes re-read and re-apply the round after a tiny jittered pause, at most {@link MAX_ATTEMPTS} attempts. Every key has a TTL: the cooldown's end plus {@link IDLE_RETENTION_MS}, refreshed on
 * each write. Keys are `<prefix>router:<sha-256 of the router key>`: no deployment id in Redis.
 */
import { Effect, Layer, Random } from "effect"
import { createHash } from "node:crypto"
import { RouterStore, RouterStoreError, type Store } from "../../Router.js"
import { reasonOf, RedisClient, type RedisError } from "./client.js"
import { compareAndSetLua, makeCombiner } from "./compareAndSet.js"
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

/** The store over one RedisClient (its shared connection). */
export const make = (redis: RedisClient["Type"]): Store => {
  const fail = (operation: string, reason: string) => new RouterStoreError({ operation, reason })

  const get = (operation: string, key: string) =>
    Effect.tryPromise({ try: () => redis.client.get(key), catch: (error) => fail(operation, reasonOf(error)) })

  // Every call steps its deployment's key twice (begin, settle): one key behind every call of a busy deployment.
  // The steps of one process on a key are combined into one read and one compare-and-set per round.
  const combined = makeCombiner<DeploymentState, RouterStoreError>({
    read: (stored) => get("step", stored),
    parse,
    write: (stored, raw, next, now) =>
      redis.run(compareAndSetLua, [stored], [
        raw === null ? "0" : "1",
        raw ?? "",
        JSON.stringify(next),
        Math.max(0, next.cooldownUntil - now) + IDLE_RETENTION_MS
      ]).pipe(
        Effect.mapError((error: RedisError) => fail("step", error.reason)),
        Effect.map((reply) => reply === 1)
      ),
    failed: (error) => fail("step", reasonOf(error)),
    gaveUp: (attempts) => fail("step", `gave up after ${attempts} attempts conflicting with other writers`),
    maxAttempts: MAX_ATTEMPTS,
    // Conflicts come from other processes: pause 0 to 2^(n-2) ms (at most 8 ms) to fall out of step with them.
    pause: (n) => Effect.flatMap(Random.nextIntBetween(0, Math.min(8, 2 ** (n - 2)) + 1), (ms) => Effect.sleep(ms))
  })

  const step = <A>(
    operation: string,
    key: string,
    now: number,
    f: (state: DeploymentState) => readonly [A, DeploymentState]
  ): Effect.Effect<A, RouterStoreError> =>
    Effect.mapError(
      combined(redisKey(redis.prefix, key), now, f),
      (error) => (error.operation === "step" ? fail(operation, error.reason) : error)
    )

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

/** The store over the `RedisClient` in context. */
export const layer: Layer.Layer<RouterStore, never, RedisClient> = Layer.effect(RouterStore, Effect.map(RedisClient, make))
