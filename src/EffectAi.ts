/**
 * The bridge to `@effect/ai`, both ways.
 *
 * - **Down**: any `@effect/ai` provider (`@effect/ai-openai`, `@effect/ai-anthropic`, …) as an `LlmClient`, so every
 *   policy of this library (retry, timeout, fallback, breaker, budget, cache) runs around it:
 *   {@link layerLlmClient} over one `LanguageModel`, {@link layerLlmClientByModel} to route each model name to its own
 *   `LanguageModel` layer (a fallback from GPT to Claude). Every `AiError` becomes an LlmError by the rules of the
 *   OpenAI adapter.
 * - **Up**: the policies as a `LanguageModel`, so code written against `LanguageModel.generateText`,
 *   `generateObject` and `streamText` gets every policy by swapping one layer: {@link layerLanguageModel},
 *   {@link model}. LlmErrors surface as `AiError`s that keep the LlmError as their cause ({@link llmError}).
 *
 * Imported from the subpath `effect-llm-resilience/EffectAi`, so the core never loads `@effect/ai`. The module
 * depends on `@effect/ai` only; the provider packages are the application's choice.
 *
 * @since 0.1.0
 */
import * as EmbeddingModel from "@effect/ai/EmbeddingModel"
import * as LanguageModel from "@effect/ai/LanguageModel"
import * as AiModel from "@effect/ai/Model"
import { Context, Effect, Layer, Option, Schema, Stream } from "effect"
import { decodeOrThrow } from "./InvalidOptions.js"
import type { ChatRequest } from "./Llm.js"
import * as LlmClient from "./LlmClient.js"
import { type LlmError, ModelNotFound } from "./LlmError.js"
import * as Embeddings from "./Embeddings.js"
import * as Client from "./internal/effectAiClient.js"
import { make as makeEmbeddingsBridge } from "./internal/effectAiEmbeddings.js"
import { marked as markInstrumented } from "./internal/instrumentProvider.js"
import { llmErrorOf } from "./internal/effectAiErrors.js"
import * as Model from "./internal/effectAiModel.js"
import { AnyFunction, strict } from "./internal/optionSchemas.js"

/**
 * Options of {@link layerLlmClient}, {@link layerLlmClientByModel} and {@link makeLlmClient}.
 *
 * @example
 * ```ts
 * import * as EffectAi from "effect-llm-resilience/EffectAi"
 * const options: EffectAi.LlmClientOptions = { model: "layer" }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface LlmClientOptions {
  /**
   * Which model the provider is asked for. `"request"` sends the request's `model` (in the provider's config, for
   * `@effect/ai-openai` and `@effect/ai-anthropic`), so one layer serves every model of a fallback chain; `"layer"`
   * keeps the model the `LanguageModel` layer was built with. Defaults to `"request"` for {@link layerLlmClient} and
   * `"layer"` for {@link layerLlmClientByModel} (whose keys are route names).
   */
  readonly model?: "request" | "layer" | undefined
  /**
   * Provider settings for one request, for a provider the bridge does not map itself, e.g.
   * `(request) => GoogleLanguageModel.withConfigOverride({ generationConfig: { maxOutputTokens: request.maxTokens } })`.
   * It runs inside the built-in mapping (OpenAI Responses, Anthropic Messages), so its values win. Defaults to none.
   */
  readonly configure?:
    | ((request: ChatRequest) => <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>)
    | undefined
  /**
   * The `gen_ai.provider.name` on the calls' spans and metrics (`openai`, `anthropic`, `gcp.gemini`, …). Defaults to
   * the provider an `AiModel` names (`OpenAiLanguageModel.model(…)` is "openai", `AnthropicLanguageModel.model(…)`
   * "anthropic"), else "custom".
   */
  readonly provider?: string | undefined
}

const ClientOptionsSchema = Schema.Struct({
  model: Schema.optional(Schema.Literal("request", "layer")),
  configure: Schema.optional(AnyFunction),
  provider: Schema.optional(Schema.NonEmptyString)
}).annotations(strict)

interface Resolved extends Client.Options {
  readonly provider: string | undefined
}

const resolveClientOptions = (
  target: string,
  options: LlmClientOptions | undefined,
  defaultModelMode: "request" | "layer"
): Resolved => {
  const decoded = decodeOrThrow(ClientOptionsSchema, target, options ?? {})
  return { model: decoded.model ?? defaultModelMode, configure: options?.configure, provider: decoded.provider }
}

// The provider named by the options, else by an AiModel's `ProviderName`.
const telemetryOf = (resolved: Resolved, context: Context.Context<never>): LlmClient.ProviderOptions => ({
  provider: resolved.provider ?? Option.getOrUndefined(Context.getOption(context, AiModel.ProviderName))
})

/**
 * Builds an `LlmClient` service over the `LanguageModel` in context. Throws InvalidOptions (every failing path
 * listed) on bad options.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as EffectAi from "effect-llm-resilience/EffectAi"
 * const client = EffectAi.makeLlmClient({ model: "layer" }) // Effect<LlmClient.Service, never, LanguageModel>
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const makeLlmClient = (
  options?: LlmClientOptions
): Effect.Effect<LlmClient.Service, never, LanguageModel.LanguageModel> => {
  const resolved = resolveClientOptions("EffectAi.makeLlmClient", options, "request")
  return Effect.map(
    Effect.context<LanguageModel.LanguageModel>(),
    (context) => Client.make(Context.get(context, LanguageModel.LanguageModel), resolved, telemetryOf(resolved, context))
  )
}

/**
 * Any `@effect/ai` provider as an `LlmClient`: each `complete` is one `generateText` (`generateObject` for a JSON
 * `responseFormat`), each `stream` one `streamText`. The request's tools are sent and their calls returned (never
 * run); max tokens, temperature, top-p, stop and user go in the provider's config; every `AiError` becomes an
 * LlmError (HTTP status → tag, Retry-After → `retryAfter`, undecodable body → MalformedResponse, a stream without
 * its finish → StreamTruncated). Interrupting a call aborts its HTTP request. Metrics and spans are every provider's
 * (`LlmClient.make`), under the provider's name. Throws InvalidOptions on bad options.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { LanguageModel } from "@effect/ai"
 * import { LlmClient, Retry } from "effect-llm-resilience"
 * import * as EffectAi from "effect-llm-resilience/EffectAi"
 * declare const OpenAiModel: Layer.Layer<LanguageModel.LanguageModel>
 * const Live = LlmClient.layerWith(Retry.policy({ maxRetries: 3 })).pipe(
 *   Layer.provide(EffectAi.layerLlmClient()),
 *   Layer.provide(OpenAiModel)
 * )
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layerLlmClient = (
  options?: LlmClientOptions
): Layer.Layer<LlmClient.LlmClient, never, LanguageModel.LanguageModel> =>
  Layer.effect(LlmClient.LlmClient, makeLlmClient(options))

/**
 * A `LanguageModel` layer per model name (an `AiModel` such as `OpenAiLanguageModel.model("gpt-4o")` is one).
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { LanguageModel } from "@effect/ai"
 * import * as EffectAi from "effect-llm-resilience/EffectAi"
 * declare const openAi: Layer.Layer<LanguageModel.LanguageModel>
 * const routes: EffectAi.Routes = { "gpt-4o": openAi }
 * ```
 * @since 0.1.0
 * @category Models
 */
export type Routes = Readonly<Record<string, Layer.Layer<LanguageModel.LanguageModel, unknown, unknown>>>

const RoutesSchema = Schema.Record({
  key: Schema.NonEmptyString,
  value: Schema.declare(
    (u: unknown): u is Layer.Layer<LanguageModel.LanguageModel> => Layer.isLayer(u),
    { message: () => "Expected a Layer providing LanguageModel" }
  )
}).pipe(Schema.filter((routes) => Object.keys(routes).length > 0 || "Expected at least one route"))

// Each route records its own calls (under its own provider name): the router itself is marked as recorded, so no
// layer records a call twice. Its mark names the routes' provider when they share one.
const routed = (
  clients: ReadonlyMap<string, LlmClient.Service>,
  providers: ReadonlyArray<string | undefined>
): LlmClient.Service => {
  const shared = new Set(providers).size === 1 ? providers[0] : undefined
  return markInstrumented({
    // An unrouted model is not a provider call: nothing is sent.
    complete: (request) =>
      clients.get(request.model)?.complete(request) ?? Effect.fail(new ModelNotFound({ model: request.model })),
    stream: (request) =>
      clients.get(request.model)?.stream(request) ?? Stream.fail(new ModelNotFound({ model: request.model }))
  }, { provider: shared ?? "custom", serverAddress: undefined, serverPort: undefined })
}

/**
 * An `LlmClient` that sends each request to the `LanguageModel` layer its model names, so a fallback chain can
 * cross providers: `Fallback.policy({ models: ["gpt-4o", "claude-sonnet-4"] })` over
 * `layerLlmClientByModel({ "gpt-4o": openAi, "claude-sonnet-4": anthropic })`. A model without a route fails with
 * ModelNotFound at once (Fallback moves on). Each route layer is built once, with the application's other layers
 * (shared sub-layers, such as a provider client, are built once). By default each route keeps its layer's own
 * model (`model: "layer"`), so a key can be an alias ("claude-sonnet-4" for "claude-sonnet-4-20250514").
 * Throws InvalidOptions on bad options or routes.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { LanguageModel } from "@effect/ai"
 * import { Fallback, LlmClient } from "effect-llm-resilience"
 * import * as EffectAi from "effect-llm-resilience/EffectAi"
 * declare const openAi: Layer.Layer<LanguageModel.LanguageModel>
 * declare const anthropic: Layer.Layer<LanguageModel.LanguageModel>
 * const Live = LlmClient.layerWith(Fallback.policy({ models: ["gpt-4o", "claude-sonnet-4"] })).pipe(
 *   Layer.provide(EffectAi.layerLlmClientByModel({ "gpt-4o": openAi, "claude-sonnet-4": anthropic }))
 * )
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layerLlmClientByModel = <const R extends Routes>(
  routes: R,
  options?: LlmClientOptions
): Layer.Layer<LlmClient.LlmClient, Layer.Layer.Error<R[keyof R]>, Layer.Layer.Context<R[keyof R]>> => {
  decodeOrThrow(RoutesSchema, "EffectAi.layerLlmClientByModel", routes)
  const resolved = resolveClientOptions("EffectAi.layerLlmClientByModel", options, "layer")
  const build = Effect.gen(function*() {
    const memoMap = yield* Layer.CurrentMemoMap
    const scope = yield* Effect.scope
    const clients = new Map<string, LlmClient.Service>()
    const providers: Array<string | undefined> = []
    for (const [name, layer] of Object.entries(routes)) {
      const context = yield* Layer.buildWithMemoMap(layer, memoMap, scope)
      const model = Context.get(context, LanguageModel.LanguageModel)
      const telemetry = telemetryOf(resolved, context as Context.Context<never>)
      providers.push(telemetry.provider)
      clients.set(name, Client.make(model, resolved, telemetry))
    }
    return routed(clients, providers)
  })
  // The routes' errors and requirements, which the loop above cannot name.
  return Layer.scoped(LlmClient.LlmClient, build) as Layer.Layer<
    LlmClient.LlmClient,
    Layer.Layer.Error<R[keyof R]>,
    Layer.Layer.Context<R[keyof R]>
  >
}

/**
 * The request fields a `LanguageModel` call cannot express: the model, generation settings (`maxTokens`,
 * `temperature`, `topP`, `seed`, `stop`, penalties), the tenant (`user`, which scopes budgets and the cache), an
 * `idempotencyKey` and `metadata`.
 *
 * @example
 * ```ts
 * import * as EffectAi from "effect-llm-resilience/EffectAi"
 * const fields: EffectAi.RequestFields = { model: "gpt-4o-mini", temperature: 0, user: "tenant-7" }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface RequestFields extends Model.RequestFields {}

const FieldsSchema = Model.RequestFieldsSchema.annotations(strict)

/**
 * The model a `LanguageModel` of this module asks for when neither its layer nor the call names one: `"default"`.
 * Name the model with {@link model} or {@link withRequest}.
 *
 * @example
 * ```ts
 * import * as EffectAi from "effect-llm-resilience/EffectAi"
 * EffectAi.defaultModel // "default"
 * ```
 * @since 0.1.0
 * @category Models
 */
export const defaultModel: string = Model.defaultModel

/**
 * The per-call request fields of the `LanguageModel`s of this module (a `Context.Reference`, empty by default).
 * Set it with {@link withRequest}, or `Effect.provideService` / `Stream.provideService`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as EffectAi from "effect-llm-resilience/EffectAi"
 * const fields = Effect.map(EffectAi.RequestOptions, (options) => options.user)
 * ```
 * @since 0.1.0
 * @category Tags
 */
export const RequestOptions: Context.Reference<Model.RequestOptions, RequestFields> = Model.RequestOptions

type Runnable = Effect.Effect<unknown, unknown, unknown> | Stream.Stream<unknown, unknown, unknown>

// `valid` is decoded already: the data-last form validates when it is built, not when it is applied.
const provideFields = <Self extends Runnable>(self: Self, valid: RequestFields): Self => {
  const merged = Effect.map(RequestOptions, (current): RequestFields => ({ ...current, ...valid }))
  return (Effect.isEffect(self)
    ? Effect.flatMap(merged, (all) => Effect.provideService(self, RequestOptions, all))
    : Stream.unwrap(Effect.map(merged, (all) => Stream.provideService(self as Stream.Stream<unknown, unknown, unknown>, RequestOptions, all)))) as Self
}

const validFields = (fields: RequestFields): RequestFields => decodeOrThrow(FieldsSchema, "EffectAi.withRequest", fields)

/**
 * Runs an Effect or a Stream with request fields for every `LanguageModel` call of this module inside it (over the
 * layer's defaults and any outer `withRequest`, field by field). Throws InvalidOptions on bad fields.
 *
 * @example
 * ```ts
 * import { LanguageModel } from "@effect/ai"
 * import * as EffectAi from "effect-llm-resilience/EffectAi"
 * const answer = LanguageModel.generateText({ prompt: "Summarise the ticket" }).pipe(
 *   EffectAi.withRequest({ model: "gpt-4o-mini", temperature: 0, user: "tenant-7" })
 * )
 * ```
 * @since 0.1.0
 * @category Combinators
 */
export const withRequest: {
  (fields: RequestFields): <Self extends Runnable>(self: Self) => Self
  <Self extends Runnable>(self: Self, fields: RequestFields): Self
} = function(...args: ReadonlyArray<unknown>) {
  if (args.length === 1) {
    const valid = validFields(args[0] as RequestFields)
    return <Self extends Runnable>(self: Self): Self => provideFields(self, valid)
  }
  return provideFields(args[0] as Runnable, validFields(args[1] as RequestFields))
} as never

/**
 * Builds a `LanguageModel` service over the `LlmClient` in context, with default request fields. Throws
 * InvalidOptions on bad fields.
 *
 * @example
 * ```ts
 * import * as EffectAi from "effect-llm-resilience/EffectAi"
 * const service = EffectAi.makeLanguageModel({ model: "gpt-4o", maxTokens: 500 })
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const makeLanguageModel = (
  defaults: RequestFields = {}
): Effect.Effect<LanguageModel.Service, never, LlmClient.LlmClient> =>
  Model.make(decodeOrThrow(FieldsSchema, "EffectAi.makeLanguageModel", defaults))

/**
 * The policies as a `LanguageModel`: `LanguageModel.generateText`, `generateObject` (with a Schema) and `streamText`
 * (with a `Toolkit` or not) go through the `LlmClient` below, every policy included. The prompt's system, user,
 * assistant and tool messages, the tools, the tool choice and the JSON format become a `ChatRequest` (the model
 * named by {@link withRequest}, else {@link defaultModel}: use {@link model} to name one); LlmErrors surface as
 * `AiError`s keeping the LlmError as their cause ({@link llmError}).
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { LanguageModel } from "@effect/ai"
 * import { FakeLlm, LlmClient, Retry } from "effect-llm-resilience"
 * import * as EffectAi from "effect-llm-resilience/EffectAi"
 * const Live = EffectAi.layerLanguageModel.pipe(
 *   Layer.provide(LlmClient.layerWith(Retry.policy({ maxRetries: 2 }))),
 *   Layer.provide(FakeLlm.layer(FakeLlm.reply("Hello")))
 * )
 * const text = LanguageModel.generateText({ prompt: "Say hello" }).pipe(Effect.map((r) => r.text), Effect.provide(Live))
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layerLanguageModel: Layer.Layer<LanguageModel.LanguageModel, never, LlmClient.LlmClient> = Layer.effect(
  LanguageModel.LanguageModel,
  Model.make({})
)

/**
 * The policies as a `LanguageModel` of one model, in `@effect/ai`'s style (an `AiModel`, which is a layer):
 * `Effect.provide(EffectAi.model("gpt-4o"))` beside `OpenAiLanguageModel.model("gpt-4o")`. `defaults` sets the
 * other request fields (a call's {@link withRequest} still wins). Throws InvalidOptions on bad fields.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { LanguageModel } from "@effect/ai"
 * import * as EffectAi from "effect-llm-resilience/EffectAi"
 * const answer = LanguageModel.generateText({ prompt: "Hi" }).pipe(
 *   Effect.provide(EffectAi.model("gpt-4o-mini", { temperature: 0 }))
 * ) // requires LlmClient
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const model = (
  name: string,
  defaults: Omit<RequestFields, "model"> = {}
): AiModel.Model<"effect-llm-resilience", LanguageModel.LanguageModel, LlmClient.LlmClient> =>
  AiModel.make(
    "effect-llm-resilience",
    Layer.effect(LanguageModel.LanguageModel, makeLanguageModel({ ...defaults, model: name }))
  )

/**
 * The LlmError behind an error of a `LanguageModel` of this module (an `AiError` whose cause is an LlmError, or an
 * LlmError itself), if any: how to match `BudgetExceeded`, `CircuitOpen` or `AllModelsFailed` through `@effect/ai`.
 *
 * @example
 * ```ts
 * import { Effect, Option } from "effect"
 * import { LanguageModel } from "@effect/ai"
 * import * as EffectAi from "effect-llm-resilience/EffectAi"
 * const answer = LanguageModel.generateText({ prompt: "Hi" }).pipe(
 *   Effect.catchAll((error) =>
 *     Option.match(EffectAi.llmError(error), {
 *       onSome: (cause) => cause._tag === "BudgetExceeded" ? Effect.succeed("over budget") : Effect.fail(error),
 *       onNone: () => Effect.fail(error)
 *     })),
 *   Effect.map((r) => (typeof r === "string" ? r : r.text))
 * )
 * ```
 * @since 0.1.0
 * @category Errors
 */
export const llmError: (error: unknown) => Option.Option<LlmError> = llmErrorOf

/**
 * Any `@effect/ai` `EmbeddingModel` as this library's `Embeddings` service: each `embed` is one `embedMany` of the
 * request's texts (the layer's model answers; `request.model` names it in responses and errors). Every `AiError`
 * becomes an LlmError, as for completions. An `EmbeddingModel` reports no usage: the input tokens are counted
 * exactly and marked `estimated` (by `Embeddings.make`'s provider step, which also records the metrics and span).
 *
 * @example
 * ```ts
 * import { Effect, type Layer } from "effect"
 * import type { EmbeddingModel } from "@effect/ai"
 * import { Embeddings } from "effect-llm-resilience"
 * import * as EffectAi from "effect-llm-resilience/EffectAi"
 * declare const OpenAiEmbeddings: Layer.Layer<EmbeddingModel.EmbeddingModel>
 * const vectors = Embeddings.embed(new Embeddings.EmbedRequest({ model: "text-embedding-3-small", input: ["a"] })).pipe(
 *   Effect.provide(EffectAi.layerEmbeddings),
 *   Effect.provide(OpenAiEmbeddings)
 * )
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const makeEmbeddings: Effect.Effect<Embeddings.Service, never, EmbeddingModel.EmbeddingModel> = Effect.map(
  Effect.context<EmbeddingModel.EmbeddingModel>(),
  (context) =>
    Embeddings.make(makeEmbeddingsBridge(Context.get(context, EmbeddingModel.EmbeddingModel)), {
      provider: Option.getOrUndefined(Context.getOption(context as Context.Context<never>, AiModel.ProviderName))
    })
)

/**
 * {@link makeEmbeddings} as a layer providing `Embeddings`.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import type { EmbeddingModel } from "@effect/ai"
 * import { Embeddings } from "effect-llm-resilience"
 * import * as EffectAi from "effect-llm-resilience/EffectAi"
 * declare const OpenAiEmbeddings: Layer.Layer<EmbeddingModel.EmbeddingModel>
 * const Live = Embeddings.layerWith(Embeddings.batching()).pipe(
 *   Layer.provide(EffectAi.layerEmbeddings),
 *   Layer.provide(OpenAiEmbeddings)
 * )
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layerEmbeddings: Layer.Layer<Embeddings.Embeddings, never, EmbeddingModel.EmbeddingModel> = Layer.effect(
  Embeddings.Embeddings,
  makeEmbeddings
)
