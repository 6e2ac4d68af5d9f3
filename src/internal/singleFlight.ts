/**
 * Request coalescing with ref-counted cancellation (Go's singleflight, plus cancellation).
 *
 * The first caller of a key starts the work in a daemon fiber detached from every caller; later callers of the same
 * key join it. Each caller is a waiter: interrupting one waiter only removes it; the work is interrupted (and awaited)
 * when the last waiter leaves. A flight is forgotten as soon as it completes, so nothing is cached here: a caller
 * arriving after completion starts a new flight.
 *
 * Why not `effect/Cache`: it runs a lookup in the first caller's fiber (interrupting that caller interrupts every
 * waiter) and memoizes failures for its whole time-to-live; the cache and idempotency policies need neither.
 */
import { Deferred, Effect, Fiber, FiberId, Option } from "effect"

interface Flight<A, M> {
  /** Made when the first caller joins the leader: a flight nobody joins needs none (the leader awaits the fiber). */
  deferred: Deferred.Deferred<A> | undefined
  readonly meta: M
  waiters: number
  fiber: Fiber.RuntimeFiber<A> | undefined
  done: boolean
}

/** How a caller took part: it started the work (`leader`) or joined a running flight. */
export interface Joined<A> {
  readonly value: A
  readonly leader: boolean
}

export interface SingleFlight<A, M> {
  /** The metadata of the running flight for `key`, if any. */
  readonly meta: (key: string) => M | undefined
  /** How many flights are running. */
  readonly size: () => number
  /**
   * Runs `work` once per key at a time. When a flight is already running, `guard(meta)` may return an effect to run
   * instead of joining (e.g. a conflict); it is checked atomically with the join.
   */
  readonly run: <E = never>(
    key: string,
    meta: M,
    work: Effect.Effect<A>,
    guard?: (running: M) => Effect.Effect<never, E> | undefined
  ) => Effect.Effect<Joined<A>, E>
  /** Joins the running flight for `key` if there is one (checked when the effect runs), else None. */
  readonly joinIfRunning: (key: string) => Effect.Effect<Option.Option<A>>
}

export const make = <A, M>(): SingleFlight<A, M> => {
  const flights = new Map<string, Flight<A, M>>()

  const leave = (key: string, flight: Flight<A, M>): Effect.Effect<void> =>
    Effect.suspend(() => {
      flight.waiters--
      if (flight.waiters > 0 || flight.done) return Effect.void
      if (flights.get(key) === flight) flights.delete(key)
      return flight.fiber === undefined ? Effect.void : Fiber.interrupt(flight.fiber)
    })

  const wait = (
    key: string,
    flight: Flight<A, M>,
    restore: <X, Y, Z>(effect: Effect.Effect<X, Y, Z>) => Effect.Effect<X, Y, Z>,
    leader: boolean
  ): Effect.Effect<Joined<A>> => {
    flight.deferred ??= Deferred.unsafeMake<A>(FiberId.none)
    return Effect.map(
      Effect.onInterrupt(restore(Deferred.await(flight.deferred)), () => leave(key, flight)),
      (value) => ({ value, leader })
    )
  }

  // The leader awaits the flight's fiber itself: its exit is the work's.
  const awaitLeader = (
    key: string,
    flight: Flight<A, M>,
    fiber: Fiber.RuntimeFiber<A>,
    restore: <X, Y, Z>(effect: Effect.Effect<X, Y, Z>) => Effect.Effect<X, Y, Z>
  ): Effect.Effect<Joined<A>> =>
    Effect.flatMap(
      Effect.onInterrupt(restore(Fiber.await(fiber)), () => leave(key, flight)),
      (exit) => Effect.map(exit, (value) => ({ value, leader: true }))
    )

  const start = (key: string, flight: Flight<A, M>, work: Effect.Effect<A>): Effect.Effect<A> =>
    Effect.flatMap(Effect.exit(Effect.interruptible(work)), (exit) =>
      Effect.suspend(() => {
        flight.done = true
        if (flights.get(key) === flight) flights.delete(key)
        return flight.deferred === undefined ? exit : Effect.zipRight(Deferred.done(flight.deferred, exit), exit)
      }))

  const run = <E>(
    key: string,
    meta: M,
    work: Effect.Effect<A>,
    guard?: (running: M) => Effect.Effect<never, E> | undefined
  ): Effect.Effect<Joined<A>, E> =>
    Effect.uninterruptibleMask((restore) =>
      Effect.suspend((): Effect.Effect<Joined<A>, E> => {
        const running = flights.get(key)
        if (running !== undefined) {
          const refusal = guard?.(running.meta)
          if (refusal !== undefined) return refusal
          running.waiters++
          return wait(key, running, restore, false)
        }
        const flight: Flight<A, M> = { deferred: undefined, meta, waiters: 1, fiber: undefined, done: false }
        flights.set(key, flight)
        return Effect.flatMap(Effect.forkDaemon(start(key, flight, work)), (fiber) => {
          flight.fiber = fiber
          return awaitLeader(key, flight, fiber, restore)
        })
      })
    )

  const joinIfRunning = (key: string): Effect.Effect<Option.Option<A>> =>
    Effect.uninterruptibleMask((restore) =>
      Effect.suspend(() => {
        const running = flights.get(key)
        if (running === undefined) return Effect.succeed(Option.none())
        running.waiters++
        return Effect.map(wait(key, running, restore, false), (joined) => Option.some(joined.value))
      })
    )

  return {
    meta: (key) => flights.get(key)?.meta,
    size: () => flights.size,
    run,
    joinIfRunning
  }
}
