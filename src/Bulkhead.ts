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
import type { Duration, Effect } from "effect"
import { dual } from "effect/Function"
import * as internal from "./internal/bulkhead.js"
import type { InvalidOptions } from "./InvalidOptions.js"
import type { ChatRequest } from "./Llm.js"
import type * as LlmClient from "./LlmClient.js"
import type { BulkheadRejected } from "./LlmError.js"

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
export const make = (options: MakeOptions): Effect.Effect<Bulkhead, InvalidOptions> => internal.make(options)

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
export const policy = (options: PolicyOptions): Effect.Effect<Policy, InvalidOptions> => internal.policy(options)
