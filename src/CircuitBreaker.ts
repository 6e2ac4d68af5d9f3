/**
 * Circuit breaker: stops calling a failing provider for a while, then lets a few probe calls through to see
 * whether it has recovered.
 *
 * - Closed: calls go through; failures are counted (consecutive, or as a rate over a window of calls or time,
 *   plus an optional slow-call rate). Crossing a threshold opens the circuit.
 * - Open: calls fail at once with `CircuitOpen` (its `retryAfter` says when it half-opens); the provider is not
 *   called. After `halfOpenAfter` it half-opens (a fixed duration, or a backoff growing with each failed probe).
 * - Half-open: exactly `halfOpenProbes` calls are admitted; the others fail at once. All probes succeeding
 *   closes the circuit with fresh counts; one failing reopens it.
 *
 * The state lives behind {@link CircuitBreakerStore}, a narrow atomic store (one method = one atomic step of
 * the pure state machine {@link decide}), so several processes can share a breaker. Transitions happen inside
 * those steps, driven by the time passed in from the Effect clock: there are no timers to lose.
 *
 * @since 0.1.0
 */
import {
  Context,
  Duration,
  Effect,
  Either,
  Layer,
  Option,
  PubSub,
  Queue,
  Schema,
  type Scope,
  Stream
} from "effect"
import * as BoundedKeys from "./internal/boundedKeys.js"
import * as internal from "./internal/breaker.js"
import { decodeOptions } from "./internal/breakerOptions.js"
import * as shell from "./internal/breakerEngine.js"
import * as Memory from "./internal/breakerMemory.js"
import { AnyFunction, strict } from "./internal/optionSchemas.js"
import { keyFunction } from "./internal/policyKey.js"
import { decode, type InvalidOptions } from "./InvalidOptions.js"
import type { ChatRequest } from "./Llm.js"
import type * as LlmClient from "./LlmClient.js"
import { CircuitOpen, isLlmError, isRetryable } from "./LlmError.js"

// ---------------------------------------------------------------------------------------------------------------
// Models

/**
 * The state of a circuit: `closed` (calls flow), `open` (calls rejected), `halfOpen` (a few probes admitted)
 * or `isolated` (held open by hand until {@link CircuitBreaker.reset}).
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "effect-llm-resilience"
 * const state: CircuitBreaker.State = "halfOpen"
 * ```
 * @since 0.1.0
 * @category Models
 */
export type State = internal.Phase

/**
 * Why a transition happened: `consecutiveFailures`, `failureRate`, `slowCallRate` (closed → open),
 * `breakElapsed` (open → half-open), `probesSucceeded` (half-open → closed), `probeFailed` / `probeSlow`
 * (half-open → open), `isolated` and `reset` (manual).
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "effect-llm-resilience"
 * const reason: CircuitBreaker.Reason = "failureRate"
 * ```
 * @since 0.1.0
 * @category Models
 */
export type Reason = internal.Reason

/**
 * One state change of one key, published exactly once (by the call that caused it). `at` is the Effect clock
 * time in milliseconds when it took effect; `breakDuration` is set when the circuit opens.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "effect-llm-resilience"
 * const describe = (t: CircuitBreaker.Transition) => `${t.key}: ${t.from} → ${t.to} (${t.reason})`
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Transition {
  readonly key: string
  readonly from: State
  readonly to: State
  readonly reason: Reason
  readonly at: number
  readonly breakDuration: Option.Option<Duration.Duration>
}

/**
 * What a key looks like now: its state, how long until a call may be admitted (`retryAfter`, zero when calls
 * flow), and the counts of the current closed period (`calls`, `failures`, `slowCalls` are the window's).
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "effect-llm-resilience"
 * const isOpen = (s: CircuitBreaker.Status) => s.state === "open"
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Status {
  readonly key: string
  readonly state: State
  readonly retryAfter: Duration.Duration
  readonly consecutiveFailures: number
  readonly calls: number
  readonly failures: number
  readonly slowCalls: number
}

/**
 * A sampling window: the last `calls` outcomes (at most 10 000), or the outcomes of the last `duration` kept in
 * `buckets` sub-windows (defaults to 10, at most 1 000; an outcome expires when its bucket leaves the window).
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "effect-llm-resilience"
 * const byCount: CircuitBreaker.Window = { calls: 20 }
 * const byTime: CircuitBreaker.Window = { duration: "1 minute", buckets: 6 }
 * ```
 * @since 0.1.0
 * @category Models
 */
export type Window =
  | { readonly calls: number }
  | { readonly duration: Duration.DurationInput; readonly buckets?: number | undefined }

/**
 * Options of a circuit breaker. Every duration accepts any `Duration.DurationInput`.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "effect-llm-resilience"
 * const options: CircuitBreaker.Options = {
 *   failureRate: { threshold: 0.5, minimumCalls: 10, window: { duration: "1 minute" } },
 *   halfOpenAfter: { initial: "10 seconds", max: "5 minutes" }
 * }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Options {
  /**
   * Opens after this many consecutive counted failures. Defaults to 5 when `failureRate` is not set (else off).
   * Both may be set: the first rule that trips opens the circuit.
   */
  readonly failureThreshold?: number | undefined
  /**
   * Opens when failures / calls ≥ `threshold` (0 < threshold ≤ 1) over `window`, once the window holds at least
   * `minimumCalls` calls (defaults to 10, or the window size if smaller). `window` defaults to
   * `{ duration: "1 minute" }` (10 buckets of 6 seconds).
   */
  readonly failureRate?: {
    readonly threshold: number
    readonly minimumCalls?: number | undefined
    readonly window?: Window | undefined
  } | undefined
  /**
   * A call taking at least `duration` is slow (successful or not); opens when slow / calls ≥ `rateThreshold`
   * over the same window as `failureRate` (or its own `window` / `minimumCalls`, same defaults, when
   * `failureRate` is not set). A slow probe reopens the circuit. Off by default.
   */
  readonly slowCall?: {
    readonly duration: Duration.DurationInput
    readonly rateThreshold: number
    readonly minimumCalls?: number | undefined
    readonly window?: Window | undefined
  } | undefined
  /**
   * How long the circuit stays open before half-opening: a duration (defaults to "30 seconds"), or a backoff
   * `{ initial, max, factor }` (factor defaults to 2): the n-th break in a row lasts initial · factor^(n-1),
   * at most `max`; it starts over when the circuit closes.
   */
  readonly halfOpenAfter?:
    | Duration.DurationInput
    | {
      readonly initial: Duration.DurationInput
      readonly max: Duration.DurationInput
      readonly factor?: number | undefined
    }
    | undefined
  /**
   * How many calls a half-open period admits (the others are rejected at once); all of them must succeed to
   * close. Defaults to 1. A probe that is interrupted or fails with an error that does not count frees its slot.
   */
  readonly halfOpenProbes?: number | undefined
  /**
   * A probe still unreported after this long is written off and its slot given to another caller, so a probe
   * lost with a crashed process cannot hold a shared breaker half-open. Defaults to "5 minutes".
   */
  readonly probeTimeout?: Duration.DurationInput | undefined
  /**
   * Which errors count as failures. Defaults to {@link isFailure}: retryable LlmErrors (rate limits, 5xx,
   * timeouts, connection errors, malformed responses, cut streams) and any error that is not an LlmError.
   * Interruptions and defects never count.
   */
  readonly countAsFailure?: ((error: unknown) => boolean) | undefined
}

/**
 * Options of {@link make}: {@link Options} plus the store `key` (defaults to "default"). Breakers that share a
 * store and a key share their state — on purpose, that is how processes share one breaker.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "effect-llm-resilience"
 * const options: CircuitBreaker.MakeOptions = { key: "search-api", failureThreshold: 3 }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface MakeOptions extends Options {
  readonly key?: string | undefined
}

/**
 * Options of {@link policy}: {@link Options} plus `per`, which picks one breaker per key: "model" (the default),
 * "provider" (`metadata.provider`, else the prefix of an "openai/gpt-4o" style model name, else "default"),
 * or a function of the request.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "effect-llm-resilience"
 * const options: CircuitBreaker.PolicyOptions = { per: (request) => request.metadata?.region ?? "eu" }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface PolicyOptions extends Options {
  readonly per?: "model" | "provider" | ((request: ChatRequest) => string) | undefined
}

// ---------------------------------------------------------------------------------------------------------------
// Store

/**
 * The serializable configuration a store receives with each operation (durations in milliseconds).
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "effect-llm-resilience"
 * const keyOf = (config: CircuitBreaker.Config) => JSON.stringify(config)
 * ```
 * @since 0.1.0
 * @category Store
 */
export type Config = internal.Config

/**
 * The serializable state of one key, as a store keeps it (plain JSON).
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "effect-llm-resilience"
 * const saved = JSON.stringify(CircuitBreaker.initialState)
 * ```
 * @since 0.1.0
 * @category Store
 */
export type StoredState = internal.State

/**
 * What an admitted call carries until its outcome is recorded: the generation it was admitted in (an outcome
 * of an older generation is ignored), whether it is a probe, and when it started.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "effect-llm-resilience"
 * const ticket: CircuitBreaker.Ticket = { generation: 0, probe: false, startedAt: 0 }
 * ```
 * @since 0.1.0
 * @category Store
 */
export type Ticket = internal.Ticket

/**
 * How a call ended, as the breaker sees it: `ignored` (an error that does not count, an interruption, a defect)
 * neither helps nor hurts, and frees a probe slot.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "effect-llm-resilience"
 * const outcome: CircuitBreaker.Outcome = "failure"
 * ```
 * @since 0.1.0
 * @category Store
 */
export type Outcome = internal.Outcome

/**
 * The store's answer to `admit`: admitted (as a normal call or a probe, see the ticket) or rejected.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "effect-llm-resilience"
 * const isProbe = (a: CircuitBreaker.Admission) => a._tag === "Admitted" && a.ticket.probe
 * ```
 * @since 0.1.0
 * @category Store
 */
export type Admission = internal.Admission

/**
 * A transition as the store returns it (serializable; the breaker adds the key and publishes it).
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "effect-llm-resilience"
 * const opened = (t: CircuitBreaker.TransitionRecord) => t.to === "open"
 * ```
 * @since 0.1.0
 * @category Store
 */
export type TransitionRecord = internal.Transition

/**
 * The store's answer to `observe`: the key's status and any transition that time alone caused.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "effect-llm-resilience"
 * const phase = (o: CircuitBreaker.Observation) => o.status.phase
 * ```
 * @since 0.1.0
 * @category Store
 */
export interface Observation {
  readonly status: internal.Status
  readonly transitions: ReadonlyArray<TransitionRecord>
}

/**
 * The circuit breaker state machine, pure: `decide(state, now, event)` returns the event's result and the next
 * state. Every store runs it as one atomic step per key (the Redis store inside an optimistic transaction).
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "effect-llm-resilience"
 * declare const config: CircuitBreaker.Config
 * const [admission, next] = CircuitBreaker.decide(CircuitBreaker.initialState, 0, { _tag: "Admit", config })
 * ```
 * @since 0.1.0
 * @category Store
 */
export const decide: <E extends internal.Event>(
  state: StoredState,
  now: number,
  event: E
) => readonly [internal.Result<E>, StoredState] = internal.decide

/**
 * The state of a key never seen: closed, no counts.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "effect-llm-resilience"
 * CircuitBreaker.initialState.phase // "closed"
 * ```
 * @since 0.1.0
 * @category Store
 */
export const initialState: StoredState = internal.initial

/**
 * A store operation failed (e.g. Redis unreachable). Guarded calls fail open (they run, untracked, with a
 * logged warning) so a store outage never becomes a provider outage; `state`, `isolate` and `reset` report it.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "effect-llm-resilience"
 * const error = new CircuitBreaker.CircuitBreakerStoreError({ operation: "admit", reason: "connection refused" })
 * ```
 * @since 0.1.0
 * @category Errors
 */
export class CircuitBreakerStoreError extends Schema.TaggedError<CircuitBreakerStoreError>(
  "effect-llm-resilience/CircuitBreakerStoreError"
)("CircuitBreakerStoreError", { operation: Schema.String, reason: Schema.String }) {
  override get message(): string {
    return `Circuit breaker store ${this.operation} failed: ${this.reason}`
  }
}

/**
 * The store's operations. Each is one atomic step on one key; `now` comes from the caller's Effect clock.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { CircuitBreaker } from "effect-llm-resilience"
 * const admitOnce = (store: CircuitBreaker.Store, config: CircuitBreaker.Config) => store.admit("gpt-4o", 0, config)
 * ```
 * @since 0.1.0
 * @category Store
 */
export interface Store {
  /** Admits a call (as a normal call or a probe) or rejects it with the time until it may be admitted. */
  readonly admit: (key: string, now: number, config: Config) => Effect.Effect<Admission, CircuitBreakerStoreError>
  /** Records the outcome of an admitted call; returns the transitions it caused (at most a few). */
  readonly record: (
    key: string,
    now: number,
    config: Config,
    ticket: Ticket,
    outcome: Outcome
  ) => Effect.Effect<ReadonlyArray<TransitionRecord>, CircuitBreakerStoreError>
  /** Reads a key's status (applying the transitions time alone causes). */
  readonly observe: (key: string, now: number, config: Config) => Effect.Effect<Observation, CircuitBreakerStoreError>
  /** Holds a key open until `reset`. */
  readonly isolate: (
    key: string,
    now: number,
    config: Config
  ) => Effect.Effect<ReadonlyArray<TransitionRecord>, CircuitBreakerStoreError>
  /** Closes a key with fresh counts. */
  readonly reset: (
    key: string,
    now: number,
    config: Config
  ) => Effect.Effect<ReadonlyArray<TransitionRecord>, CircuitBreakerStoreError>
  /**
   * The same steps run synchronously, for a store whose state is in this process (the memory store offers them).
   * When present the breaker takes its admission and outcome steps through them, with no Effect step each; they
   * must be the very steps the Effect methods run. A remote store leaves this out.
   */
  readonly sync?: StoreSync | undefined
}

/**
 * The synchronous form of a store's hot-path steps (see {@link Store}'s `sync`); each is atomic, as JavaScript runs
 * one fiber at a time.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { CircuitBreaker } from "effect-llm-resilience"
 * const store = Effect.runSync(CircuitBreaker.makeStoreMemory)
 * const sync: CircuitBreaker.StoreSync | undefined = store.sync
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface StoreSync {
  /** Whether the key is closed now (it then admits plain calls, never probes). */
  readonly isClosed: (key: string) => boolean
  readonly admit: (key: string, now: number, config: Config) => Admission
  readonly record: (
    key: string,
    now: number,
    config: Config,
    ticket: Ticket,
    outcome: Outcome
  ) => ReadonlyArray<TransitionRecord>
  /** Records the outcome only if that causes no transition (then nothing needs publishing); says whether it did. */
  readonly recordIfQuiet: (key: string, now: number, config: Config, ticket: Ticket, outcome: Outcome) => boolean
}

/**
 * Where breaker state lives. Provide {@link layerStoreMemory} (one process) or the Redis store (shared).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { CircuitBreaker } from "effect-llm-resilience"
 * const program = Effect.flatMap(CircuitBreaker.CircuitBreakerStore, (store) => Effect.succeed(store))
 * ```
 * @since 0.1.0
 * @category Tags
 */
export class CircuitBreakerStore extends Context.Tag("effect-llm-resilience/CircuitBreakerStore")<
  CircuitBreakerStore,
  Store
>() {}

/**
 * Builds an in-memory store: a map from key to state, each operation one synchronous (hence atomic) step
 * running {@link decide}. It keeps one small entry per key whose breaker is not back to its fresh state (closed,
 * nothing counted), at most 100,000 (the least recently used key goes first, counted in
 * `llm_state_evictions_total{store="circuit-breaker"}`).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { CircuitBreaker } from "effect-llm-resilience"
 * const store = Effect.runSync(CircuitBreaker.makeStoreMemory)
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const makeStoreMemory: Effect.Effect<Store> = Effect.sync(() => Memory.makeStore(BoundedKeys.DEFAULT_MAX_KEYS))

/**
 * Options of the in-memory store.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "effect-llm-resilience"
 * const options: CircuitBreaker.StoreMemoryOptions = { maxKeys: 10_000 }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface StoreMemoryOptions {
  /**
   * The most breaker keys held at once. A breaker back to its fresh state (closed, nothing counted) is forgotten at
   * once; past the bound the least recently used key is evicted (counted in
   * `llm_state_evictions_total{store="circuit-breaker"}`). Defaults to 100,000.
   */
  readonly maxKeys?: number | undefined
}

/**
 * Builds an in-memory store with options (see {@link makeStoreMemory}), failing with InvalidOptions on bad ones.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { CircuitBreaker } from "effect-llm-resilience"
 * const store = Effect.runSync(CircuitBreaker.makeStoreMemoryWith({ maxKeys: 10_000 }))
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const makeStoreMemoryWith = (options: StoreMemoryOptions = {}): Effect.Effect<Store, InvalidOptions> =>
  Effect.map(decode(BoundedKeys.StoreMemoryOptions, "CircuitBreaker.makeStoreMemoryWith", options), (valid) =>
    Memory.makeStore(valid.maxKeys ?? BoundedKeys.DEFAULT_MAX_KEYS))

/**
 * An in-memory {@link CircuitBreakerStore}: breakers built from one instance of the layer share state by key.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { CircuitBreaker, FakeLlm, LlmClient } from "effect-llm-resilience"
 * const Live = LlmClient.layerWith(CircuitBreaker.policy({ per: "model" })).pipe(
 *   Layer.provide(FakeLlm.layer(FakeLlm.reply("ok"))),
 *   Layer.provide(CircuitBreaker.layerStoreMemory)
 * )
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layerStoreMemory: Layer.Layer<CircuitBreakerStore> = Layer.effect(CircuitBreakerStore, makeStoreMemory)

// ---------------------------------------------------------------------------------------------------------------
// Engine

/**
 * The default failure classification: a retryable LlmError (RateLimited, ServerError, Timeout, ConnectionError,
 * MalformedResponse, StreamTruncated) or an error that is not an LlmError. BadRequest, AuthError,
 * ContextTooLong, QuotaExhausted, CircuitOpen and the other non-retryable LlmErrors do not count.
 *
 * @example
 * ```ts
 * import { CircuitBreaker, LlmError } from "effect-llm-resilience"
 * CircuitBreaker.isFailure(new LlmError.ServerError({ status: 503 })) // true
 * CircuitBreaker.isFailure(new LlmError.BadRequest({})) // false
 * ```
 * @since 0.1.0
 * @category Guards
 */
export const isFailure = (error: unknown): boolean => (isLlmError(error) ? isRetryable(error) : true)

const makeEngine = (options: Options, kind: "make" | "policy") =>
  Effect.gen(function* () {
    const decoded = yield* Either.match(decodeOptions("CircuitBreaker", options, kind), {
      onLeft: (error) => Effect.fail(error),
      onRight: (value) => Effect.succeed(value)
    })
    const store = yield* CircuitBreakerStore
    const hub = yield* PubSub.unbounded<Transition>()
    const engine: shell.Engine = {
      config: decoded.config,
      store,
      sync: store.sync,
      countAsFailure: decoded.countAsFailure ?? isFailure,
      hub,
      seen: new Set()
    }
    return { engine, decoded }
  })

// ---------------------------------------------------------------------------------------------------------------
// One breaker

/**
 * Options of one guarded call ({@link withBreaker}, `breaker.execute`), over the effect's error type `E`.
 *
 * @example
 * ```ts
 * import { Data } from "effect"
 * import { CircuitBreaker } from "effect-llm-resilience"
 * class HttpFailure extends Data.TaggedError("HttpFailure")<{ status: number }> {}
 * const options: CircuitBreaker.CallOptions<HttpFailure> = { isFailure: (e) => e.status >= 500 }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface CallOptions<E> {
  /**
   * Which of the effect's errors count as failures, in place of the breaker's `countAsFailure` (for these calls
   * only). An error it rejects neither counts nor resets the count. Defaults to the breaker's `countAsFailure`
   * ({@link isFailure} unless set: every error that is not an LlmError counts). Interruptions and defects never
   * count.
   */
  readonly isFailure?: ((error: E) => boolean) | undefined
}

const CallOptionsSchema = Schema.Struct({ isFailure: Schema.optional(AnyFunction) }).annotations(strict)
// Options objects are validated once (a data-first `withBreaker(effect, breaker, options)` in a loop pays a lookup).
const validCallOptions = new WeakSet<object>()

/** The call's classifier, after validating its options (throws InvalidOptions, every failing path listed). */
const callClassifier = <E>(options: CallOptions<E> | undefined): shell.IsFailure | undefined => {
  if (options === undefined) return undefined
  if (!validCallOptions.has(options)) {
    Either.getOrThrowWith(decode(CallOptionsSchema, "CircuitBreaker.withBreaker", options), (error) => error)
    validCallOptions.add(options)
  }
  // The breaker passes it only the effect's own failures, which are E.
  return options.isFailure as shell.IsFailure | undefined
}

/**
 * One circuit breaker (one store key). Guard effects with {@link withBreaker}.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { CircuitBreaker } from "effect-llm-resilience"
 * const report = (breaker: CircuitBreaker.CircuitBreaker) =>
 *   Effect.map(breaker.state, (status) => `${breaker.key} is ${status.state}`)
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface CircuitBreaker {
  readonly key: string
  /** The current status (reading it applies a break that has elapsed). */
  readonly state: Effect.Effect<Status, CircuitBreakerStoreError>
  /** The transitions this breaker causes from now on (each exactly once). */
  readonly transitions: Stream.Stream<Transition>
  /** A subscription to the transitions, open for the scope (subscribed when this returns). */
  readonly subscribe: Effect.Effect<Queue.Dequeue<Transition>, never, Scope.Scope>
  /** Holds the circuit open (every call rejected) until `reset`. */
  readonly isolate: Effect.Effect<void, CircuitBreakerStoreError>
  /** Closes the circuit with fresh counts. */
  readonly reset: Effect.Effect<void, CircuitBreakerStoreError>
  /**
   * Runs `effect` through the breaker; `options.isFailure` overrides `countAsFailure` for this call. Throws
   * InvalidOptions on invalid options.
   */
  readonly execute: <A, E, R>(
    effect: Effect.Effect<A, E, R>,
    options?: CallOptions<E>
  ) => Effect.Effect<A, E | CircuitOpen, R>
}

/**
 * Builds one circuit breaker over the {@link CircuitBreakerStore} in context. Fails with InvalidOptions (every
 * failing path listed) when the options are invalid.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { CircuitBreaker } from "effect-llm-resilience"
 * declare const callSearch: Effect.Effect<string, Error>
 * const program = Effect.gen(function* () {
 *   const breaker = yield* CircuitBreaker.make({ key: "search", failureThreshold: 3, halfOpenAfter: "10 seconds" })
 *   return yield* callSearch.pipe(CircuitBreaker.withBreaker(breaker))
 * }).pipe(Effect.provide(CircuitBreaker.layerStoreMemory))
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const make = (options: MakeOptions = {}): Effect.Effect<CircuitBreaker, InvalidOptions, CircuitBreakerStore> =>
  Effect.map(makeEngine(options, "make"), ({ decoded, engine }) => {
    const key = decoded.key ?? "default"
    return {
      key,
      state: shell.statusOf(engine, key),
      transitions: Stream.fromPubSub(engine.hub),
      subscribe: PubSub.subscribe(engine.hub),
      isolate: shell.manual(engine, key, "isolate"),
      reset: shell.manual(engine, key, "reset"),
      execute: (effect, options) => shell.guardEffect(engine, key, undefined, effect, callClassifier(options))
    }
  })

/**
 * Runs an effect through a circuit breaker (dual), whatever its error type `E`: rejected at once with
 * `CircuitOpen` (without running it) while the circuit is open, its outcome recorded otherwise. The result's
 * error is `E | CircuitOpen`; A and R are unchanged.
 *
 * Which errors count: `isFailure` when given (for these calls), else the breaker's `countAsFailure`, which
 * defaults to {@link isFailure}: retryable LlmErrors and every error that is not an LlmError. Invalid options
 * throw InvalidOptions when the combinator is built.
 *
 * @example
 * ```ts
 * import { Data, Effect } from "effect"
 * import { CircuitBreaker } from "effect-llm-resilience"
 * declare const breaker: CircuitBreaker.CircuitBreaker
 * const guarded = Effect.succeed(1).pipe(CircuitBreaker.withBreaker(breaker))
 * const same = CircuitBreaker.withBreaker(Effect.succeed(1), breaker)
 *
 * class HttpFailure extends Data.TaggedError("HttpFailure")<{ status: number }> {}
 * declare const fetchUser: Effect.Effect<string, HttpFailure>
 * // a 404 is the caller's problem, not the server's: only 5xx count
 * const user = fetchUser.pipe(CircuitBreaker.withBreaker(breaker, { isFailure: (e) => e.status >= 500 }))
 * // Effect<string, HttpFailure | CircuitOpen>
 * ```
 * @since 0.1.0
 * @category Combinators
 */
export const withBreaker: {
  (breaker: CircuitBreaker): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | CircuitOpen, R>
  <E>(
    breaker: CircuitBreaker,
    options: CallOptions<E>
  ): <A, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | CircuitOpen, R>
  <A, E, R>(
    self: Effect.Effect<A, E, R>,
    breaker: CircuitBreaker,
    options?: CallOptions<E>
  ): Effect.Effect<A, E | CircuitOpen, R>
} = function(...args: ReadonlyArray<unknown>) {
  if (Effect.isEffect(args[0])) {
    return (args[1] as CircuitBreaker).execute(args[0], args[2] as CallOptions<unknown> | undefined)
  }
  const breaker = args[0] as CircuitBreaker
  const options = args[1] as CallOptions<unknown> | undefined
  callClassifier(options)
  return (self: Effect.Effect<unknown, unknown, unknown>) => breaker.execute(self, options)
} as typeof withBreaker

// ---------------------------------------------------------------------------------------------------------------
// Policy

/**
 * The breaker policy: an `LlmClient.Policy` (complete and stream) with one breaker per key, plus its controls.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { CircuitBreaker } from "effect-llm-resilience"
 * const openKeys = (policy: CircuitBreaker.Policy, keys: ReadonlyArray<string>) =>
 *   Effect.forEach(keys, (key) => policy.state(key))
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Policy extends LlmClient.Policy {
  /** The breaker key of a request. */
  readonly keyOf: (request: ChatRequest) => string
  /** The status of one key. */
  readonly state: (key: string) => Effect.Effect<Status, CircuitBreakerStoreError>
  /** The transitions of every key, from now on. */
  readonly transitions: Stream.Stream<Transition>
  /** A subscription to the transitions of every key, open for the scope. */
  readonly subscribe: Effect.Effect<Queue.Dequeue<Transition>, never, Scope.Scope>
  /** Holds one key open until `reset`. */
  readonly isolate: (key: string) => Effect.Effect<void, CircuitBreakerStoreError>
  /** Closes one key with fresh counts. */
  readonly reset: (key: string) => Effect.Effect<void, CircuitBreakerStoreError>
}

/**
 * The circuit breaker as an LLM policy, one breaker per model (or provider, or any key of the request). An open
 * breaker fails the call with `CircuitOpen { key, retryAfter, model }` without calling the provider; a stream's
 * outcome is recorded when it ends. Needs a {@link CircuitBreakerStore}; fails with InvalidOptions.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { CircuitBreaker, FakeLlm, LlmClient } from "effect-llm-resilience"
 * const Live = LlmClient.layerWith(
 *   CircuitBreaker.policy({ per: "model", failureRate: { threshold: 0.5, minimumCalls: 10 }, halfOpenAfter: "30 seconds" })
 * ).pipe(Layer.provide(FakeLlm.layer(FakeLlm.reply("ok"))), Layer.provide(CircuitBreaker.layerStoreMemory))
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const policy = (options: PolicyOptions = {}): Effect.Effect<Policy, InvalidOptions, CircuitBreakerStore> =>
  Effect.map(makeEngine(options, "policy"), ({ decoded, engine }) => {
    const keyOf = keyFunction(decoded.per)
    return {
      name: "CircuitBreaker",
      // A `per` function that throws is a defect of the call, never a synchronous throw out of `complete`.
      complete: (next) => (request) =>
        Effect.suspend(() => shell.guardEffect(engine, keyOf(request), request.model, next(request))),
      stream: (next) => (request) =>
        Stream.suspend(() => shell.guardStream(engine, keyOf(request), request.model, next(request))),
      // With a store in this process the breaker waits on nothing: a Timeout above can hand its deadline down.
      keepsDeadline: engine.sync !== undefined,
      keyOf,
      state: (key) => shell.statusOf(engine, key),
      transitions: Stream.fromPubSub(engine.hub),
      subscribe: PubSub.subscribe(engine.hub),
      isolate: (key) => shell.manual(engine, key, "isolate"),
      reset: (key) => shell.manual(engine, key, "reset")
    }
  })
