/**
 * Embeddings: the `Embeddings` service (`embed(request)`), its request and response Schemas, middleware in the shape
 * of `LlmClient`'s policies, and `batching`, which coalesces concurrent single-text calls into one array request
 * (each caller gets the vector at its own index, never another's).
 *
 * The generic combinators apply through {@link around}: `Embeddings.around((call) => call.pipe(Retry.withRetry({
 * maxRetries: 3 })))`, and the same for `Timeout.withTimeout` and `CircuitBreaker.withBreaker`. The OpenAI adapter is
 * `OpenAi.makeEmbeddings` / `OpenAi.layerEmbeddings` (subpath `effect-llm-resilience/OpenAi`).
 *
 * @since 0.1.0
 */
import * as DataLoader from "@effect/experimental/RequestResolver"
import { Cache, Context, Duration, Effect, Equal, Exit, Hash, Layer, Request, RequestResolver, Schema } from "effect"
import type { NonEmptyArray } from "effect/Array"
import { createHash } from "node:crypto"
import * as Instrument from "./internal/embeddingsInstrument.js"
import * as Policies from "./internal/embeddingsPolicies.js"
import { decode, type InvalidOptions } from "./InvalidOptions.js"
import type { ProviderOptions } from "./LlmClient.js"
import type { LlmError } from "./LlmError.js"
import { MalformedResponse } from "./LlmError.js"
import { PositiveDuration } from "./internal/optionSchemas.js"
import type * as RateLimit from "./RateLimit.js"
import type { RateLimiterStore } from "@effect/experimental/RateLimiter"
import * as TokenBudget from "./TokenBudget.js"

/**
 * An embeddings request: the texts to embed (at least one), optional `dimensions` and `user` (the end user or tenant).
 *
 * @example
 * ```ts
 * import { Embeddings } from "effect-llm-resilience"
 * const request = new Embeddings.EmbedRequest({ model: "text-embedding-3-small", input: ["refund policy"] })
 * ```
 * @since 0.1.0
 * @category Models
 */
export class EmbedRequest extends Schema.Class<EmbedRequest>("effect-llm-resilience/EmbedRequest")({
  model: Schema.NonEmptyString,
  input: Schema.NonEmptyArray(Schema.String),
  dimensions: Schema.optional(Schema.Int.pipe(Schema.positive())),
  user: Schema.optional(Schema.String)
}) {}

/**
 * An embeddings response: one vector per input, in input order, and the input tokens used (`estimated` when the
 * provider reported none and the library counted them).
 *
 * @example
 * ```ts
 * import { Embeddings } from "effect-llm-resilience"
 * const response = new Embeddings.EmbedResponse({ model: "m", embeddings: [[0.6, 0.8]], usage: { inputTokens: 2 } })
 * ```
 * @since 0.1.0
 * @category Models
 */
export class EmbedResponse extends Schema.Class<EmbedResponse>("effect-llm-resilience/EmbedResponse")({
  model: Schema.String,
  embeddings: Schema.Array(Schema.Array(Schema.Number)),
  usage: Schema.Struct({ inputTokens: Schema.NonNegativeInt, estimated: Schema.optional(Schema.Boolean) })
}) {}

/**
 * An embedding function.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Embeddings } from "effect-llm-resilience"
 * const constant: Embeddings.EmbedFn = (request) =>
 *   Effect.succeed(new Embeddings.EmbedResponse({ model: request.model, embeddings: request.input.map(() => [1]), usage: { inputTokens: 1 } }))
 * ```
 * @since 0.1.0
 * @category Models
 */
export type EmbedFn = (request: EmbedRequest) => Effect.Effect<EmbedResponse, LlmError>

/**
 * The Embeddings service.
 *
 * @example
 * ```ts
 * import { Embeddings } from "effect-llm-resilience"
 * const model = (service: Embeddings.Service) => service.embed
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Service {
  readonly embed: EmbedFn
}

/**
 * The Embeddings service tag.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Embeddings } from "effect-llm-resilience"
 * const program = Effect.flatMap(Embeddings.Embeddings, (e) => e.embed(new Embeddings.EmbedRequest({ model: "m", input: ["x"] })))
 * ```
 * @since 0.1.0
 * @category Tags
 */
export class Embeddings extends Context.Tag("effect-llm-resilience/Embeddings")<Embeddings, Service>() {}

/**
 * Middleware over an embedding function, as `LlmClient.Policy` is over a completion function.
 *
 * @example
 * ```ts
 * import { Embeddings } from "effect-llm-resilience"
 * const passThrough: Embeddings.Policy = (next) => next
 * ```
 * @since 0.1.0
 * @category Models
 */
export type Policy = (next: EmbedFn) => EmbedFn

/**
 * A policy from any combinator on the call's Effect (Retry, Timeout, CircuitBreaker, …).
 *
 * @example
 * ```ts
 * import { Embeddings, Retry, Timeout } from "effect-llm-resilience"
 * const retry = Embeddings.around((call) => call.pipe(Retry.withRetry({ maxRetries: 3 })))
 * const timeout = Embeddings.around((call) => call.pipe(Timeout.withTimeout({ attempt: "10 seconds" })))
 * ```
 * @since 0.1.0
 * @category Combinators
 */
export const around = (
  f: (call: Effect.Effect<EmbedResponse, LlmError>, request: EmbedRequest) => Effect.Effect<EmbedResponse, LlmError>
): Policy =>
(next) =>
(request) => f(Effect.suspend(() => next(request)), request)

/**
 * Builds an `Embeddings` service from a provider's `embed`, with the one innermost step every service gets (as
 * `LlmClient.make` for chat): per provider call the `llm_*` counters (`llm_requests_total`, latency, input tokens,
 * `llm_cost_usd_total`, unpriced and estimated tokens, failures), the GenAI histograms
 * (`gen_ai.client.operation.duration`, `gen_ai.client.token.usage` with `gen_ai.operation.name = "embeddings"`), an
 * `embeddings {model}` client span, and the input tokens a provider did not report (counted exactly, marked
 * `estimated`). Applied once; `decorate`, `layerWith` and {@link embed} apply it (as provider "custom") to a
 * service that lacks it.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Embeddings } from "effect-llm-resilience"
 * const service = Embeddings.make({
 *   embed: (request) =>
 *     Effect.succeed(new Embeddings.EmbedResponse({ model: request.model, embeddings: request.input.map(() => [1, 0]), usage: { inputTokens: 0 } }))
 * }, { provider: "my-embedder" })
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const make = (service: Service, options?: ProviderOptions): Service =>
  Instrument.instrument(service, {
    provider: options?.provider ?? "custom",
    serverAddress: options?.serverAddress,
    serverPort: options?.serverPort
  })

/**
 * `service` with `policies` applied, outermost first.
 *
 * @example
 * ```ts
 * import { Embeddings, Retry } from "effect-llm-resilience"
 * const decorated = (base: Embeddings.Service) =>
 *   Embeddings.decorate(base, Embeddings.around((call) => call.pipe(Retry.withRetry({ maxRetries: 2 }))))
 * ```
 * @since 0.1.0
 * @category Combinators
 */
export const decorate = (service: Service, ...policies: ReadonlyArray<Policy>): Service => {
  const base = Instrument.instrumented(service)
  if (policies.length === 0) return base
  return Instrument.marked(
    { embed: policies.reduceRight<EmbedFn>((next, policy) => policy(next), base.embed) },
    Instrument.infoOf(base)!
  )
}

/**
 * Decorates the `Embeddings` below it with `policies` (outermost first; an Effect that builds a policy is run when
 * the layer is built).
 *
 * @example
 * ```ts
 * import { Embeddings, Retry } from "effect-llm-resilience"
 * const Live = Embeddings.layerWith(
 *   Embeddings.batching({ window: "5 millis", maxBatchSize: 64 }),
 *   Embeddings.around((call) => call.pipe(Retry.withRetry({ maxRetries: 3 })))
 * )
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layerWith = <E = never, R = never>(
  ...policies: ReadonlyArray<Policy | Effect.Effect<Policy, E, R>>
): Layer.Layer<Embeddings, E, Embeddings | R> =>
  Layer.effect(
    Embeddings,
    Effect.gen(function*() {
      const base = yield* Embeddings
      const built = yield* Effect.forEach(policies, (p) => (Effect.isEffect(p) ? p : Effect.succeed(p)))
      return decorate(base, ...built)
    })
  )

/**
 * Embeds with the `Embeddings` in context.
 *
 * @example
 * ```ts
 * import { Embeddings } from "effect-llm-resilience"
 * const vectors = Embeddings.embed(new Embeddings.EmbedRequest({ model: "text-embedding-3-small", input: ["a", "b"] }))
 * ```
 * @since 0.1.0
 * @category Accessors
 */
export const embed = (request: EmbedRequest): Effect.Effect<EmbedResponse, LlmError, Embeddings> =>
  Effect.flatMap(Embeddings, (service) => Instrument.instrumented(service).embed(request))

/**
 * Options of {@link batching}.
 *
 * @example
 * ```ts
 * import { Embeddings } from "effect-llm-resilience"
 * const options: Embeddings.BatchingOptions = { window: "10 millis", maxBatchSize: 100 }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface BatchingOptions {
  /** How long the first call of a batch waits for others. Defaults to 5 milliseconds. */
  readonly window?: Duration.DurationInput | undefined
  /** The most texts in one upstream request. Defaults to 100 (OpenAI takes up to 2048). */
  readonly maxBatchSize?: number | undefined
}

const BatchingSchema = Schema.Struct({
  window: Schema.optionalWith(PositiveDuration, { exact: true }),
  maxBatchSize: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 2048)), { exact: true })
})

interface EmbedOne extends Request.Request<EmbedResponse, LlmError> {
  readonly _tag: "EmbedOne"
  readonly request: EmbedRequest
  readonly next: EmbedFn
}
const EmbedOne = Request.tagged<EmbedOne>("EmbedOne")

const groupKey = (r: EmbedRequest) => JSON.stringify([r.model, r.dimensions ?? null, r.user ?? null])

// One upstream request per decorated function and (model, dimensions, user).
const groupsOf = (items: ReadonlyArray<EmbedOne>): ReadonlyArray<NonEmptyArray<EmbedOne>> => {
  const groups = new Map<EmbedFn, Map<string, NonEmptyArray<EmbedOne>>>()
  for (const item of items) {
    const byKey = groups.get(item.next) ?? new Map<string, NonEmptyArray<EmbedOne>>()
    groups.set(item.next, byKey)
    const key = groupKey(item.request)
    const group = byKey.get(key)
    if (group === undefined) byKey.set(key, [item])
    else group.push(item)
  }
  return [...groups.values()].flatMap((byKey) => [...byKey.values()])
}

// Each caller's share of the call's tokens, by text length; the shares add up to the call's count.
const shares = (texts: ReadonlyArray<string>, total: number): ReadonlyArray<number> => {
  const length = texts.reduce((sum, t) => sum + Math.max(1, t.length), 0)
  const raw = texts.map((t) => Math.floor((total * Math.max(1, t.length)) / length))
  raw[raw.length - 1] += total - raw.reduce((a, b) => a + b, 0)
  return raw
}

const sendGroup = (group: NonEmptyArray<EmbedOne>) => {
  const next = group[0].next
  const first = group[0].request
  const texts = group.map((item) => item.request.input[0])
  return Effect.exit(next(new EmbedRequest({ ...first, input: [texts[0], ...texts.slice(1)] }))).pipe(
    Effect.flatMap((exit) => {
      if (Exit.isFailure(exit)) return Effect.forEach(group, (item) => Request.complete(item, exit), { discard: true })
      const response = exit.value
      if (response.embeddings.length !== group.length) {
        const error = new MalformedResponse({ model: first.model, reason: "the provider sent a vector count other than the inputs'" })
        return Effect.forEach(group, (item) => Request.complete(item, Exit.fail(error)), { discard: true })
      }
      const tokens = shares(texts, response.usage.inputTokens)
      return Effect.forEach(group, (item, i) =>
        Request.complete(item, Exit.succeed(new EmbedResponse({
          model: response.model,
          embeddings: [response.embeddings[i]],
          usage: { inputTokens: tokens[i] }
        }))), { discard: true })
    })
  )
}

/**
 * Coalesces concurrent single-text `embed` calls (same model, dimensions and user) into one array request of up to
 * `maxBatchSize` texts, sent after `window`. Each caller gets the vector at its own index and its share of the
 * tokens (by text length); a failure of the shared request fails each of its callers with that error. Calls with
 * several texts pass straight through. Validated: every bad option listed in one `InvalidOptions`.
 *
 * @example
 * ```ts
 * import { Embeddings } from "effect-llm-resilience"
 * const Live = Embeddings.layerWith(Embeddings.batching({ window: "5 millis", maxBatchSize: 64 }))
 * ```
 * @since 0.1.0
 * @category Combinators
 */
export const batching = (options: BatchingOptions = {}): Effect.Effect<Policy, InvalidOptions> =>
  Effect.gen(function*() {
    const valid = yield* decode(BatchingSchema, "Embeddings.batching", options)
    const window = valid.window ?? Duration.millis(5)
    const maxBatchSize = valid.maxBatchSize ?? 100
    const resolver = RequestResolver.makeBatched((items: NonEmptyArray<EmbedOne>) =>
      Effect.forEach(groupsOf(items), sendGroup, { concurrency: "unbounded", discard: true }))
    // The loader's scope only interrupts a window still waiting when it closes: closed at once, every window runs to
    // its end (as Batching does).
    const loader = yield* Effect.scoped(DataLoader.dataLoader(resolver, { window, maxBatchSize }))
    return (next: EmbedFn): EmbedFn => (request) =>
      request.input.length === 1
        ? Effect.withRequestCaching(Effect.request(EmbedOne({ request, next }), loader), false)
        : next(request)
  })

/**
 * Options of {@link cache}.
 *
 * @example
 * ```ts
 * import { Embeddings } from "effect-llm-resilience"
 * const options: Embeddings.CacheOptions = { ttl: "1 day", capacity: 50_000 }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface CacheOptions {
  /** How long a vector is kept. Required. */
  readonly ttl: Duration.DurationInput
  /** The most entries kept (least recently used evicted). Defaults to 10 000. */
  readonly capacity?: number | undefined
}

const CacheSchema = Schema.Struct({
  ttl: PositiveDuration,
  capacity: Schema.optionalWith(Schema.Int.pipe(Schema.positive()), { exact: true })
})

// A key compares by its digest only; it carries the request and the function that answers a miss.
class CacheKey implements Equal.Equal {
  constructor(readonly digest: string, readonly request: EmbedRequest, readonly next: EmbedFn) {}
  [Equal.symbol](that: Equal.Equal): boolean {
    return that instanceof CacheKey && that.digest === this.digest
  }
  [Hash.symbol](): number {
    return Hash.string(this.digest)
  }
}

/**
 * Caches embeddings in memory, keyed by a SHA-256 of the model, dimensions, user (tenant-scoped: one tenant never
 * gets another's entry) and the texts. Concurrent calls for one key share one upstream call; only answers are kept
 * (a failure is not). Validated: every bad option listed in one `InvalidOptions`.
 *
 * @example
 * ```ts
 * import { Embeddings } from "effect-llm-resilience"
 * const Live = Embeddings.layerWith(Embeddings.cache({ ttl: "1 day" }), Embeddings.batching())
 * ```
 * @since 0.1.0
 * @category Combinators
 */
export const cache = (options: CacheOptions): Effect.Effect<Policy, InvalidOptions> =>
  Effect.gen(function*() {
    const valid = yield* decode(CacheSchema, "Embeddings.cache", options)
    const entries = yield* Cache.makeWith({
      capacity: valid.capacity ?? 10_000,
      lookup: (key: CacheKey) => key.next(key.request),
      timeToLive: (exit) => (Exit.isSuccess(exit) ? valid.ttl : Duration.zero)
    })
    // Each decorated function has entries of its own (another provider's vectors are not this one's).
    const ids = new WeakMap<EmbedFn, number>()
    let nextId = 0
    const idOf = (next: EmbedFn) => {
      const known = ids.get(next)
      if (known !== undefined) return known
      ids.set(next, nextId)
      return nextId++
    }
    return (next: EmbedFn): EmbedFn => {
      const id = idOf(next)
      return (request) => {
        const digest = createHash("sha256")
          .update(JSON.stringify([id, request.model, request.dimensions ?? null, request.user ?? null, request.input]))
          .digest("hex")
        const key = new CacheKey(digest, request, next)
        // A failure is shared by the calls waiting on it, then dropped: the next call asks again.
        return Effect.tapError(entries.get(key), () => entries.invalidate(key))
      }
    }
  })

/**
 * Charges embeddings to a token budget: the same `TokenBudget` (tokens and USD, per scope) chat is charged to. Give
 * the built `Budget` that the chat stack uses, or its options (a budget with the same name and store shares its
 * state). Each call reserves exactly its inputs' token count (the `Tokenizer` in context; exact by default) and its
 * price (an embedding has no output), fails with `BudgetExceeded` without calling the provider when that does not
 * fit, and commits the provider's reported usage (priced at the model that answered) or refunds a failure. A lost
 * commit follows chat's rules: retried in the background, and the lease end charges the reservation. The scope
 * is the request's `user` (or a custom scope's function, given a `ChatRequest` with the embedding's model and user
 * and no messages).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Embeddings, LlmClient, TokenBudget } from "effect-llm-resilience"
 * const program = Effect.gen(function*() {
 *   const budget = yield* TokenBudget.policy({ scope: "user", limit: { usd: 5 }, period: "day" })
 *   // one budget for both
 *   return { chat: LlmClient.layerWith(budget), embeddings: Embeddings.layerWith(Embeddings.tokenBudget(budget)) }
 * })
 * ```
 * @since 0.1.0
 * @category Combinators
 */
export const tokenBudget: {
  (budget: TokenBudget.Budget): Policy
  (options: TokenBudget.Options): Effect.Effect<Policy, InvalidOptions, TokenBudget.TokenBudgetStore>
} = ((input: TokenBudget.Budget | TokenBudget.Options) =>
  "_tag" in input && input._tag === "TokenBudget"
    ? Policies.budgetPolicy(input)
    : Effect.map(TokenBudget.policy(input as TokenBudget.Options), Policies.budgetPolicy)) as never

/**
 * Keeps embeddings under the client-side RPM/TPM limits chat uses: `RateLimit`'s options, store and keys (an
 * embedding under the same `name` and key takes from the same buckets as a completion). Each call costs one request
 * and exactly its inputs' tokens; "wait" sleeps on the Effect clock, "fail" fails with
 * `RateLimited { source: "client" }`. Tokens a provider reports beyond that are charged after the call.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { Embeddings, RateLimit } from "effect-llm-resilience"
 * const Live = Embeddings.layerWith(Embeddings.rateLimit({ rpm: 3_000, tpm: 1_000_000, per: "model" })).pipe(
 *   Layer.provide(RateLimit.layerStoreMemory)
 * )
 * ```
 * @since 0.1.0
 * @category Combinators
 */
export const rateLimit = (options: RateLimit.Options): Effect.Effect<Policy, InvalidOptions, RateLimiterStore> =>
  Policies.rateLimit(options)

/**
 * A chain entry of {@link fallback}: a model name, or a model with the `dimensions` to ask it for.
 *
 * @example
 * ```ts
 * import { Embeddings } from "effect-llm-resilience"
 * const entries: ReadonlyArray<Embeddings.FallbackEntry> = ["text-embedding-3-small", { model: "text-embedding-3-large", dimensions: 1536 }]
 * ```
 * @since 0.1.0
 * @category Models
 */
export type FallbackEntry = Policies.FallbackEntry

/**
 * Options of {@link fallback}.
 *
 * @example
 * ```ts
 * import { Embeddings } from "effect-llm-resilience"
 * const options: Embeddings.FallbackOptions = { models: ["text-embedding-3-small", "azure/text-embedding-3-small"] }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface FallbackOptions {
  /**
   * The chain, first choice first. A request whose model is in it starts there; another model is tried first, then
   * the chain. Each model's vector length is its entry's `dimensions`, else its `Pricing` entry's `dimensions`.
   */
  readonly models: ReadonlyArray<FallbackEntry>
  /** Which errors move on. Defaults to `Fallback.defaultWhen` (retryable errors, CircuitOpen, …; never BadRequest). */
  readonly when?: ((error: LlmError) => boolean) | undefined
}

/**
 * Moves an embedding to the next model of a chain when one fails with an error `Fallback.defaultWhen` accepts
 * (retryable errors, CircuitOpen, ModelNotFound, …; never BadRequest, AuthError or BudgetExceeded); when every model
 * failed, `AllModelsFailed` lists each one's error. Every model must give vectors of one length, or the policy is
 * refused when built with `InvalidOptions` (each mismatching entry listed): an index cannot mix lengths. Equal
 * lengths from two different models are still two vector spaces: the fallback is meant for a second deployment of
 * one model, or for an index that re-embeds by `response.model`. A request's own `dimensions` is sent to every
 * model; else an entry's. Moves are counted in `llm_fallbacks_total`.
 *
 * @example
 * ```ts
 * import { Embeddings, Retry } from "effect-llm-resilience"
 * const Live = Embeddings.layerWith(
 *   Embeddings.fallback({ models: ["text-embedding-3-small", { model: "text-embedding-3-large", dimensions: 1536 }] }),
 *   Embeddings.around((call) => call.pipe(Retry.withRetry({ maxRetries: 2 })))
 * )
 * ```
 * @since 0.1.0
 * @category Combinators
 */
export const fallback = (options: FallbackOptions): Effect.Effect<Policy, InvalidOptions> =>
  Policies.fallback(options, (fields) => new EmbedRequest(fields, true))
