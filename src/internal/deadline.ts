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
import { Clock, Context, Duration, Effect, Exit, Fiber, FiberRef, RuntimeFlags } from "effect"
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

// The runtime flags `inheritAll` never brings back (a finished fiber has WindDown set).
const NOT_INHERITED = RuntimeFlags.Interruption | RuntimeFlags.WindDown

// Whether the child set any FiberRef or changed its runtime flags: each FiberRef's stack of values starts with the
// fiber that set it last, so a child that set nothing heads no stack (but the runtime flags', which
// `getFiberRefs()` stamps with the child's current flags: compared with the flags it was forked with, but for those
// `inheritAll` leaves out).
const changedAnything = (fiber: Fiber.RuntimeFiber<unknown, unknown>): boolean => {
  // Fiber ids are unique in a process: the number tells a fiber apart without a structural comparison.
  const id = fiber.id().id
  for (const [ref, stack] of fiber.getFiberRefs().locals) {
    const head = stack[0][0]
    if (head._tag !== "Runtime" || head.id !== id) continue
    if (ref !== FiberRef.currentRuntimeFlags) return true
    if (stack.length < 2 || ((stack[0][1] ^ stack[1][1]) & ~NOT_INHERITED) !== 0) return true
  }
  return false
}

// Like `Fiber.join`: a success brings the child's FiberRef changes into the caller; a child that changed nothing
// (a provider call, nearly always) has nothing to bring, and the merge is skipped.
const joined = <A, E>(fiber: Fiber.RuntimeFiber<A, E>, exit: Exit.Exit<A, E>): Effect.Effect<A, E> =>
  Exit.isSuccess(exit) && changedAnything(fiber) ? Effect.zipRight(fiber.inheritAll, exit) : exit

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
// The current deadline: a Timeout hands its deadline down instead of racing a fiber against a timer when every
// step below it keeps the deadline (see `LlmClient.Policy.keepsDeadline`). The provider step every client gets
// enforces it: a provider that declares `enforces.deadline` aborts its own request at the instant (no fiber at
// all); any other provider call is bounded by `withDeadline` there.

/** A deadline handed down to the steps below: an instant on the Effect clock and the error it fails with. */
export interface CurrentDeadlineValue {
  readonly at: number
  readonly onTimeout: () => Timeout
}

/** The earliest deadline of the Timeouts above the current step, if any. */
export const CurrentDeadline: FiberRef.FiberRef<CurrentDeadlineValue | undefined> = FiberRef.unsafeMake<
  CurrentDeadlineValue | undefined
>(undefined)

/**
 * Runs `self` with `deadline` as the current deadline (the earlier one wins when a deadline is already set), then
 * restores the previous one. Cheaper than `Effect.locally`: one read, one write and one exit handler.
 */
// `setFiberRef` is on every runtime fiber (the method `FiberRef.set` runs), though not on the public type.
interface Settable {
  setFiberRef<X>(fiberRef: FiberRef.FiberRef<X>, value: X): void
}

export const withCurrentDeadline = <A, E, R>(
  self: Effect.Effect<A, E, R>,
  deadline: CurrentDeadlineValue
): Effect.Effect<A, E, R> =>
  Effect.withFiberRuntime((runtimeFiber) => {
    const fiber = runtimeFiber as unknown as Settable & typeof runtimeFiber
    const previous = fiber.getFiberRef(CurrentDeadline)
    if (previous !== undefined && previous.at <= deadline.at) return self
    // Set and restored in one uninterruptible region, so no exit path keeps this deadline on the fiber.
    return Effect.uninterruptibleMask((restore) => {
      fiber.setFiberRef(CurrentDeadline, deadline)
      return Effect.matchCauseEffect(restore(self), {
        onFailure: (cause) => {
          fiber.setFiberRef(CurrentDeadline, previous)
          return Effect.failCause(cause)
        },
        onSuccess: (value) => {
          fiber.setFiberRef(CurrentDeadline, previous)
          return Effect.succeed(value)
        }
      })
    })
  })

/**
 * Bounds a provider call by the current deadline, for a provider that does not enforce it itself: one timer and
 * one fiber, as `withDeadline`. Without a current deadline `self` runs as is.
 */
export const enforceCurrentDeadline = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | Timeout, R> =>
  Effect.withFiberRuntime((fiber) => {
    const deadline = fiber.getFiberRef(CurrentDeadline)
    if (deadline === undefined) return self
    const clock = Context.get(fiber.currentDefaultServices, Clock.Clock)
    const remaining = deadline.at - clock.unsafeCurrentTimeMillis()
    if (remaining <= 0) return Effect.fail(deadline.onTimeout())
    return withDeadline(self, Duration.millis(remaining), deadline.onTimeout)
  })

/**
 * Sleeps `duration` unless the current deadline comes first: then sleeps until the deadline and fails with its
 * Timeout, as a Timeout above would have (a policy's own waits keep the deadline this way).
 */
export const sleepWithinDeadline = (duration: Duration.Duration): Effect.Effect<void, Timeout> =>
  Effect.withFiberRuntime((fiber) => {
    const deadline = fiber.getFiberRef(CurrentDeadline)
    if (deadline === undefined) return Effect.sleep(duration)
    const clock = Context.get(fiber.currentDefaultServices, Clock.Clock)
    const remaining = deadline.at - clock.unsafeCurrentTimeMillis()
    if (remaining <= 0) return Effect.fail(deadline.onTimeout())
    if (Duration.toMillis(duration) < remaining) return Effect.sleep(duration)
    return Effect.zipRight(Effect.sleep(Duration.millis(remaining)), Effect.fail(deadline.onTimeout()))
  })

/**
 * `Effect.tryPromise` for a provider call that enforces the current deadline: when it passes, the request is
 * aborted through its signal and the call fails with the deadline's Timeout at once (a request whose promise ignores
 * the signal cannot hold the caller past the deadline). The caller's interruption aborts it too. Without a deadline
 * it is a plain `tryPromise` whose signal aborts on interruption.
 */
export const tryPromiseWithDeadline = <A>(
  call: (signal: AbortSignal) => PromiseLike<A>
): Effect.Effect<A, unknown> =>
  Effect.withFiberRuntime((fiber) => {
    const deadline = fiber.getFiberRef(CurrentDeadline)
    if (deadline === undefined) return Effect.tryPromise({ try: call, catch: (error) => error })
    const clock = Context.get(fiber.currentDefaultServices, Clock.Clock)
    const remaining = deadline.at - clock.unsafeCurrentTimeMillis()
    if (remaining <= 0) return Effect.fail(deadline.onTimeout())
    // One controller serves both the deadline and the caller's interruption. A call that takes no signal gets
    // none: creating an AbortSignal costs more than the rest of this step together.
    const wantsSignal = call.length > 0
    return Effect.async<A, unknown>((resume) => {
      const controller = wantsSignal ? new AbortController() : undefined
      let settled = false
      const cancel = startTimer(clock, Duration.millis(remaining), () => {
        if (settled) return
        settled = true
        controller?.abort()
        resume(Effect.fail(deadline.onTimeout()))
      })
      let promise: PromiseLike<A>
      try {
        promise = call(controller === undefined ? (undefined as unknown as AbortSignal) : controller.signal)
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
        controller?.abort()
      })
    })
  })
