/**
 * Fallback chains: when a model fails with an error another model can rescue (an outage, an open breaker, a
 * missing model, a content filter, a too-long prompt), the same request goes to the next model of an ordered
 * list, possibly on another client (another provider, or a local OpenAI-compatible server as the last tier).
 * When every model fails, the call fails with `AllModelsFailed` holding each model's error.
 *
 * @since 0.1.0
 */
import { Context, Effect, Either, Layer } from "effect"
import type { Scope } from "effect"
import * as internal from "./internal/fallback.js"
import * as LlmClient from "./LlmClient.js"
import type * as LlmError from "./LlmError.js"

/**
 * One tier of a chain: a model, served by the client below the policy, or by its own `client`.
 *
 * A tier with its own client bypasses the policies below Fallback (Retry, CircuitBreaker, Timeout): decorate
 * that client with the policies it needs (`LlmClient.decorate(client, Retry.policy(), Timeout.attempt("30 seconds"))`).
 *
 * @example
 * ```ts
 * import { Fallback, LlmClient } from "effect-llm-resilience"
 * declare const local: LlmClient.Service
 * const tier: Fallback.Tier = { model: "llama3.1:8b", client: local }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Tier {
  readonly model: string
  /** The client that serves this tier. Defaults to the client below the policy. */
  readonly client?: LlmClient.Service | undefined
}

/**
 * A chain entry: a model name (served by the client below the policy) or a {@link Tier}.
 *
 * @example
 * ```ts
 * import { Fallback } from "effect-llm-resilience"
 * const entries: ReadonlyArray<Fallback.Entry> = ["gpt-4o", "gpt-4o-mini"]
 * ```
 * @since 0.1.0
 * @category Models
 */
export type Entry = string | Tier

/**
 * Fallback options.
 *
 * @example
 * ```ts
 * import { Fallback } from "effect-llm-resilience"
 * const options: Fallback.Options = { models: ["gpt-4o", "gpt-4o-mini", "gpt-3.5-turbo"] }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Options {
  /**
   * The chain, from first choice to last resort (at least one entry). A request whose model is in the list
   * starts at that entry (earlier ones are skipped); a request whose model is not in the list is tried first,
   * then the whole list.
   */
  readonly models: ReadonlyArray<Entry>
  /** Which errors move on to the next model. Defaults to {@link defaultWhen}. */
  readonly when?: ((error: LlmError.LlmError) => boolean) | undefined
}

/**
 * The default trigger: retryable errors (RateLimited, ServerError, Timeout, ConnectionError, MalformedResponse,
 * StreamTruncated), CircuitOpen, BulkheadRejected, ModelNotFound, ContentFiltered, ContextTooLong (to a model
 * with a larger context window), QuotaExhausted (to a tier on another client only: a quota is account-wide) and a
 * nested AllModelsFailed. Never BadRequest, AuthError, BudgetExceeded or IdempotencyConflict: those are the
 * caller's to fix, and another model would fail (or spend) the same way.
 *
 * @example
 * ```ts
 * import { Duration } from "effect"
 * import { Fallback, LlmError } from "effect-llm-resilience"
 * Fallback.defaultWhen(new LlmError.CircuitOpen({ key: "gpt-4o", retryAfter: Duration.seconds(30) })) // true
 * Fallback.defaultWhen(new LlmError.BadRequest({})) // false
 * ```
 * @since 0.1.0
 * @category Guards
 */
export const defaultWhen: (error: LlmError.LlmError) => boolean = internal.defaultWhen

/**
 * The fallback policy (LLM middleware). Place it above Retry and CircuitBreaker: each model is retried first,
 * and an open breaker moves on at once. The response's `model` says which model answered. Every move is counted
 * in `llm_fallbacks_total` (labels `from`, `to`, `reason`). Streams fall back only before they started (their first text: an empty delta does not count).
 * Throws InvalidOptions (every failing path listed) on bad options.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { Fallback, FakeLlm, LlmClient, Retry } from "effect-llm-resilience"
 * const Live = LlmClient.layerWith(
 *   Fallback.policy({ models: ["gpt-4o", "gpt-4o-mini"] }),
 *   Retry.policy({ maxRetries: 2 })
 * ).pipe(Layer.provide(FakeLlm.layer(FakeLlm.reply("ok"))))
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const policy = (options: Options): LlmClient.Policy => {
  const r = Either.getOrThrowWith(internal.resolve(options), (error) => error)
  return LlmClient.policy({
    name: "Fallback",
    complete: (next) => internal.completeChain(r, next),
    stream: (next) => internal.streamChain(r, next)
  })
}

/**
 * Builds a tier's client from its layer, in the current scope (e.g. an OpenAI-compatible local server as the
 * last tier). Use it inside `Layer.unwrapScoped` so the client lives as long as the application layer.
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { Fallback, FakeLlm, LlmClient } from "effect-llm-resilience"
 * const Live = Layer.unwrapScoped(Effect.gen(function* () {
 *   const local = yield* Fallback.clientFromLayer(FakeLlm.layer(FakeLlm.reply("local answer")))
 *   return LlmClient.layerWith(Fallback.policy({ models: ["gpt-4o", { model: "llama3.1:8b", client: local }] }))
 * }))
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const clientFromLayer = <E, R>(
  layer: Layer.Layer<LlmClient.LlmClient, E, R>
): Effect.Effect<LlmClient.Service, E, R | Scope.Scope> =>
  Effect.map(Layer.build(layer), Context.get(LlmClient.LlmClient))
