/**
 * One bulkhead compartment: `running` slots out of `maxConcurrent`, and a FIFO queue of at most `maxQueue`
 * waiters. A released slot is handed straight to the oldest waiter, so a late arrival never overtakes the queue.
 * All bookkeeping is synchronous (one fiber runs at a time), so every step is atomic.
 */
import { Deferred, Effect, Exit, FiberId, Option, type Duration } from "effect"

export interface Waiter {
  granted: boolean
  readonly deferred: Deferred.Deferred<void>
}

/** Why a call could not get a slot. */
export type Refusal = "full" | "timedOut"

export class Compartment {
  running = 0
  private readonly waiters: Array<Waiter> = []

  constructor(
    readonly maxConcurrent: number,
    readonly maxQueue: number,
    private readonly onIdle: () => void
  ) {}

  get queued(): number {
    return this.waiters.length
  }

  /** Takes a free slot, joins the queue, or refuses (a zero limit refuses everything). */
  enter(): "acquired" | "full" | Waiter {
    if (this.maxConcurrent === 0) return "full"
    if (this.running < this.maxConcurrent && this.waiters.length === 0) {
      this.running++
      return "acquired"
    }
    if (this.waiters.length >= this.maxQueue) return "full"
    const waiter: Waiter = { granted: false, deferred: Deferred.unsafeMake(FiberId.none) }
    this.waiters.push(waiter)
    return waiter
  }

  /** Frees a slot: the oldest waiter gets it, else it becomes free. */
  release(): void {
    const next = this.waiters.shift()
    if (next !== undefined) {
      next.granted = true
      Deferred.unsafeDone(next.deferred, Exit.void)
      return
    }
    this.running--
    if (this.running === 0) this.onIdle()
  }

  /** A waiter gives up: it leaves the queue, or passes on the slot it was just handed. */
  leave(waiter: Waiter): void {
    if (waiter.granted) return this.release()
    const index = this.waiters.indexOf(waiter)
    if (index >= 0) this.waiters.splice(index, 1)
    if (this.running === 0 && this.waiters.length === 0) this.onIdle()
  }
}

/**
 * Waits for a slot of the compartment `resolve` returns (looked up in the same synchronous step that enters it,
 * so an idle compartment dropped meanwhile is never used). Waits interruptibly, through `restore`; must run
 * uninterruptibly so that a slot handed over at the moment of an interruption is passed on, never lost.
 * Succeeds with the compartment to release.
 */
export const acquire = (
  resolve: () => Compartment,
  restore: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>,
  maxWait: Duration.Duration | undefined
): Effect.Effect<Compartment, Refusal> =>
  Effect.suspend(() => {
    const compartment = resolve()
    const entry = compartment.enter()
    if (entry === "acquired") return Effect.succeed(compartment)
    if (entry === "full") return Effect.fail("full" as const)
    const wait = maxWait === undefined
      ? Effect.asSome(Deferred.await(entry.deferred))
      : Effect.timeoutOption(Deferred.await(entry.deferred), maxWait)
    return restore(wait).pipe(
      Effect.onInterrupt(() => Effect.sync(() => compartment.leave(entry))),
      Effect.flatMap((got) => {
        if (Option.isSome(got) || entry.granted) return Effect.succeed(compartment)
        compartment.leave(entry)
        return Effect.fail("timedOut" as const)
      })
    )
  })
