/**
 * The retry engine: the Schedule that makes each retry decision (backoff or the user's Schedule, jitter,
 * Retry-After, budget, metrics, onRetry) and the fast-path runners for Effects and Streams, over any error type.
 * The public module `Retry.ts` validates options and documents the API.
 */
import {
  Cause,
  Duration,
  Effect,
  Option,
  Random,
  Schedule,
  ScheduleDecision,
  ScheduleInterval,
  ScheduleIntervals,
  Stream
} from "effect"
import * as LlmError from "../LlmError.js"
import * as LlmMetrics from "../LlmMetrics.js"
import * as Telemetry from "./telemetry.js"
import type { Budget, RetryEvent } from "../Retry.js"
import * as Backoff from "./backoff.js"
import { enforceCurrentDeadline } from "./deadline.js"
import { hasProgress } from "./streamProgress.js"

/** Validated options with their defaults applied, for errors of type E and a user Schedule needing R. */
export interface Resolved<E, R = never> {
  /** Infinity when a user Schedule decides alone when to stop. */
  readonly maxRetries: number
  /** The built-in backoff; unused when `schedule` is set (its `baseMs` seeds the decorrelated jitter). */
  readonly backoff: Backoff.BackoffConfig
  /** The user's Schedule, which then decides the delays (and may stop). */
  readonly schedule: Schedule.Schedule<unknown, E, R> | undefined
  readonly retryOn: (error: E) => boolean
  /** The error's Retry-After; undefined when Retry-After is not honoured. */
  readonly retryAfter: ((error: E) => Option.Option<Duration.Duration>) | undefined
  readonly maxRetryAfterMs: number
  readonly budget: Budget | undefined
  readonly onRetry: ((event: RetryEvent<E>) => void | Effect.Effect<void>) | undefined
}

/** Retryable LlmErrors; nothing else (a non-LlmError error type needs its own `retryOn`). */
export const defaultRetryOn = (error: unknown): boolean => LlmError.isLlmError(error) && LlmError.isRetryable(error)

/** An LlmError's Retry-After; none for any other error. */
export const defaultRetryAfter = (error: unknown): Option.Option<Duration.Duration> =>
  LlmError.isLlmError(error) ? LlmError.retryAfter(error) : Option.none()

interface StepState {
  readonly retry: number
  readonly previousMs: number
  /** The user Schedule's state. */
  readonly inner: unknown
}

const stop = (state: StepState) =>
  Effect.succeed([state, Duration.zero, ScheduleDecision.done] as const)

// The metric label: a tagged error's tag, an Error's name (both a small, fixed set), else "unknown".
const errorLabel = (error: unknown): string => {
  if (typeof error === "object" && error !== null) {
    const tag = (error as { readonly _tag?: unknown })._tag
    if (typeof tag === "string") return tag
    if (error instanceof Error) return error.name
  }
  return "unknown"
}

const announce = <E>(r: Resolved<E, unknown>, event: RetryEvent<E>): Effect.Effect<void> => {
  const counted = Effect.zipRight(
    LlmMetrics.count(LlmMetrics.retries, { model: event.model, error: errorLabel(event.error) }),
    Telemetry.retried(event.retry, Duration.toMillis(event.delay), errorLabel(event.error), event.model)
  )
  if (r.onRetry === undefined) return counted
  const onRetry = r.onRetry
  return Effect.zipRight(
    counted,
    Effect.suspend(() => {
      const result = onRetry(event)
      return Effect.isEffect(result) ? result : Effect.void
    })
  )
}

const retryAfterMs = <E>(r: Resolved<E, unknown>, error: E): number | undefined => {
  if (r.retryAfter === undefined) return undefined
  const after = r.retryAfter(error)
  return Option.isSome(after) ? Duration.toMillis(after.value) : undefined
}

/** The wait before the next call (`delayMs`), or undefined to stop. */
interface Wait {
  readonly delayMs: number
  /** The backoff alone (the next decorrelated step grows from it). */
  readonly backoffMs: number
  readonly inner: unknown
}

const backoffWait = <E, R>(r: Resolved<E, R>, input: Backoff.DecisionInput, state: StepState) => {
  const random = r.backoff.jitter === "none" ? Effect.succeed(0) : Random.next
  return Effect.map(random, (u): Wait | undefined => {
    const verdict = Backoff.decide(r.backoff, input, state.previousMs, u)
    return verdict._tag === "Stop" ? undefined : { ...verdict, inner: state.inner }
  })
}

// The user's Schedule decides the delay (or stops); a longer Retry-After is still waited in full.
const scheduledWait = <E, R>(
  schedule: Schedule.Schedule<unknown, E, R>,
  input: Backoff.DecisionInput,
  now: number,
  error: E,
  state: StepState
) =>
  Effect.map(schedule.step(now, error, state.inner), ([inner, _, decision]): Wait | undefined => {
    if (ScheduleDecision.isDone(decision)) return undefined
    const backoffMs = Math.max(0, ScheduleIntervals.start(decision.intervals) - now)
    const retryAfter = input.retryAfterMs ?? 0
    return { delayMs: retryAfter > backoffMs ? retryAfter : backoffMs, backoffMs, inner }
  })

const step = <E, R>(r: Resolved<E, R>, model: string | undefined, budget: Budget | undefined) =>
(now: number, error: E, state: StepState) => {
  const input: Backoff.DecisionInput = {
    retry: state.retry + 1,
    maxRetries: r.maxRetries,
    retryable: r.retryOn(error),
    retryAfterMs: retryAfterMs(r, error),
    maxRetryAfterMs: r.maxRetryAfterMs
  }
  if (Backoff.precheck(input) !== undefined) return stop(state)
  const waited = r.schedule === undefined
    ? backoffWait(r, input, state)
    : scheduledWait(r.schedule, input, now, error, state)
  return Effect.flatMap(waited, (wait) => {
    if (wait === undefined) return stop(state)
    const granted = budget === undefined ? Effect.succeed(true) : budget.tryWithdraw
    return Effect.flatMap(granted, (ok) => {
      const errorModel = LlmError.isLlmError(error) ? error.model : undefined
      if (!ok) {
        const labels = { model: errorModel ?? model ?? "unknown", error: errorLabel(error) }
        return Effect.zipRight(LlmMetrics.count(LlmMetrics.retryBudgetExhausted, labels), stop(state))
      }
      const delay = Duration.millis(wait.delayMs)
      const event: RetryEvent<E> = { retry: input.retry, error, delay, model: errorModel ?? model ?? "unknown" }
      const next: StepState = { retry: input.retry, previousMs: wait.backoffMs, inner: wait.inner }
      return Effect.as(
        announce(r, event),
        [next, delay, ScheduleDecision.continueWith(ScheduleInterval.after(now + wait.delayMs))] as const
      )
    })
  })
}

export const makeSchedule = <E, R>(
  r: Resolved<E, R>,
  model: string | undefined,
  budget: Budget | undefined
): Schedule.Schedule<Duration.Duration, E, R> =>
  Schedule.makeWithState<StepState, E, Duration.Duration, R>(
    { retry: 0, previousMs: r.backoff.baseMs, inner: r.schedule?.initial },
    step(r, model, budget)
  )

/** A failure to retry: a typed failure with no defect and no interruption in its cause. */
const retryableFailure = <E>(cause: Cause.Cause<E>): Option.Option<E> =>
  Cause.isDie(cause) || Cause.isInterrupted(cause) ? Option.none() : Cause.failureOption(cause)

const retryLoop = <A, E, R>(
  self: Effect.Effect<A, E, R>,
  r: Resolved<E, R>,
  model: string | undefined,
  first: E,
  keepDeadline: boolean
): Effect.Effect<A, E, R> =>
  Effect.flatMap(Schedule.driver(makeSchedule(r, model, r.budget)), (driver) => {
    // As a policy, the wait before a retry ends at the current deadline with its Timeout (so a Timeout above can
    // hand its deadline down); E then includes Timeout (an LlmError).
    const wait = (error: E): Effect.Effect<unknown, E | undefined, R> =>
      keepDeadline
        ? Effect.mapError(enforceCurrentDeadline(driver.next(error)), (e) =>
          e instanceof LlmError.Timeout ? (e as unknown as E) : undefined)
        : Effect.mapError(driver.next(error), () => undefined)
    const loop = (error: E): Effect.Effect<A, E, R> =>
      Effect.matchEffect(wait(error), {
        onFailure: (timedOut) => Effect.fail(timedOut === undefined ? error : timedOut),
        onSuccess: () => Effect.catchAllCause(self, (cause) => handle(cause, loop))
      })
    return loop(first)
  })

const handle = <A, E, R>(
  cause: Cause.Cause<E>,
  onFailure: (error: E) => Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> => {
  const failure = retryableFailure(cause)
  return Option.isSome(failure) ? onFailure(failure.value) : Effect.failCause(cause)
}

// One R for the effect and the user Schedule: a caller with an effect needing R and a Schedule needing R2
// instantiates it at R | R2 (both are covariant there).
export const retryEffect = <A, E, R>(
  self: Effect.Effect<A, E, R>,
  r: Resolved<E, R>,
  model: string | undefined,
  keepDeadline = false
): Effect.Effect<A, E, R> => {
  // Fast path: the first call runs with only a failure handler; the schedule is built on the first failure.
  const attempt = Effect.catchAllCause(self, (cause) =>
    handle(cause, (error) => retryLoop(self, r, model, error, keepDeadline)))
  return r.budget === undefined ? attempt : Effect.zipRight(r.budget.deposit, attempt)
}

export const retryStream = <A, E, R>(
  self: Stream.Stream<A, E, R>,
  r: Resolved<E, R>,
  model: string | undefined
): Stream.Stream<A, E, R> =>
  Stream.suspend(() => {
    // Once progress has gone downstream, a retry would duplicate it: the error surfaces instead. Elements that are
    // not progress (an empty opening delta) do not count: see streamProgress.ts.
    let emitted = false
    const attempt = Stream.mapChunks(self, (chunk) => {
      if (!emitted && hasProgress(chunk)) emitted = true
      return chunk
    })
    const guard = (cause: Cause.Cause<E>, onFailure: (error: E) => Stream.Stream<A, E, R>) => {
      const failure = emitted ? Option.none() : retryableFailure(cause)
      return Option.isSome(failure) ? onFailure(failure.value) : Stream.failCause(cause)
    }
    const slow = (first: E) =>
      Stream.unwrap(Effect.map(Schedule.driver(makeSchedule(r, model, r.budget)), (driver) => {
        const loop = (error: E): Stream.Stream<A, E, R> =>
          Stream.unwrap(Effect.match(driver.next(error), {
            onFailure: () => Stream.fail(error),
            onSuccess: () => Stream.catchAllCause(attempt, (cause) => guard(cause, loop))
          }))
        return loop(first)
      }))
    const started = Stream.catchAllCause(attempt, (cause) => guard(cause, slow))
    return r.budget === undefined ? started : Stream.unwrap(Effect.as(r.budget.deposit, started))
  })

