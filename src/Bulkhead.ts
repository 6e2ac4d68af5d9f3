/**
 * Bulkhead: at most `maxConcurrent` calls in flight per key and at most `maxQueue` waiting (first in, first
 * out); beyond that a call fails at once with `BulkheadRejected`, without calling the provider. It keeps one
 * slow or overloaded model from taking every connection, fiber and token of the process.
 *
 * A waiter that is interrupted leaves the queue (the next one moves up); a running call that is interrupted
 * (a timeout, a cancelled request) frees its slot only once it has really stopped, so the limit always counts
 * the work actually in flight. The bulkhead is per process (no store).
 *
 * @since 0.1.0
 */
import { Duration, Effect, Either, Schema, Stream } from "effect"
import { dual } from "effect/Function"
import { acquire, Compartment, type Refusal } from "./internal/bulkhead.js"
import { DurationInput } from "./internal/durationInput.js"
import { strict } from "./internal/optionSchemas.js"
import { keyFunction } from "./internal/policyKey.js"
import { decode, type InvalidOptions } from "./InvalidOptions.js"
import type { ChatRequest } from "./Llm.js"
import type * as LlmClient from "./LlmClient.js"
import { BulkheadRejected } from "./LlmError.js"
import * as LlmMetrics from "./LlmMetrics.js"
import * as Telemetry from "./internal/telemetry.js"

/**
 * Options of a bulkhead.
 *
 * @example
 * ```ts
 * import { Bulkhead } from "effect-llm-resilience"
 * const options: Bulkhead.Options = { maxConcurrent: 8, maxQueue: 32, maxWait: "10 seconds" }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Options {
  /** Calls in flight at once. 0 rejects every call. Required. */
  readonly maxConcurrent: number
  /** Calls waiting for a slot, served first in, first out. Defaults to 0 (no queue: reject when full). */
  readonly maxQueue?: number | undefined
  /** The longest a call waits in the queue before it is rejected. Defaults to no limit. */
  readonly maxWait?: Duration.DurationInput | undefined
}

/**
 * Options of {@link make}: {@link Options} plus a `key` for errors and metrics (defaults to "default").
 *
 * @example
 * ```ts
 * import { Bulkhead } from "effect-llm-resilience"
 * const options: Bulkhead.MakeOptions = { key: "embeddings", maxConcurrent: 4 }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface MakeOptions extends Options {
  readonly key?: string | undefined
}

/**
 * Options of {@link policy}: {@link Options} plus `per`, one compartment per key: "model" (the default),
 * "provider" (`metadata.provider`, else the prefix of an "openai/gpt-4o" style model name, else "default"), or
 * a function of the request (return a constant for one global limit).
 *
 * @example
 * ```ts
 * import { Bulkhead } from "effect-llm-resilience"
 * const options: Bulkhead.PolicyOptions = { maxConcurrent: 16, maxQueue: 64, per: () => "all" }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface PolicyOptions extends Options {
  readonly per?: "model" | "provider" | ((request: ChatRequest) => string) | undefined
}

/**
 * What a compartment holds now: calls `running` and `queued`, and its limits.
 *
 * @example
 * ```ts
 * import { Bulkhead } from "effect-llm-resilience"
 * const freeSlots = (s: Bulkhead.Stats) => s.maxConcurrent - s.running
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Stats {
  readonly key: string
  readonly running: number
  readonly queued: number
  readonly maxConcurrent: number
  readonly maxQueue: number
}

const NonNegativeInt = Schema.Int.pipe(Schema.greaterThanOrEqualTo(0))
const Per = Schema.Union(
  Schema.Literal("model", "provider"),
  Schema.declare((u: unknown): u is (request: ChatRequest) => string => typeof u === "function", {
    identifier: "Function",
    message: () => "Expected \"model\", \"provider\" or a function of the request"
  })
)
const limitFields = {
  maxConcurrent: NonNegativeInt,
  maxQueue: Schema.optional(NonNegativeInt),
  maxWait: Schema.optional(DurationInput)
}
// Misspelt names are reported, not ignored; `make` takes a `key`, `policy` a `per`.
const MakeSchema = Schema.Struct({ ...limitFields, key: Schema.optional(Schema.NonEmptyString) }).annotations(strict)
const PolicySchema = Schema.Struct({ ...limitFields, per: Schema.optional(Per) }).annotations(strict)

interface Limits {
  readonly key: string | undefined
  readonly maxConcurrent: number
  readonly maxQueue: number
  readonly maxWait: Duration.Duration | undefined
  readonly per: PolicyOptions["per"]
}

const decodeOptions = (input: unknown, kind: "make" | "policy"): Either.Either<Limits, InvalidOptions> =>
  kind === "make"
    ? Either.map(decode(MakeSchema, "Bulkhead", input), (o) => limitsOf(o, o.key, undefined))
    : Either.map(decode(PolicySchema, "Bulkhead", input), (o) => limitsOf(o, undefined, o.per))

const limitsOf = (
  o: { readonly maxConcurrent: number; readonly maxQueue?: number | undefined; readonly maxWait?: Duration.Duration | undefined },
  key: string | undefined,
  per: PolicyOptions["per"]
): Limits => ({ key, maxConcurrent: o.maxConcurrent, maxQueue: o.maxQueue ?? 0, maxWait: o.maxWait, per })

const fromEither = <A, E>(either: Either.Either<A, E>): Effect.Effect<A, E> =>
  Either.isRight(either) ? Effect.succeed(either.right) : Effect.fail(either.left)

const statsOf = (key: string, limits: Limits, compartment: Compartment | undefined): Stats => ({
  key,
  running: compartment?.running ?? 0,
  queued: compartment?.queued ?? 0,
  maxConcurrent: limits.maxConcurrent,
  maxQueue: limits.maxQueue
})

const refuse = (key: string, limits: Limits, model: string | undefined) => (_: Refusal) =>
  Effect.zipRight(
    Effect.zipRight(LlmMetrics.count(LlmMetrics.bulkheadRejections, { key }), Telemetry.bulkheadRejected(key)),
    Effect.fail(new BulkheadRejected({ key, maxConcurrent: limits.maxConcurrent, maxQueue: limits.maxQueue, model }))
  )

const guardEffect = <A, E, R>(
  resolve: () => Compartment,
  key: string,
  limits: Limits,
  model: string | undefined,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E | BulkheadRejected, R> =>
  Effect.uninterruptibleMask((restore) =>
    acquire(resolve, restore, limits.maxWait).pipe(
      Effect.catchAll(refuse(key, limits, model)),
      // The slot is released only when the effect has stopped, interrupted or not.
      Effect.flatMap((compartment) =>
        Effect.flatMap(Effect.exit(restore(effect)), (exit) => {
          compartment.release()
          return exit
        })
      )
    )
  )

const guardStream = <A, E, R>(
  resolve: () => Compartment,
  key: string,
  limits: Limits,
  model: string | undefined,
  stream: Stream.Stream<A, E, R>
): Stream.Stream<A, E | BulkheadRejected, R> =>
  Stream.unwrapScoped(
    Effect.uninterruptibleMask((restore) =>
      acquire(resolve, restore, limits.maxWait).pipe(
        Effect.catchAll(refuse(key, limits, model)),
        Effect.flatMap((compartment) => Effect.addFinalizer(() => Effect.sync(() => compartment.release()))),
        Effect.as(stream)
      )
    )
  )

/**
 * One bulkhead compartment. Guard effects with {@link withBulkhead}.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Bulkhead } from "effect-llm-resilience"
 * const load = (bulkhead: Bulkhead.Bulkhead) => Effect.map(bulkhead.stats, (s) => `${s.running} running, ${s.queued} queued`)
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Bulkhead {
  readonly key: string
  /** Calls running and queued now. */
  readonly stats: Effect.Effect<Stats>
  /** Runs `effect` in a slot (waiting in the queue if needed). */
  readonly execute: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | BulkheadRejected, R>
}

/**
 * Builds one bulkhead. Fails with InvalidOptions (every failing path listed) when the options are invalid.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Bulkhead } from "effect-llm-resilience"
 * declare const embed: Effect.Effect<ReadonlyArray<number>, Error>
 * const program = Effect.gen(function* () {
 *   const bulkhead = yield* Bulkhead.make({ key: "embeddings", maxConcurrent: 4, maxQueue: 16 })
 *   return yield* embed.pipe(Bulkhead.withBulkhead(bulkhead))
 * })
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const make = (options: MakeOptions): Effect.Effect<Bulkhead, InvalidOptions> =>
  Effect.flatMap(fromEither(decodeOptions(options, "make")), (limits) =>
    Effect.sync(() => {
      const key = limits.key ?? "default"
      const compartment = new Compartment(limits.maxConcurrent, limits.maxQueue, () => {})
      return {
        key,
        stats: Effect.sync(() => statsOf(key, limits, compartment)),
        execute: (effect) => guardEffect(() => compartment, key, limits, undefined, effect)
      }
    }))

/**
 * Runs an effect in a bulkhead slot: at once when one is free, after the calls queued before it otherwise, or
 * fails at once with `BulkheadRejected` when the queue is full. Adds `BulkheadRejected` to the error channel.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Bulkhead } from "effect-llm-resilience"
 * declare const bulkhead: Bulkhead.Bulkhead
 * const guarded = Effect.succeed(1).pipe(Bulkhead.withBulkhead(bulkhead))
 * const same = Bulkhead.withBulkhead(Effect.succeed(1), bulkhead)
 * ```
 * @since 0.1.0
 * @category Combinators
 */
export const withBulkhead: {
  (bulkhead: Bulkhead): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | BulkheadRejected, R>
  <A, E, R>(self: Effect.Effect<A, E, R>, bulkhead: Bulkhead): Effect.Effect<A, E | BulkheadRejected, R>
} = dual(
  2,
  <A, E, R>(self: Effect.Effect<A, E, R>, bulkhead: Bulkhead): Effect.Effect<A, E | BulkheadRejected, R> =>
    bulkhead.execute(self)
)

/**
 * The bulkhead policy: an `LlmClient.Policy` with one compartment per key, plus its `stats`.
 *
 * @example
 * ```ts
 * import { Bulkhead } from "effect-llm-resilience"
 * const statsFor = (policy: Bulkhead.Policy) => policy.stats("gpt-4o")
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Policy extends LlmClient.Policy {
  /** The compartment key of a request. */
  readonly keyOf: (request: ChatRequest) => string
  /** Calls running and queued for one key. */
  readonly stats: (key: string) => Effect.Effect<Stats>
}

/**
 * The bulkhead as an LLM policy, one compartment per model (or provider, or any key of the request). A stream
 * holds its slot until it ends. Fails with InvalidOptions when the options are invalid.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { Bulkhead, FakeLlm, LlmClient } from "effect-llm-resilience"
 * const Live = LlmClient.layerWith(Bulkhead.policy({ maxConcurrent: 8, maxQueue: 32 })).pipe(
 *   Layer.provide(FakeLlm.layer(FakeLlm.reply("ok")))
 * )
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const policy = (options: PolicyOptions): Effect.Effect<Policy, InvalidOptions> =>
  Effect.flatMap(fromEither(decodeOptions(options, "policy")), (limits) =>
    Effect.sync(() => {
      const keyOf = keyFunction(limits.per)
      const compartments = new Map<string, Compartment>()
      // Idle compartments are dropped, so keys derived from requests do not accumulate.
      const compartmentOf = (key: string): Compartment => {
        let compartment = compartments.get(key)
        if (compartment === undefined) {
          compartment = new Compartment(limits.maxConcurrent, limits.maxQueue, () => compartments.delete(key))
          compartments.set(key, compartment)
        }
        return compartment
      }
      return {
        name: "bulkhead",
        keyOf,
        stats: (key) => Effect.sync(() => statsOf(key, limits, compartments.get(key))),
        // A `per` function that throws is a defect of the call, never a synchronous throw out of `complete`.
        complete: (next) => (request) =>
          Effect.suspend(() => {
            const key = keyOf(request)
            return guardEffect(() => compartmentOf(key), key, limits, request.model, next(request))
          }),
        stream: (next) => (request) =>
          Stream.suspend(() => {
            const key = keyOf(request)
            return guardStream(() => compartmentOf(key), key, limits, request.model, next(request))
          })
      }
    }))
