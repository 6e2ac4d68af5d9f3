/**
 * The optimistic write of the stores that keep one JSON state per key and step it with a pure function in the
 * process (the breaker, the router): read the key, decide, then write the next state with one script that sets it
 * only if the key still holds what was read. Steps of one process on one key are serialized by a key lock, so they
 * conflict only with other processes.
 */
import { Deferred, Effect, Exit } from "effect"
import { script } from "./client.js"

/**
 * KEYS[1] the state. ARGV: "1" if a value was read ("0": the key was absent), the value read, the next value, its TTL
 * (ms). Sets the next value and answers 1 when the key still holds what was read; answers 0 (and writes nothing)
 * when another writer changed it since.
 */
export const compareAndSetLua = script(`
local current = redis.call("GET", KEYS[1])
if ARGV[1] == "1" then
  if current ~= ARGV[2] then return 0 end
elseif current then
  return 0
end
redis.call("SET", KEYS[1], ARGV[3], "PX", ARGV[4])
return 1
`)

/** A mutex per key, dropped when nobody holds or waits for it (its bookkeeping is never cut by an interruption). */
export const makeKeyLocks = () => {
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

/** One step waiting for its key's next round. */
interface Pending<S, E> {
  readonly step: (state: S) => readonly [unknown, S]
  readonly now: number
  readonly deferred: Deferred.Deferred<unknown, E>
}

/** What a combiner needs of its store: read a key, parse it, and write a next state if the key is unchanged. */
export interface Combined<S, E> {
  readonly read: (key: string) => Effect.Effect<string | null, E>
  /** The state stored as `raw` (throws on a value that is not one). */
  readonly parse: (raw: string | null) => S
  /** Sets `next` if the key still holds `raw`: true when written. `now` is the latest of the round's steps. */
  readonly write: (key: string, raw: string | null, next: S, now: number) => Effect.Effect<boolean, E>
  /** The error of a step or parse that threw. */
  readonly failed: (error: unknown) => E
  /** The error when every attempt of a round conflicted with other writers. */
  readonly gaveUp: (attempts: number) => E
  readonly maxAttempts: number
  /** The pause before attempt `n` (n ≥ 2) after a conflict. */
  readonly pause: (n: number) => Effect.Effect<void>
}

/**
 * Steps of one process on one key, combined: while a round of a key (read, decide, compare-and-set) is in flight,
 * the steps that arrive for it wait; the next round applies all of them, in arrival order, to one read of the key
 * and writes the result once. Each step gets the result it would have had run alone after the ones before it. A
 * hot key (one deployment behind every call) so costs one round trip per round instead of one per call, whatever
 * the concurrency; a conflict with another process re-reads and re-applies the whole round. A step whose caller is
 * interrupted before its round starts is dropped; once its round started it is applied, as a write in flight is.
 */
export const makeCombiner = <S, E>(store: Combined<S, E>) => {
  const queues = new Map<string, Array<Pending<S, E>>>()

  const settleAll = (batch: ReadonlyArray<Pending<S, E>>, exits: ReadonlyArray<Exit.Exit<unknown, E>>) =>
    Effect.forEach(batch, (p, i) => Deferred.done(p.deferred, exits[i]), { discard: true })

  const round = (key: string, batch: ReadonlyArray<Pending<S, E>>, n: number): Effect.Effect<void> =>
    Effect.matchEffect(store.read(key), {
      onFailure: (error) => settleAll(batch, batch.map(() => Exit.fail(error))),
      onSuccess: (raw) => {
        let state: S
        try {
          state = store.parse(raw)
        } catch (error) {
          return settleAll(batch, batch.map(() => Exit.fail(store.failed(error))))
        }
        const first = state
        const exits: Array<Exit.Exit<unknown, E>> = []
        let now = Number.NEGATIVE_INFINITY
        for (const p of batch) {
          now = Math.max(now, p.now)
          try {
            const [result, next] = p.step(state)
            exits.push(Exit.succeed(result))
            state = next
          } catch (error) {
            exits.push(Exit.fail(store.failed(error)))
          }
        }
        if (state === first) return settleAll(batch, exits)
        return Effect.matchEffect(Effect.uninterruptible(store.write(key, raw, state, now)), {
          onFailure: (error) => settleAll(batch, batch.map(() => Exit.fail(error))),
          onSuccess: (written) => {
            if (written) return settleAll(batch, exits)
            if (n >= store.maxAttempts) return settleAll(batch, batch.map(() => Exit.fail(store.gaveUp(n))))
            return Effect.zipRight(store.pause(n + 1), round(key, batch, n + 1))
          }
        })
      }
    })

  // Runs rounds until the key's queue is empty, then forgets it (in one synchronous step: no arrival is missed).
  const drain = (key: string, queue: Array<Pending<S, E>>): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (queue.length === 0) {
        queues.delete(key)
        return Effect.void
      }
      const batch = queue.splice(0, queue.length)
      return Effect.zipRight(round(key, batch, 1), drain(key, queue))
    })

  return <A>(key: string, now: number, step: (state: S) => readonly [A, S]): Effect.Effect<A, E> =>
    Effect.flatMap(Deferred.make<unknown, E>(), (deferred) =>
      Effect.suspend(() => {
        const pending: Pending<S, E> = { step, now, deferred }
        let queue = queues.get(key)
        const starts = queue === undefined
        if (queue === undefined) {
          queue = []
          queues.set(key, queue)
        }
        const own = queue
        own.push(pending)
        const awaited = Effect.onInterrupt(Deferred.await(deferred), () =>
          Effect.sync(() => {
            const index = own.indexOf(pending)
            if (index >= 0) own.splice(index, 1)
          })) as Effect.Effect<A, E>
        return starts ? Effect.zipRight(Effect.forkDaemon(drain(key, own)), awaited) : awaited
      }))
}
