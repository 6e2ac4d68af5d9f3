/**
 * Fallback chains: when a model fails with an error another model can rescue (an outage, an open breaker, a
 * missing model, a content filter, a too-long prompt), the same request goes to the next model of an ordered
 * list, possibly on another client (another provider, or a local OpenAI-compatible server as the last tier).
 * When every model fails, the call fails with `AllModelsFailed` holding each model's error.
 *
 * @since 0.1.0
 */
import { Context, Effect, Either, Layer, Option, Schema, Stream } from "effect"
import type { Scope } from "effect"
import { AnyFunction, strict } from "./internal/optionSchemas.js"
import { decode, type InvalidOptions } from "./InvalidOptions.js"
import { ChatRequest } from "./Llm.js"
import * as LlmClient from "./LlmClient.js"
import * as LlmError from "./LlmError.js"
import * as LlmMetrics from "./LlmMetrics.js"
import * as Telemetry from "./internal/telemetry.js"
import { hasProgress } from "./internal/streamProgress.js"
import * as Pricing from "./Pricing.js"

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

const rescuable: ReadonlySet<LlmError.Tag> = new Set<LlmError.Tag>([
  "CircuitOpen",
  "BulkheadRejected",
  "ModelNotFound",
  "ContentFiltered",
  "ContextTooLong",
  "QuotaExhausted",
  "AllModelsFailed"
])

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
export const defaultWhen = (error: LlmError.LlmError): boolean =>
  LlmError.isRetryable(error) || rescuable.has(error._tag)

const isService = (u: unknown): u is LlmClient.Service =>
  typeof u === "object" && u !== null && typeof (u as LlmClient.Service).complete === "function" &&
  typeof (u as LlmClient.Service).stream === "function"

const EntrySchema = Schema.Union(
  Schema.NonEmptyString,
  Schema.Struct({
    model: Schema.NonEmptyString,
    client: Schema.optional(Schema.declare(isService, { message: () => "Expected an LlmClient.Service" }))
  }).annotations(strict)
)

const OptionsSchema = Schema.Struct({
  models: Schema.NonEmptyArray(EntrySchema),
  when: Schema.optional(AnyFunction)
}).annotations(strict)

interface Resolved {
  readonly tiers: ReadonlyArray<Tier>
  readonly when: (error: LlmError.LlmError) => boolean
}

const resolveEither = (options: Options): Either.Either<Resolved, InvalidOptions> =>
  Either.map(decode(OptionsSchema, "Fallback", options), (decoded) => ({
    tiers: decoded.models.map((entry) => (typeof entry === "string" ? { model: entry } : entry)),
    when: options.when ?? defaultWhen
  }))

/** The tiers a request goes through. */
const chainFor = (tiers: ReadonlyArray<Tier>, model: string): ReadonlyArray<Tier> => {
  const index = tiers.findIndex((tier) => tier.model === model)
  return index >= 0 ? (index === 0 ? tiers : tiers.slice(index)) : [{ model }, ...tiers]
}

const withModel = (request: ChatRequest, model: string): ChatRequest =>
  request.model === model ? request : new ChatRequest({ ...request, model }, true)

// Each failure of AllModelsFailed says which model it came from.
const withFailureModel = (error: LlmError.ModelFailure, model: string): LlmError.ModelFailure => {
  if (error.model !== undefined) return error
  const Constructor = error.constructor as new(props: object, disableValidation: boolean) => LlmError.ModelFailure
  return new Constructor({ ...error, model }, true)
}

const failuresOf = (error: LlmError.LlmError, model: string): ReadonlyArray<LlmError.ModelFailure> =>
  error._tag === "AllModelsFailed" ? error.failures : [withFailureModel(error, model)]

const NEXT = "next"
const clientOf = (tier: Tier): object | typeof NEXT => tier.client ?? NEXT

type Step =
  | { readonly _tag: "Next"; readonly index: number; readonly failures: ReadonlyArray<LlmError.ModelFailure> }
  | { readonly _tag: "Stop"; readonly error: LlmError.LlmError }

/** The context window to beat after a ContextTooLong: the error's, or the failed model's from Pricing. */
const windowToBeat = (error: LlmError.ContextTooLong, model: string, pricing: Pricing.Pricing["Type"]) =>
  error.contextWindow ?? Option.getOrUndefined(Option.map(pricing.lookup(model), (p) => p.contextWindow))

const skipFilter = (
  error: LlmError.LlmError,
  failed: Tier
): Effect.Effect<(tier: Tier) => boolean> => {
  if (error._tag === "QuotaExhausted") return Effect.succeed((tier) => clientOf(tier) !== clientOf(failed))
  if (error._tag !== "ContextTooLong") return Effect.succeed(() => true)
  return Effect.map(Pricing.current, (pricing) => {
    const window = windowToBeat(error, failed.model, pricing)
    if (window === undefined) return () => true
    return (tier: Tier) =>
      Option.match(pricing.lookup(tier.model), { onNone: () => true, onSome: (p) => p.contextWindow > window })
  })
}

/** After tier `index` failed with `error`: the next tier to try, or the error to fail with. */
const nextStep = (
  r: Resolved,
  chain: ReadonlyArray<Tier>,
  index: number,
  error: LlmError.LlmError,
  failures: ReadonlyArray<LlmError.ModelFailure>
): Effect.Effect<Step> => {
  if (!r.when(error)) return Effect.succeed({ _tag: "Stop", error })
  const failed = chain[index]
  const all = [...failures, ...failuresOf(error, failed.model)]
  return Effect.flatMap(skipFilter(error, failed), (eligible) => {
    let next = index + 1
    while (next < chain.length && !eligible(chain[next])) next++
    if (next >= chain.length) return Effect.succeed<Step>({ _tag: "Stop", error: new LlmError.AllModelsFailed({ failures: all }) })
    const labels = { from: failed.model, to: chain[next].model, reason: error._tag }
    const counted = Effect.zipRight(
      LlmMetrics.count(LlmMetrics.fallbacks, labels),
      Telemetry.fellBack(labels.from, labels.to, labels.reason)
    )
    return Effect.as(counted, { _tag: "Next", index: next, failures: all } as const)
  })
}

const completeChain = (r: Resolved, next: LlmClient.Complete): LlmClient.Complete => (request) => {
  const chain = chainFor(r.tiers, request.model)
  const run = (index: number, failures: ReadonlyArray<LlmError.ModelFailure>): ReturnType<LlmClient.Complete> => {
    const tier = chain[index]
    const tierRequest = withModel(request, tier.model)
    const call = tier.client === undefined ? next(tierRequest) : tier.client.complete(tierRequest)
    return Effect.catchAll(call, (error) =>
      Effect.flatMap(nextStep(r, chain, index, error, failures), (step) =>
        step._tag === "Next" ? run(step.index, step.failures) : Effect.fail(step.error)))
  }
  return run(0, [])
}

const streamChain = (r: Resolved, next: LlmClient.StreamFn): LlmClient.StreamFn => (request) =>
  Stream.suspend(() => {
    const chain = chainFor(r.tiers, request.model)
    // Once progress has gone downstream, another model would repeat the answer: the error surfaces instead. An empty
    // opening delta is not progress (streamProgress.ts).
    let emitted = false
    const run = (index: number, failures: ReadonlyArray<LlmError.ModelFailure>): ReturnType<LlmClient.StreamFn> => {
      const tier = chain[index]
      const tierRequest = withModel(request, tier.model)
      const chunks = tier.client === undefined ? next(tierRequest) : tier.client.stream(tierRequest)
      const marked = Stream.mapChunks(chunks, (chunk) => {
        if (!emitted && hasProgress(chunk)) emitted = true
        return chunk
      })
      return Stream.catchAll(marked, (error) =>
        emitted ? Stream.fail(error) : Stream.unwrap(Effect.map(nextStep(r, chain, index, error, failures), (step) =>
          step._tag === "Next" ? run(step.index, step.failures) : Stream.fail(step.error))))
    }
    return run(0, [])
  })

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
  const r = Either.getOrThrowWith(resolveEither(options), (error) => error)
  return LlmClient.policy({
    name: "fallback",
    complete: (next) => completeChain(r, next),
    stream: (next) => streamChain(r, next)
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
