/**
 * Model tiering: send each request to the cheapest model that can answer it, and move up a tier only when the
 * answer is not good enough.
 *
 * Tiers are ordered from cheapest to most capable. A classifier picks the starting tier of each request (by
 * default: `metadata.tier`, then the request's model when it is a tier's model, then a heuristic on the request
 * alone); the policy rewrites `request.model` to that tier's model. With `escalate`, an answer that `when` rejects
 * is asked again of the next tier up. Errors are never escalated: that is Fallback's job, below this policy.
 *
 * @since 0.1.0
 */
import { Effect, Either, Schema, Stream } from "effect"
import * as internal from "./internal/modelTier.js"
import { AnyFunction, strict } from "./internal/optionSchemas.js"
import { decode, InvalidOptions } from "./InvalidOptions.js"
import { ChatRequest, type ChatResponse } from "./Llm.js"
import * as LlmClient from "./LlmClient.js"
import * as LlmMetrics from "./LlmMetrics.js"

/**
 * One tier: a name (what classifiers, `metadata.tier` and metrics use) and the model that serves it.
 *
 * @example
 * ```ts
 * import { ModelTier } from "effect-llm-resilience"
 * const tier: ModelTier.Tier = { name: "simple", model: "gpt-4o-mini" }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Tier<Name extends string = string> {
  readonly name: Name
  readonly model: string
}

/**
 * Why a request went to a tier: its `metadata.tier`, its `model` (a tier's model), the default heuristic, a
 * custom classifier, or an escalation from the tier below.
 *
 * @example
 * ```ts
 * import { ModelTier } from "effect-llm-resilience"
 * const reason: ModelTier.Reason = "escalated"
 * ```
 * @since 0.1.0
 * @category Models
 */
export type Reason = "metadata" | "model" | "heuristic" | "classifier" | "escalated"

/**
 * The default heuristic's verdict on a request: `simple` goes to the cheapest tier, `complex` to the most capable
 * one, `medium` to the middle tier (the second of three, the first of two, the second of four).
 *
 * @example
 * ```ts
 * import { ModelTier } from "effect-llm-resilience"
 * const level: ModelTier.Complexity = "medium"
 * ```
 * @since 0.1.0
 * @category Models
 */
export type Complexity = internal.Complexity

/**
 * The prompt sizes, in approximate tokens (≈ 4 characters a token, chat framing and tool definitions included),
 * from which the default heuristic calls a request medium or complex.
 *
 * @example
 * ```ts
 * import { ModelTier } from "effect-llm-resilience"
 * const thresholds: ModelTier.Thresholds = { mediumTokens: 2_000, complexTokens: 16_000 }
 * ```
 * @since 0.1.0
 * @category Models
 */
export type Thresholds = internal.Thresholds

/**
 * The default thresholds: medium from 1,000 prompt tokens, complex from 8,000.
 *
 * @example
 * ```ts
 * import { ModelTier } from "effect-llm-resilience"
 * ModelTier.defaultThresholds.complexTokens // 8000
 * ```
 * @since 0.1.0
 * @category Models
 */
export const defaultThresholds: Thresholds = internal.defaultThresholds

/**
 * When to ask the next tier up.
 *
 * @example
 * ```ts
 * import { ModelTier } from "effect-llm-resilience"
 * const escalate: ModelTier.Escalate = { when: ModelTier.isEmpty, maxSteps: 1 }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Escalate {
  /**
   * True when the tier's answer is not good enough (empty, not the JSON asked for, …). It receives the response
   * and the request as that tier received it. Only successful answers are judged: an error is never escalated.
   */
  readonly when: (response: ChatResponse, request: ChatRequest) => boolean | Effect.Effect<boolean>
  /**
   * How many tiers up a request may move (0 switches escalation off). Defaults to the top: every tier above the
   * starting one. Values past the top are capped.
   */
  readonly maxSteps?: number | undefined
}

/**
 * ModelTier options.
 *
 * @example
 * ```ts
 * import { ModelTier } from "effect-llm-resilience"
 * const options: ModelTier.Options<"simple" | "complex"> = {
 *   tiers: [{ name: "simple", model: "gpt-4o-mini" }, { name: "complex", model: "gpt-4o" }],
 *   escalate: { when: ModelTier.isEmpty }
 * }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Options<Name extends string = string> {
  /** The tiers from cheapest to most capable: at least one, unique names, unique models. */
  readonly tiers: ReadonlyArray<Tier<Name>>
  /**
   * Picks the starting tier of a request, by name (synchronously or as an Effect). Replaces the default
   * classifier entirely (`metadata.tier` included). A name that is not a tier's is logged as a warning and the
   * request is routed by the default classifier. Defaults to {@link defaultClassify}.
   */
  readonly classify?: ((request: ChatRequest) => NoInfer<Name> | Effect.Effect<NoInfer<Name>>) | undefined
  /** The default classifier's thresholds (not accepted with `classify`). Defaults to {@link defaultThresholds}. */
  readonly heuristic?: Partial<Thresholds> | undefined
  /** Escalation on a bad answer. Defaults to none: the starting tier's answer is returned. */
  readonly escalate?: Escalate | undefined
}

const PositiveInt = Schema.Int.pipe(Schema.positive())

const OptionsSchema = Schema.Struct({
  tiers: Schema.Array(
    Schema.Struct({ name: Schema.NonEmptyString, model: Schema.NonEmptyString }).annotations(strict)
  ).pipe(Schema.minItems(1, { message: () => "Expected at least one tier" })),
  classify: Schema.optional(AnyFunction),
  heuristic: Schema.optional(
    Schema.Struct({ mediumTokens: Schema.optional(PositiveInt), complexTokens: Schema.optional(PositiveInt) })
      .annotations(strict)
  ),
  escalate: Schema.optional(
    Schema.Struct({ when: AnyFunction, maxSteps: Schema.optional(Schema.NonNegativeInt) }).annotations(strict)
  )
}).annotations(strict)

interface Route {
  readonly index: number
  readonly reason: Reason
}

interface Resolved {
  readonly tiers: ReadonlyArray<Tier>
  readonly byName: ReadonlyMap<string, number>
  readonly byModel: ReadonlyMap<string, number>
  readonly thresholds: Thresholds
  readonly classify: ((request: ChatRequest) => string | Effect.Effect<string>) | undefined
  readonly escalate: Escalate | undefined
  /** Escalation steps allowed, capped at the number of tiers above the cheapest. */
  readonly maxSteps: number
}

const resolveEither = (options: Options): Either.Either<Resolved, InvalidOptions> => {
  const decoded = decode(OptionsSchema, "ModelTier", options)
  const crossField = internal.crossFieldIssues(options)
  if (Either.isLeft(decoded) || crossField.length > 0) {
    const issues = [...(Either.isLeft(decoded) ? decoded.left.issues : []), ...crossField]
    return Either.left(new InvalidOptions({ target: "ModelTier", issues }))
  }
  const tiers = decoded.right.tiers
  const top = tiers.length - 1
  return Either.right({
    tiers,
    byName: new Map(tiers.map((tier, i) => [tier.name, i])),
    byModel: new Map(tiers.map((tier, i) => [tier.model, i])),
    thresholds: { ...defaultThresholds, ...decoded.right.heuristic },
    classify: options.classify,
    escalate: options.escalate,
    maxSteps: Math.min(decoded.right.escalate?.maxSteps ?? top, top)
  })
}

const resolve = (options: Options): Resolved => Either.getOrThrowWith(resolveEither(options), (error) => error)

/**
 * Approximate prompt tokens of a request (≈ 4 characters a token): its messages with their chat framing, plus
 * its tool definitions. No tokenizer is needed, so routing costs microseconds.
 *
 * @example
 * ```ts
 * import { Llm, ModelTier } from "effect-llm-resilience"
 * ModelTier.promptTokens(new Llm.ChatRequest({ model: "auto", messages: [{ role: "user", content: "Hi there" }] })) // 8
 * ```
 * @since 0.1.0
 * @category Accessors
 */
export const promptTokens: (request: ChatRequest) => number = internal.promptTokens

/**
 * The default heuristic, on the request alone (never its `user`): `complex` from `complexTokens` prompt tokens,
 * `medium` from `mediumTokens` or when the request has tools or asks for a JSON response format, else `simple`.
 *
 * @example
 * ```ts
 * import { Llm, ModelTier } from "effect-llm-resilience"
 * const request = new Llm.ChatRequest({
 *   model: "auto",
 *   messages: [{ role: "user", content: "List three colours" }],
 *   responseFormat: { type: "json_object" }
 * })
 * ModelTier.complexity(request) // "medium"
 * ```
 * @since 0.1.0
 * @category Accessors
 */
export const complexity = (request: ChatRequest, thresholds?: Partial<Thresholds>): Complexity =>
  internal.complexity(request, { ...defaultThresholds, ...thresholds })

const defaultRoute = (r: Resolved, request: ChatRequest): Route => {
  const named = request.metadata?.tier
  const byName = named === undefined ? undefined : r.byName.get(named)
  if (byName !== undefined) return { index: byName, reason: "metadata" }
  const byModel = r.byModel.get(request.model)
  if (byModel !== undefined) return { index: byModel, reason: "model" }
  return { index: internal.tierIndex(internal.complexity(request, r.thresholds), r.tiers.length), reason: "heuristic" }
}

/**
 * The default classifier as a function, to reuse inside a custom one: `metadata.tier` when it names a tier, else
 * the tier whose model the request names, else the tier of the request's {@link complexity}. Throws
 * InvalidOptions on bad tiers or thresholds.
 *
 * @example
 * ```ts
 * import { ModelTier } from "effect-llm-resilience"
 * const tiers = [{ name: "simple", model: "gpt-4o-mini" }, { name: "complex", model: "gpt-4o" }] as const
 * const byDefault = ModelTier.defaultClassify(tiers)
 * const policy = ModelTier.policy({
 *   tiers,
 *   classify: (request) => request.messages.length > 20 ? "complex" : byDefault(request)
 * })
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const defaultClassify = <const Name extends string>(
  tiers: ReadonlyArray<Tier<Name>>,
  heuristic?: Partial<Thresholds>
): (request: ChatRequest) => Name => {
  const r = resolve({ tiers, heuristic })
  return (request) => r.tiers[defaultRoute(r, request).index].name as Name
}

const toEffect = <A>(value: A | Effect.Effect<A>): Effect.Effect<A> =>
  Effect.isEffect(value) ? value : Effect.succeed(value)

const unknownName = Effect.logWarning(
  "ModelTier: the classifier returned a name that is not a tier's; the default classifier routed the request"
)

const unknownMetadataTier = Effect.logWarning(
  "ModelTier: request metadata.tier names no tier; the request was routed by its model or the heuristic"
)

const route = (r: Resolved, request: ChatRequest): Effect.Effect<Route> => {
  const classify = r.classify
  if (classify === undefined) {
    return Effect.suspend(() => {
      const at = defaultRoute(r, request)
      // A misspelt tier name must not be silently ignored; the name itself is not logged (it is request data).
      return request.metadata?.tier !== undefined && at.reason !== "metadata"
        ? Effect.as(unknownMetadataTier, at)
        : Effect.succeed(at)
    })
  }
  return Effect.flatMap(Effect.suspend(() => toEffect(classify(request))), (name) => {
    const index = r.byName.get(name)
    // The name is not logged: a classifier may be a model whose output is completion text.
    return index !== undefined
      ? Effect.succeed<Route>({ index, reason: "classifier" })
      : Effect.as(unknownName, defaultRoute(r, request))
  })
}

const record = (tier: Tier, reason: Reason): Effect.Effect<void> =>
  Effect.zipRight(
    LlmMetrics.count(LlmMetrics.tierRoutes, { tier: tier.name, reason }),
    Effect.annotateCurrentSpan({ "llm.tier": tier.name, "llm.tier.reason": reason })
  )

const withModel = (request: ChatRequest, model: string): ChatRequest =>
  request.model === model ? request : new ChatRequest({ ...request, model }, true)

const answer = (
  r: Resolved,
  next: LlmClient.Complete,
  request: ChatRequest,
  at: Route,
  steps: number
): ReturnType<LlmClient.Complete> => {
  const tier = r.tiers[at.index]
  const tierRequest = withModel(request, tier.model)
  return Effect.zipRight(record(tier, at.reason), next(tierRequest)).pipe(
    Effect.flatMap((response) => {
      const escalate = r.escalate
      if (escalate === undefined || steps >= r.maxSteps || at.index >= r.tiers.length - 1) {
        return Effect.succeed(response)
      }
      return Effect.flatMap(Effect.suspend(() => toEffect(escalate.when(response, tierRequest))), (insufficient) =>
        insufficient
          ? answer(r, next, request, { index: at.index + 1, reason: "escalated" }, steps + 1)
          : Effect.succeed(response))
    })
  )
}

/**
 * True when an answer has no text (whitespace only) and no tool calls: a common trigger to escalate.
 *
 * @example
 * ```ts
 * import { ModelTier } from "effect-llm-resilience"
 * const escalate: ModelTier.Escalate = { when: ModelTier.isEmpty }
 * ```
 * @since 0.1.0
 * @category Accessors
 */
export const isEmpty = (response: ChatResponse): boolean =>
  response.content.trim() === "" && (response.toolCalls === undefined || response.toolCalls.length === 0)

/**
 * A `when` that is true when the answer's text is not JSON that decodes with `schema`: escalate a structured
 * answer the cheaper model got wrong.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { ModelTier } from "effect-llm-resilience"
 * const Colours = Schema.Struct({ colours: Schema.Array(Schema.String) })
 * const escalate: ModelTier.Escalate = { when: ModelTier.failsToDecode(Colours) }
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const failsToDecode = <A, I>(schema: Schema.Schema<A, I, never>): (response: ChatResponse) => boolean => {
  const decodeJson = Schema.decodeUnknownEither(Schema.parseJson(schema))
  return (response) => Either.isLeft(decodeJson(response.content))
}

/**
 * The tiering policy (LLM middleware). Each request is classified, its `model` rewritten to its tier's model, and
 * sent on; with `escalate`, an answer `when` rejects is asked again of the next tier up (at most `maxSteps`
 * times; the last answer is returned even if it is rejected too). Errors are never escalated, and an escalated
 * call that fails returns its error: put Fallback below this policy for them. A `metadata.tier` that names no
 * tier is logged as a warning. Streams are routed the same way but never escalated. The response's `model` says which
 * model answered. Each route is counted in `llm_tier_routes_total{tier, reason}` and the current span gets
 * `llm.tier` and `llm.tier.reason`. Throws InvalidOptions (every failing path listed) on bad options.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { FakeLlm, Fallback, LlmClient, ModelTier } from "effect-llm-resilience"
 * const Live = LlmClient.layerWith(
 *   ModelTier.policy({
 *     tiers: [
 *       { name: "simple", model: "gpt-4o-mini" },
 *       { name: "medium", model: "gpt-4.1-mini" },
 *       { name: "complex", model: "gpt-4o" }
 *     ],
 *     escalate: { when: ModelTier.isEmpty, maxSteps: 1 }
 *   }),
 *   Fallback.policy({ models: ["gpt-4o", "gpt-4o-mini"] })
 * ).pipe(Layer.provide(FakeLlm.layer(FakeLlm.reply("ok"))))
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const policy = <const Name extends string>(options: Options<Name>): LlmClient.Policy => {
  const r = resolve(options)
  return LlmClient.policy({
    name: "model-tier",
    complete: (next) => (request) => Effect.flatMap(route(r, request), (at) => answer(r, next, request, at, 0)),
    stream: (next) => (request) =>
      Stream.unwrap(Effect.flatMap(route(r, request), (at) => {
        const tier = r.tiers[at.index]
        return Effect.as(record(tier, at.reason), next(withModel(request, tier.model)))
      }))
  })
}
