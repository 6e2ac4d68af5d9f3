/**
 * The effectful shell of the circuit breaker: reads the Effect clock, runs one store step per admission and
 * outcome, classifies outcomes, publishes transitions and records the metrics. The decisions themselves are
 * the pure state machine in `breaker.ts`, run by the store.
 */
import { Cause, Clock, Duration, Effect, Exit, FiberId, Option, PubSub, Stream } from "effect"
import type {
  Admission,
  CircuitBreakerStoreError,
  Config,
  Outcome,
  State,
  Status,
  Store,
  StoreSync,
  Ticket,
  Transition,
  TransitionRecord
} from "../CircuitBreaker.js"
import { CircuitOpen } from "../LlmError.js"
import * as LlmMetrics from "../LlmMetrics.js"
import * as Telemetry from "./telemetry.js"

const stateCode: Record<State, number> = { closed: 0, halfOpen: 1, open: 2, isolated: 3 }

export interface Engine {
  readonly config: Config
  readonly store: Store
  /** The store's synchronous steps, when it offers them (`Store.sync`). */
  readonly sync: StoreSync | undefined
  readonly countAsFailure: (error: unknown) => boolean
  readonly hub: PubSub.PubSub<Transition>
  readonly seen: Set<string>
}

const publish = (engine: Engine, key: string, records: ReadonlyArray<TransitionRecord>): Effect.Effect<void> =>
  records.length === 0 ? Effect.void : Effect.forEach(records, (r) =>
    Effect.all([
      LlmMetrics.count(LlmMetrics.breakerTransitions, { key, from: r.from, to: r.to }),
      Telemetry.breakerTransition(key, r.from, r.to),
      LlmMetrics.setGauge(LlmMetrics.breakerState, { key }, stateCode[r.to]),
      PubSub.publish(engine.hub, {
        key,
        from: r.from,
        to: r.to,
        reason: r.reason,
        at: r.at,
        breakDuration: r.breakMs === null ? Option.none() : Option.some(Duration.millis(r.breakMs))
      })
    ], { discard: true }), { discard: true })

const firstSight = (engine: Engine, key: string, admission: Admission): Effect.Effect<void> =>
  Effect.suspend(() => {
    if (engine.seen.has(key)) return Effect.void
    engine.seen.add(key)
    const state = admission._tag === "Rejected" ? admission.phase : admission.ticket.probe ? "halfOpen" : "closed"
    return LlmMetrics.setGauge(LlmMetrics.breakerState, { key }, stateCode[state])
  })

/** Publishes what an admission caused; `undefined` when there is nothing to publish (the usual case). */
const announce = (engine: Engine, key: string, admission: Admission): Effect.Effect<void> | undefined =>
  admission.transitions.length === 0 && engine.seen.has(key)
    ? undefined
    : Effect.zipRight(publish(engine, key, admission.transitions), firstSight(engine, key, admission))

const storeDown = (error: CircuitBreakerStoreError) =>
  Effect.as(Effect.logWarning("circuit breaker store unavailable; the call runs untracked", error), undefined)

const admitKey = (engine: Engine, key: string): Effect.Effect<Admission | undefined> =>
  Effect.flatMap(Clock.currentTimeMillis, (now) =>
    Effect.matchEffect(engine.store.admit(key, now, engine.config), {
      onFailure: storeDown,
      onSuccess: (admission) => {
        const announced = announce(engine, key, admission)
        return announced === undefined ? Effect.succeed(admission) : Effect.as(announced, admission)
      }
    }))

/** Which errors count as failures: the breaker's `countAsFailure`, or a combinator's own `isFailure`. */
export type IsFailure = (error: unknown) => boolean

/** How a failed call counts. A classifier that throws counts it as ignored, so a probe slot is never lost. */
const classify = (
  engine: Engine,
  cause: Cause.Cause<unknown>,
  isFailure: IsFailure = engine.countAsFailure
): Outcome | { readonly thrown: unknown } => {
  if (Cause.isInterruptedOnly(cause)) return "ignored"
  const failure = Cause.failureOption(cause)
  if (Option.isNone(failure)) return "ignored"
  try {
    return isFailure(failure.value) ? "failure" : "ignored"
  } catch (thrown) {
    return { thrown }
  }
}

const outcomeOf = (engine: Engine, exit: Exit.Exit<unknown, unknown>): Outcome => {
  if (Exit.isSuccess(exit)) return "success"
  const outcome = classify(engine, exit.cause)
  return typeof outcome === "string" ? outcome : "ignored"
}

const recordKey = (engine: Engine, key: string, ticket: Ticket, exit: Exit.Exit<unknown, unknown>) =>
  Effect.flatMap(Clock.currentTimeMillis, (now) =>
    Effect.matchEffect(engine.store.record(key, now, engine.config, ticket, outcomeOf(engine, exit)), {
      onFailure: recordFailed,
      onSuccess: (records) => publish(engine, key, records)
    }))

const recordFailed = (error: CircuitBreakerStoreError) =>
  Effect.logWarning("circuit breaker store unavailable; an outcome was not recorded", error)

/** Records an outcome (read at `now`), publishes what it caused, then continues with `result`. */
const settle = <A, E, R>(
  engine: Engine,
  key: string,
  now: number,
  ticket: Ticket,
  outcome: Outcome,
  result: Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> => {
  const published = (records: ReadonlyArray<TransitionRecord>) =>
    records.length === 0 ? result : Effect.zipRight(publish(engine, key, records), result)
  // The memory store answers synchronously: no Effect step at all between the call and its result.
  if (engine.sync !== undefined) return published(engine.sync.record(key, now, engine.config, ticket, outcome))
  return Effect.matchEffect(engine.store.record(key, now, engine.config, ticket, outcome), {
    onFailure: (error) => Effect.zipRight(recordFailed(error), result),
    onSuccess: published
  })
}

const reject = (key: string, model: string | undefined, retryAfterMs: number): Effect.Effect<never, CircuitOpen> =>
  Effect.zipRight(
    Effect.zipRight(
      LlmMetrics.count(LlmMetrics.breakerRejections, { key }),
      Telemetry.breakerRejected(key, retryAfterMs)
    ),
    // Rejecting fast is the point of an open breaker: the fields are valid by construction, so the error's Schema
    // does not check them again (6× cheaper: ~10 µs instead of ~60).
    Effect.fail(new CircuitOpen({ key, retryAfter: Duration.millis(retryAfterMs), model }, true))
  )

/**
 * Runs an admitted call and records its outcome. `masked`: the call runs inside an uninterruptible region
 * (`restored` is the call made interruptible again), so the recording cannot be skipped. Unmasked (the closed
 * hot path): an interruption may skip the recording, which only ever counts as an ignored outcome, and a
 * recording that causes a transition runs uninterruptibly, so the transition is always published.
 */
const run = <A, E, R>(
  engine: Engine,
  key: string,
  model: string | undefined,
  clock: Clock.Clock,
  admission: Admission,
  restored: Effect.Effect<A, E, R>,
  masked: boolean,
  isFailure: IsFailure
): Effect.Effect<A, E | CircuitOpen, R> => {
  if (admission._tag === "Rejected") return reject(key, model, admission.retryAfterMs)
  const ticket = admission.ticket
  const finish = <B, E2>(outcome: Outcome, result: Effect.Effect<B, E2>): Effect.Effect<B, E2> => {
    const now = clock.unsafeCurrentTimeMillis()
    if (masked) return settle(engine, key, now, ticket, outcome, result)
    if (engine.sync!.recordIfQuiet(key, now, engine.config, ticket, outcome)) return result
    return Effect.uninterruptible(Effect.suspend(() => settle(engine, key, now, ticket, outcome, result)))
  }
  return Effect.matchCauseEffect(restored, {
    onSuccess: (value) => finish("success", Effect.succeed(value)),
    onFailure: (cause) => {
      const outcome = classify(engine, cause, isFailure)
      return typeof outcome === "string"
        ? finish(outcome, Effect.failCause(cause))
        : finish("ignored", Effect.failCause(Cause.sequential(cause, Cause.die(outcome.thrown))))
    }
  })
}

export const guardEffect = <A, E, R>(
  engine: Engine,
  key: string,
  model: string | undefined,
  effect: Effect.Effect<A, E, R>,
  isFailure: IsFailure = engine.countAsFailure
): Effect.Effect<A, E | CircuitOpen, R> => {
  const sync = engine.sync
  if (sync === undefined) return guardMasked(engine, key, model, effect, isFailure)
  return Effect.clockWith((clock) => {
    if (!sync.isClosed(key)) return guardMasked(engine, key, model, effect, isFailure)
    // The hot path. A closed circuit admits a plain call, never a probe (the check and the admission are one
    // synchronous step), and a plain call's outcome may be lost to an interruption: see `run`.
    const admission = sync.admit(key, clock.unsafeCurrentTimeMillis(), engine.config)
    const announced = announce(engine, key, admission)
    const guarded = run(engine, key, model, clock, admission, effect, false, isFailure)
    return announced === undefined ? guarded : Effect.zipRight(announced, guarded)
  })
}

const guardMasked = <A, E, R>(
  engine: Engine,
  key: string,
  model: string | undefined,
  effect: Effect.Effect<A, E, R>,
  isFailure: IsFailure
): Effect.Effect<A, E | CircuitOpen, R> =>
  // Admission and the outcome hook are registered without a gap: an admitted probe is always reported.
  // One clock for both reads (admission and outcome), read synchronously.
  Effect.uninterruptibleMask((restore) =>
    Effect.clockWith((clock) => {
      const admitted = (admission: Admission): Effect.Effect<A, E | CircuitOpen, R> => {
        const announced = announce(engine, key, admission)
        const guarded = run(engine, key, model, clock, admission, restore(effect), true, isFailure)
        return announced === undefined ? guarded : Effect.zipRight(announced, guarded)
      }
      const now = clock.unsafeCurrentTimeMillis()
      if (engine.sync !== undefined) return admitted(engine.sync.admit(key, now, engine.config))
      return Effect.matchEffect(engine.store.admit(key, now, engine.config), {
        onFailure: (error) => Effect.zipRight(storeDown(error), restore(effect)),
        onSuccess: admitted
      })
    })
  )

// A stream's own end decides its outcome; a consumer that stops early (success) or fails downstream (ignored)
// says nothing about the provider.
const streamOutcome = (own: Exit.Exit<unknown, unknown> | undefined, scope: Exit.Exit<unknown, unknown>) =>
  own ?? (Exit.isSuccess(scope) ? scope : Exit.interrupt(FiberId.none))

export const guardStream = <A, E, R>(
  engine: Engine,
  key: string,
  model: string | undefined,
  stream: Stream.Stream<A, E, R>
): Stream.Stream<A, E | CircuitOpen, R> =>
  Stream.unwrapScoped(Effect.suspend(() => {
    let own: Exit.Exit<unknown, unknown> | undefined
    return Effect.acquireRelease(admitKey(engine, key), (admission, exit) =>
      admission?._tag === "Admitted" ? recordKey(engine, key, admission.ticket, streamOutcome(own, exit)) : Effect.void).pipe(
        Effect.flatMap((admission) =>
          admission?._tag === "Rejected"
            ? reject(key, model, admission.retryAfterMs)
            : Effect.succeed(stream.pipe(
              Stream.tapErrorCause((cause) => Effect.sync(() => (own = Exit.failCause(cause)))),
              Stream.onEnd(Effect.sync(() => (own = Exit.void)))
            ))
        )
      )
  }))

export const statusOf = (engine: Engine, key: string): Effect.Effect<Status, CircuitBreakerStoreError> =>
  Clock.currentTimeMillis.pipe(
    Effect.flatMap((now) => engine.store.observe(key, now, engine.config)),
    Effect.tap((observation) => publish(engine, key, observation.transitions)),
    Effect.map(({ status }) => ({
      key,
      state: status.phase,
      retryAfter: Duration.millis(status.retryAfterMs),
      consecutiveFailures: status.consecutiveFailures,
      calls: status.calls,
      failures: status.failures,
      slowCalls: status.slowCalls
    }))
  )

export const manual = (engine: Engine, key: string, operation: "isolate" | "reset") =>
  Clock.currentTimeMillis.pipe(
    Effect.flatMap((now) => engine.store[operation](key, now, engine.config)),
    Effect.flatMap((records) => publish(engine, key, records))
  )
