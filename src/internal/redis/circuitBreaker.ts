/**
 * The Redis `CircuitBreakerStore`: each method runs the SAME pure state machine as the memory store
 * (`internal/breaker.ts`'s `decide`) in TypeScript, made atomic per key by an optimistic compare-and-set:
 *
 *   GET key → decide(state, now, event) → one Lua script: "SET key next PX ttl if key still holds what was read"
 *
 * Why not the whole step in Lua (as the other stores): `decide` is a subtle state machine (generations, windows,
 * probes, backoff) with exhaustive tests; a Lua port would be a second implementation to keep in step with it forever.
 * The price is a second round trip for a step that changes the state, and retries when processes write one key at
 * once.
 *
 * - Steps that change nothing (a closed circuit admitting; a success with nothing to count; every rejection) are
 *   answered from the one GET: a read is atomic by itself. Only a step whose `decide` returns a new state writes.
 * - The write is one script that compares the stored value with the value the decision was made on (byte for byte;
 *   "absent" for a key that did not exist) and only then sets it. `decide` is a pure function of that value, so a write
 *   that lands is exactly the step the memory store would have taken at that moment. No WATCH: a WATCH lives on a
 *   connection and is silently lost when ioredis reconnects between the WATCH and the EXEC (the EXEC then applies a
 *   decision made on a stale state), and it would need dedicated connections. The script needs neither.
 * - Within one process, writes to one key are serialized by a per-key mutex, so a process never conflicts with
 *   itself beyond one re-read: fifty concurrent callers on one key queue instead of invalidating each other's
 *   writes. Conflicts with other processes are retried after a tiny jittered pause (Effect `Random`, Effect clock),
 *   at most {@link MAX_ATTEMPTS} attempts, then the step fails with `CircuitBreakerStoreError` (the breaker then fails
 *   open, as for any store failure).
 * - A write (the script in flight) is uninterruptible, so a step that changed the state reports its result.
 */
import { Effect, Layer, Random } from "effect"
import { createHash } from "node:crypto"
import { CircuitBreakerStore, CircuitBreakerStoreError, type Store } from "../../CircuitBreaker.js"
import { reasonOf, RedisClient, type RedisError } from "./client.js"
import { compareAndSetLua, makeKeyLocks } from "./compareAndSet.js"
import * as breaker from "../breaker.js"

export { compareAndSetLua } from "./compareAndSet.js"

/** Attempts of one write before giving up with a CircuitBreakerStoreError. */
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

const parse = (raw: string | null): breaker.State => {
  if (raw === null) return breaker.initial
  const state = JSON.parse(raw) as breaker.State | null
  if (typeof state !== "object" || state === null || typeof state.phase !== "string") {
    throw new Error("the stored breaker state is not a breaker state")
  }
  return state
}

/** The decision on one read: the result, and the next state when it differs from the one read. */
interface Decision<A> {
  readonly raw: string | null
  readonly result: A
  readonly next: breaker.State | undefined
}

/** The store over one RedisClient (its shared connection: no connection of its own). */
export const make = (redis: RedisClient["Type"]): Store => {
  const withKeyLock = makeKeyLocks()
  const fail = (operation: Operation, reason: string) => new CircuitBreakerStoreError({ operation, reason })

  const step = <E extends breaker.Event>(
    operation: Operation,
    key: string,
    now: number,
    event: E
  ): Effect.Effect<breaker.Result<E>, CircuitBreakerStoreError> => {
    const stored = redisKey(redis.prefix, key)
    const read: Effect.Effect<Decision<breaker.Result<E>>, CircuitBreakerStoreError> = Effect.tryPromise({
      try: async () => {
        const raw = await redis.client.get(stored)
        const current = parse(raw)
        const [result, next] = breaker.decide(current, now, event)
        return { raw, result, next: next === current ? undefined : next }
      },
      catch: (error) => fail(operation, reasonOf(error))
    })
    const write = (raw: string | null, next: breaker.State): Effect.Effect<boolean, CircuitBreakerStoreError> =>
      Effect.uninterruptible(
        redis.run(compareAndSetLua, [stored], [
          raw === null ? "0" : "1",
          raw ?? "",
          JSON.stringify(next),
          ttlMs(next, now, event.config)
        ])
      ).pipe(
        Effect.mapError((error: RedisError) => fail(operation, error.reason)),
        Effect.map((reply) => reply === 1)
      )
    const attempt = (
      decision: Decision<breaker.Result<E>>,
      n: number
    ): Effect.Effect<breaker.Result<E>, CircuitBreakerStoreError> => {
      if (decision.next === undefined) return Effect.succeed(decision.result)
      return Effect.flatMap(write(decision.raw, decision.next), (written) => {
        if (written) return Effect.succeed(decision.result)
        if (n >= MAX_ATTEMPTS) {
          return Effect.fail(fail(operation, `gave up after ${MAX_ATTEMPTS} attempts conflicting with other writers`))
        }
        // The first conflict is most likely a writer of this process that held the key's lock: read again at once.
        // Later ones come from other processes: pause 0 to 2^(n-2) ms (at most 8 ms) to fall out of step with them.
        const pause = n === 1
          ? Effect.void
          : Effect.flatMap(Random.nextIntBetween(0, Math.min(8, 2 ** (n - 2)) + 1), (ms) => Effect.sleep(ms))
        return pause.pipe(Effect.zipRight(read), Effect.flatMap((next) => attempt(next, n + 1)))
      })
    }
    return Effect.flatMap(read, (decision) =>
      decision.next === undefined ? Effect.succeed(decision.result) : withKeyLock(stored, attempt(decision, 1)))
  }

  return {
    admit: (key, now, config) => step("admit", key, now, { _tag: "Admit", config }),
    record: (key, now, config, ticket, outcome) => step("record", key, now, { _tag: "Record", config, ticket, outcome }),
    observe: (key, now, config) => step("observe", key, now, { _tag: "Observe", config }),
    isolate: (key, now, config) => step("isolate", key, now, { _tag: "Isolate", config }),
    reset: (key, now, config) => step("reset", key, now, { _tag: "Reset", config })
  }
}

/** The store over the `RedisClient` in context. */
export const layer: Layer.Layer<CircuitBreakerStore, never, RedisClient> = Layer.effect(
  CircuitBreakerStore,
  Effect.map(RedisClient, make)
)
