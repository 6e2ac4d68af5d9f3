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
  Ticket,
  Transition,
  TransitionRecord
} from "../CircuitBreaker.js"
import { CircuitOpen } from "../LlmError.js"
import * as LlmMetrics from "../LlmMetrics.js"

const stateCode: Record<State, number> = { closed: 0, halfOpen: 1, open: 2, isolated: 3 }

export interface Engine {
  readonly config: Config
  readonly store: Store
  readonly countAsFailure: (error: unknown) => boolean
  readonly hub: PubSub.PubSub<Transition>
  readonly seen: Set<string>
}

const publish = (engine: Engine, key: string, records: ReadonlyArray<TransitionRecord>): Effect.Effect<void> =>
  records.length === 0 ? Effect.void : Effect.forEach(records, (r) =>
    Effect.all([
      LlmMetrics.count(LlmMetrics.breakerTransitions, { key, from: r.from, to: r.to }),
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

const firstSight = (engine: Engine, key: string, admission: Admission): Effect.Effect<void> => {
  if (engine.seen.has(key)) return Effect.void
  engine.seen.add(key)
  const state = admission._tag === "Rejected" ? admission.phase : admission.ticket.probe ? "halfOpen" : "closed"
  return LlmMetrics.setGauge(LlmMetrics.breakerState, { key }, stateCode[state])
}

const admitted = (engine: Engine, key: string, admission: Admission): Effect.Effect<Admission> =>
  admission.transitions.length === 0 && engine.seen.has(key)
    ? Effect.succeed(admission)
    : Effect.as(Effect.zipRight(publish(engine, key, admission.transitions), firstSight(engine, key, admission)), admission)

const storeDown = (error: CircuitBreakerStoreError) =>
  Effect.as(Effect.logWarning("circuit breaker store unavailable; the call runs untracked", error), undefined)

const admitKey = (engine: Engine, key: string): Effect.Effect<Admission | undefined> =>
  Effect.flatMap(Clock.currentTimeMillis, (now) =>
    Effect.matchEffect(engine.store.admit(key, now, engine.config), {
      onFailure: storeDown,
      onSuccess: (admission) => admitted(engine, key, admission)
    }))

const outcomeOf = (engine: Engine, exit: Exit.Exit<unknown, unknown>): Outcome => {
  if (Exit.isSuccess(exit)) return "success"
  if (Cause.isInterruptedOnly(exit.cause)) return "ignored"
  const failure = Cause.failureOption(exit.cause)
  return Option.isSome(failure) && engine.countAsFailure(failure.value) ? "failure" : "ignored"
}

const recordKey = (engine: Engine, key: string, ticket: Ticket, exit: Exit.Exit<unknown, unknown>) =>
  Effect.flatMap(Clock.currentTimeMillis, (now) =>
    Effect.matchEffect(engine.store.record(key, now, engine.config, ticket, outcomeOf(engine, exit)), {
      onFailure: (error) => Effect.logWarning("circuit breaker store unavailable; an outcome was not recorded", error),
      onSuccess: (records) => publish(engine, key, records)
    }))

const reject = (key: string, model: string | undefined, retryAfterMs: number): Effect.Effect<never, CircuitOpen> =>
  Effect.zipRight(
    LlmMetrics.count(LlmMetrics.breakerRejections, { key }),
    Effect.fail(new CircuitOpen({ key, retryAfter: Duration.millis(retryAfterMs), model }))
  )

export const guardEffect = <A, E, R>(
  engine: Engine,
  key: string,
  model: string | undefined,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E | CircuitOpen, R> =>
  // Admission and the outcome hook are registered without a gap: an admitted probe is always reported.
  Effect.uninterruptibleMask((restore) =>
    Effect.flatMap(admitKey(engine, key), (admission): Effect.Effect<A, E | CircuitOpen, R> => {
      if (admission === undefined) return restore(effect)
      if (admission._tag === "Rejected") return reject(key, model, admission.retryAfterMs)
      return Effect.flatMap(
        Effect.exit(restore(effect)),
        (exit) => Effect.zipRight(recordKey(engine, key, admission.ticket, exit), exit)
      )
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
