/**
 * The retry engine: the Schedule that makes each retry decision (backoff, jitter, Retry-After, budget, metrics,
 * onRetry) and the fast-path runners for Effects and Streams. The public module `Retry.ts` validates options and
 * documents the API.
 */
import { Cause, Duration, Effect, Option, Random, Schedule, ScheduleDecision, ScheduleInterval, Stream } from "effect"
import * as LlmError from "../LlmError.js"
import * as LlmMetrics from "../LlmMetrics.js"
import type { Budget, RetryEvent } from "../Retry.js"
import * as Backoff from "./backoff.js"
import { hasProgress } from "./streamProgress.js"

/** Validated options with their defaults applied. */
export interface Resolved {
  readonly maxRetries: number
  readonly backoff: Backoff.BackoffConfig
  readonly retryOn: (error: LlmError.LlmError) => boolean
  readonly honorRetryAfter: boolean
  readonly maxRetryAfterMs: number
  readonly budget: Budget | undefined
  readonly onRetry: ((event: RetryEvent) => void | Effect.Effect<void>) | undefined
}

interface StepState {
  readonly retry: number
  readonly previousMs: number
}

const stop = (state: StepState) =>
  Effect.succeed([state, Duration.zero, ScheduleDecision.done] as const)

const announce = (r: Resolved, event: RetryEvent): Effect.Effect<void> => {
  const counted = LlmMetrics.count(LlmMetrics.retries, { model: event.model, error: event.error._tag })
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

const retryAfterMs = (r: Resolved, error: LlmError.LlmError): number | undefined => {
  if (!r.honorRetryAfter) return undefined
  const after = LlmError.retryAfter(error)
  return Option.isSome(after) ? Duration.toMillis(after.value) : undefined
}

const step = (r: Resolved, model: string | undefined, budget: Budget | undefined) =>
(now: number, error: LlmError.LlmError, state: StepState) => {
  const input: Backoff.DecisionInput = {
    retry: state.retry + 1,
    maxRetries: r.maxRetries,
    retryable: r.retryOn(error),
    retryAfterMs: retryAfterMs(r, error),
    maxRetryAfterMs: r.maxRetryAfterMs
  }
  if (Backoff.precheck(input) !== undefined) return stop(state)
  const random = r.backoff.jitter === "none" ? Effect.succeed(0) : Random.next
  return Effect.flatMap(random, (u) => {
    const verdict = Backoff.decide(r.backoff, input, state.previousMs, u)
    if (verdict._tag === "Stop") return stop(state)
    const granted = budget === undefined ? Effect.succeed(true) : budget.tryWithdraw
    return Effect.flatMap(granted, (ok) => {
      if (!ok) return stop(state)
      const delay = Duration.millis(verdict.delayMs)
      const event: RetryEvent = { retry: input.retry, error, delay, model: error.model ?? model ?? "unknown" }
      const next: StepState = { retry: input.retry, previousMs: verdict.backoffMs }
      return Effect.as(
        announce(r, event),
        [next, delay, ScheduleDecision.continueWith(ScheduleInterval.after(now + verdict.delayMs))] as const
      )
    })
  })
}

export const makeSchedule = (
  r: Resolved,
  model: string | undefined,
  budget: Budget | undefined
): Schedule.Schedule<Duration.Duration, LlmError.LlmError> =>
  Schedule.makeWithState<StepState, LlmError.LlmError, Duration.Duration>(
    { retry: 0, previousMs: r.backoff.baseMs },
    step(r, model, budget)
  )

/** A failure to retry: a typed failure with no defect and no interruption in its cause. */
const retryableFailure = <E>(cause: Cause.Cause<E>): Option.Option<E> =>
  Cause.isDie(cause) || Cause.isInterrupted(cause) ? Option.none() : Cause.failureOption(cause)

const retryLoop = <A, E extends LlmError.LlmError, R>(
  self: Effect.Effect<A, E, R>,
  r: Resolved,
  model: string | undefined,
  first: E
): Effect.Effect<A, E, R> =>
  Effect.flatMap(Schedule.driver(makeSchedule(r, model, r.budget)), (driver) => {
    const loop = (error: E): Effect.Effect<A, E, R> =>
      Effect.matchEffect(driver.next(error), {
        onFailure: () => Effect.fail(error),
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

export const retryEffect = <A, E extends LlmError.LlmError, R>(
  self: Effect.Effect<A, E, R>,
  r: Resolved,
  model: string | undefined
): Effect.Effect<A, E, R> => {
  // Fast path: the first call runs with only a failure handler; the schedule is built on the first failure.
  const attempt = Effect.catchAllCause(self, (cause) => handle(cause, (error) => retryLoop(self, r, model, error)))
  return r.budget === undefined ? attempt : Effect.zipRight(r.budget.deposit, attempt)
}

export const retryStream = <A, E extends LlmError.LlmError, R>(
  self: Stream.Stream<A, E, R>,
  r: Resolved,
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

