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
import { Clock, Duration, Effect, Exit, Fiber } from "effect"

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

// Like `Fiber.join`: a success brings the child's FiberRef changes into the caller.
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
