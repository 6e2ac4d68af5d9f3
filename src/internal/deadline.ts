/**
 * A timeout with one timer and one fiber.
 *
 * `Effect.timeoutFail` races the effect against a forked `sleep`, which costs two fibers and a race per call: on a
 * zero-latency provider that is most of a policy stack's overhead. Here the effect runs in one child fiber and the
 * deadline is a single timer registered beside it. With the live Clock the timer is the same host timer the Clock's
 * own `sleep` uses; with any other Clock (TestClock in tests) the timer is that Clock's `sleep` in a daemon fiber, so
 * both go through the same race logic below and TestClock drives every timing decision.
 *
 * Semantics (the same as `Effect.timeoutFail`): when the deadline passes the effect is interrupted and awaited (so
 * an HTTP request is aborted and a bulkhead slot is only freed once the work has stopped), then `onTimeout` fails.
 * A caller's interruption interrupts the effect, waits for it to stop, and is an interruption, never a timeout;
 * that holds too when the caller is interrupted while a timed-out effect is still stopping. On success the
 * effect's FiberRef changes are kept, as if it had run in the caller's fiber.
 */
import { Clock, Duration, Effect, Exit, Fiber, FiberRef } from "effect"
import type { Timeout } from "../LlmError.js"

type CancelTimer = () => void

// The live Clock's class: a Clock built by it schedules on the host timer, so the fast path is exactly equivalent.
const LiveClock = Effect.runSync(Effect.clock).constructor

// Node's timers take at most 2^31 - 1 ms; longer deadlines are chained.
const MAX_TIMER_MS = 2_147_483_647

const hostTimer = (millis: number, onFire: () => void): CancelTimer => {
  let handle: ReturnType<typeof setTimeout>
  const arm = (remaining: number) => {
    handle = setTimeout(() => {
      if (remaining > MAX_TIMER_MS) arm(remaining - MAX_TIMER_MS)
      else onFire()
    }, Math.min(remaining, MAX_TIMER_MS))
  }
  arm(millis)
  return () => clearTimeout(handle)
}

const clockTimer = (clock: Clock.Clock, duration: Duration.Duration, onFire: () => void): CancelTimer => {
  const fiber = Effect.runFork(clock.sleep(duration))
  fiber.addObserver((exit) => {
    if (Exit.isSuccess(exit)) onFire()
  })
  return () => {
    fiber.unsafeInterruptAsFork(fiber.id())
  }
}

const startTimer = (clock: Clock.Clock, duration: Duration.Duration, onFire: () => void): CancelTimer =>
  clock.constructor === LiveClock
    ? hostTimer(Duration.toMillis(duration), onFire)
    : clockTimer(clock, duration, onFire)

// Like `Fiber.join`: a success brings the child's FiberRef changes into the caller. (Always inherited:
// `getFiberRefs()` stamps the runtime flags and so returns a fresh object on every call, so an identity check
// against the refs the child was forked with can never tell an untouched child.)
const joined = <A, E>(fiber: Fiber.RuntimeFiber<A, E>, exit: Exit.Exit<A, E>): Effect.Effect<A, E> =>
  Exit.isSuccess(exit) ? Effect.zipRight(fiber.inheritAll, exit) : exit

/**
 * Runs `self` with a deadline of `duration`; on expiry interrupts it, waits for it to stop, and fails with
 * `onTimeout()`. An infinite duration runs `self` as is.
 */
export const withDeadline = <A, E, R, E2>(
  self: Effect.Effect<A, E, R>,
  duration: Duration.Duration,
  onTimeout: () => E2
): Effect.Effect<A, E | E2, R> => {
  if (!Duration.isFinite(duration)) return self
  return Effect.clockWith((clock) =>
    Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(Effect.fork(restore(self)), (fiber) =>
        restore(Effect.async<A, E | E2>((resume) => {
          const done = fiber.unsafePoll()
          if (done !== null) return resume(joined(fiber, done))
          let settled = false
          const cancel = startTimer(clock, duration, () => {
            if (settled) return
            settled = true
            resume(Effect.zipRight(Fiber.interrupt(fiber), Effect.fail(onTimeout())))
          })
          fiber.addObserver((exit) => {
            if (settled) return
            settled = true
            cancel()
            resume(joined(fiber, exit))
          })
          // The caller was interrupted: stop the timer and the effect, and wait for the effect to stop. Effect.async
          // also runs this when the interruption comes while a timed-out effect is still stopping (the resumed
          // effect runs inside the same interruption handler), so the caller never gets ahead of the work.
          return Effect.suspend(() => {
            settled = true
            cancel()
            return Fiber.interrupt(fiber)
          })
        }))
      )
    )
  )
}

// ---------------------------------------------------------------------------------------------------------------
// Leaf deadlines: a provider that enforces the deadline itself saves the fiber.

/** A deadline handed to the provider call below: an instant on the Effect clock and the error it fails with. */
export interface LeafDeadline {
  readonly at: number
  readonly onTimeout: () => Timeout
}

/** The deadline the next provider call must enforce, set by a Timeout policy placed directly above it. */
export const CurrentLeafDeadline: FiberRef.FiberRef<LeafDeadline | undefined> = FiberRef.unsafeMake<
  LeafDeadline | undefined
>(undefined)

const HonorsDeadline: unique symbol = Symbol.for("effect-llm-resilience/HonorsDeadline")

/** Marks a provider's `complete` as enforcing {@link CurrentLeafDeadline} (aborting its request at the instant). */
export const markHonorsDeadline = <F extends (...args: never) => unknown>(f: F): F =>
  Object.assign(f, { [HonorsDeadline]: true })

/** Whether a completion function enforces {@link CurrentLeafDeadline} itself. */
export const honorsDeadline = (f: unknown): boolean =>
  typeof f === "function" && (f as unknown as Record<symbol, unknown>)[HonorsDeadline] === true

/**
 * `Effect.tryPromise` for a provider call that enforces the current leaf deadline: when it passes, the request is
 * aborted through its signal and the call fails with the deadline's Timeout at once, as `withDeadline` over
 * `Effect.tryPromise` does (a request whose promise ignores the signal cannot hold the caller past the deadline).
 * Without a deadline it is a plain `tryPromise`.
 */
export const tryPromiseWithDeadline = <A>(
  call: (signal: AbortSignal) => PromiseLike<A>
): Effect.Effect<A, unknown> =>
  Effect.flatMap(FiberRef.get(CurrentLeafDeadline), (deadline) => {
    if (deadline === undefined) return Effect.tryPromise({ try: call, catch: (error) => error })
    return Effect.clockWith((clock) => {
      const remaining = deadline.at - clock.unsafeCurrentTimeMillis()
      if (remaining <= 0) return Effect.fail(deadline.onTimeout())
      // One controller serves both the deadline and the caller's interruption.
      return Effect.async<A, unknown>((resume) => {
        const controller = new AbortController()
        let settled = false
        const cancel = startTimer(clock, Duration.millis(remaining), () => {
          if (settled) return
          settled = true
          controller.abort()
          resume(Effect.fail(deadline.onTimeout()))
        })
        let promise: PromiseLike<A>
        try {
          promise = call(controller.signal)
        } catch (error) {
          settled = true
          cancel()
          return resume(Effect.fail(error))
        }
        promise.then(
          (value) => {
            if (settled) return
            settled = true
            cancel()
            resume(Effect.succeed(value))
          },
          (error) => {
            if (settled) return
            settled = true
            cancel()
            resume(Effect.fail(error))
          }
        )
        return Effect.sync(() => {
          settled = true
          cancel()
          controller.abort()
        })
      })
    })
  })
