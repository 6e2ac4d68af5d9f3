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
import { type Effect, Either, Schema } from "effect"
import * as internal from "./internal/modelTier.js"
import type { ChatRequest, ChatResponse } from "./Llm.js"
import type * as LlmClient from "./LlmClient.js"

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
export const defaultClassify: <const Name extends string>(
  tiers: ReadonlyArray<Tier<Name>>,
  heuristic?: Partial<Thresholds>
) => (request: ChatRequest) => Name = internal.defaultClassify

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
export const policy = <const Name extends string>(options: Options<Name>): LlmClient.Policy =>
  internal.makePolicy(internal.resolve(options))
