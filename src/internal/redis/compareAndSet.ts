/**
 * The optimistic write of the stores that keep one JSON state per key and step it with a pure function in the
 * process (the breaker, the router): read the key, decide, then write the next state with one script that sets it
 * only if the key still holds what was read. Steps of one process on one key are serialized by a key lock, so they
 * conflict only with other processes.
 */
import { Effect } from "effect"
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
