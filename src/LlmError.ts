/**
 * The typed errors of an LLM call and the one classification every policy uses.
 *
 * Every error is a `Schema.TaggedError`, so cache and idempotency records can store an `Exit` across processes.
 * Messages never contain an API key, prompt or completion text.
 *
 * @since 0.1.0
 */
import { Duration, Option, Predicate, Schema } from "effect"

const model = Schema.optional(Schema.String)
const optionalRetryAfter = Schema.optional(Schema.DurationFromMillis)

const describe = (text: string, modelName: string | undefined): string =>
  modelName === undefined ? text : `${text} (model ${modelName})`

const seconds = (duration: Duration.Duration | undefined): string =>
  duration === undefined ? "" : `, retry after ${Duration.format(duration)}`

/**
 * The provider (HTTP 429) or a client-side rate limit refused the call. `retryAfter` is the provider's
 * Retry-After when it sent one. Retryable.
 *
 * @example
 * ```ts
 * import { Duration } from "effect"
 * import { LlmError } from "effect-llm-resilience"
 * const error = new LlmError.RateLimited({ model: "gpt-4o", retryAfter: Duration.seconds(2) })
 * ```
 * @since 0.1.0
 * @category Errors
 */
export class RateLimited extends Schema.TaggedError<RateLimited>("effect-llm-resilience/RateLimited")("RateLimited", {
  model,
  retryAfter: optionalRetryAfter,
  source: Schema.optional(Schema.Literal("provider", "client"))
}) {
  override get message(): string {
    return describe(`Rate limited by the ${this.source ?? "provider"}${seconds(this.retryAfter)}`, this.model)
  }
}

/**
 * The account's quota or credit is used up (HTTP 429 with code `insufficient_quota`). Never retryable:
 * waiting does not help.
 *
 * @example
 * ```ts
 * import { LlmError } from "effect-llm-resilience"
 * const error = new LlmError.QuotaExhausted({ model: "gpt-4o" })
 * ```
 * @since 0.1.0
 * @category Errors
 */
export class QuotaExhausted extends Schema.TaggedError<QuotaExhausted>("effect-llm-resilience/QuotaExhausted")(
  "QuotaExhausted",
  { model }
) {
  override get message(): string {
    return describe("The provider quota is exhausted", this.model)
  }
}

/**
 * The provider failed (HTTP 408, 409, 5xx or 529). Retryable.
 *
 * @example
 * ```ts
 * import { LlmError } from "effect-llm-resilience"
 * const error = new LlmError.ServerError({ model: "gpt-4o", status: 503 })
 * ```
 * @since 0.1.0
 * @category Errors
 */
export class ServerError extends Schema.TaggedError<ServerError>("effect-llm-resilience/ServerError")("ServerError", {
  model,
  status: Schema.Int,
  retryAfter: optionalRetryAfter
}) {
  override get message(): string {
    return describe(`The provider answered HTTP ${this.status}${seconds(this.retryAfter)}`, this.model)
  }
}

/**
 * Which deadline a {@link Timeout} hit: one provider call, the whole logical call, the first stream chunk,
 * or the gap between two chunks.
 *
 * @example
 * ```ts
 * import { LlmError } from "effect-llm-resilience"
 * const phase: LlmError.TimeoutPhase = "firstToken"
 * ```
 * @since 0.1.0
 * @category Models
 */
export const TimeoutPhase = Schema.Literal("attempt", "total", "firstToken", "idle")

/**
 * @since 0.1.0
 * @category Models
 */
export type TimeoutPhase = typeof TimeoutPhase.Type

/**
 * A deadline passed; the call was interrupted (so its HTTP request aborted). Retryable.
 *
 * @example
 * ```ts
 * import { Duration } from "effect"
 * import { LlmError } from "effect-llm-resilience"
 * const error = new LlmError.Timeout({ phase: "attempt", after: Duration.seconds(30), model: "gpt-4o" })
 * ```
 * @since 0.1.0
 * @category Errors
 */
export class Timeout extends Schema.TaggedError<Timeout>("effect-llm-resilience/Timeout")("Timeout", {
  model,
  phase: TimeoutPhase,
  after: Schema.DurationFromMillis
}) {
  override get message(): string {
    return describe(`Timed out (${this.phase}) after ${Duration.format(this.after)}`, this.model)
  }
}

/**
 * The connection to the provider failed (refused, reset, DNS). Retryable.
 *
 * @example
 * ```ts
 * import { LlmError } from "effect-llm-resilience"
 * const error = new LlmError.ConnectionError({ model: "gpt-4o", reason: "ECONNRESET" })
 * ```
 * @since 0.1.0
 * @category Errors
 */
export class ConnectionError extends Schema.TaggedError<ConnectionError>("effect-llm-resilience/ConnectionError")(
  "ConnectionError",
  { model, reason: Schema.optional(Schema.String) }
) {
  override get message(): string {
    return describe(`Connection to the provider failed${this.reason ? `: ${this.reason}` : ""}`, this.model)
  }
}

/**
 * The provider rejected the request as invalid (HTTP 400/422). `code`, `type` and `param` are the provider's
 * error fields (its free-text message is left out: it may quote the prompt). Never retryable.
 *
 * @example
 * ```ts
 * import { LlmError } from "effect-llm-resilience"
 * const error = new LlmError.BadRequest({ model: "gpt-4o", status: 400, param: "temperature" })
 * ```
 * @since 0.1.0
 * @category Errors
 */
export class BadRequest extends Schema.TaggedError<BadRequest>("effect-llm-resilience/BadRequest")("BadRequest", {
  model,
  status: Schema.optional(Schema.Int),
  code: Schema.optional(Schema.String),
  type: Schema.optional(Schema.String),
  param: Schema.optional(Schema.String),
  reason: Schema.optional(Schema.String)
}) {
  override get message(): string {
    const parts = [this.code && `code ${this.code}`, this.param && `param ${this.param}`, this.reason].filter(Boolean)
    return describe(`The request was rejected as invalid${parts.length ? ` (${parts.join(", ")})` : ""}`, this.model)
  }
}

/**
 * The prompt does not fit the model's context window (provider code `context_length_exceeded`, or found
 * before calling by PromptTrim). Never retryable on the same model; Fallback moves on to a larger one.
 *
 * @example
 * ```ts
 * import { LlmError } from "effect-llm-resilience"
 * const error = new LlmError.ContextTooLong({ model: "gpt-4", contextWindow: 8192, requestedTokens: 9000 })
 * ```
 * @since 0.1.0
 * @category Errors
 */
export class ContextTooLong extends Schema.TaggedError<ContextTooLong>("effect-llm-resilience/ContextTooLong")(
  "ContextTooLong",
  {
    model,
    contextWindow: Schema.optional(Schema.Int),
    requestedTokens: Schema.optional(Schema.Int)
  }
) {
  override get message(): string {
    const detail = this.contextWindow !== undefined
      ? ` (${this.requestedTokens ?? "?"} tokens requested, window ${this.contextWindow})`
      : ""
    return describe(`The prompt does not fit the context window${detail}`, this.model)
  }
}

/**
 * The provider's content filter refused the request or the answer. Never retryable on the same model.
 *
 * @example
 * ```ts
 * import { LlmError } from "effect-llm-resilience"
 * const error = new LlmError.ContentFiltered({ model: "gpt-4o" })
 * ```
 * @since 0.1.0
 * @category Errors
 */
export class ContentFiltered extends Schema.TaggedError<ContentFiltered>("effect-llm-resilience/ContentFiltered")(
  "ContentFiltered",
  { model }
) {
  override get message(): string {
    return describe("The content filter refused the request", this.model)
  }
}

/**
 * The API key is missing, wrong or not allowed (HTTP 401/403). Never retryable.
 *
 * @example
 * ```ts
 * import { LlmError } from "effect-llm-resilience"
 * const error = new LlmError.AuthError({ model: "gpt-4o", status: 401 })
 * ```
 * @since 0.1.0
 * @category Errors
 */
export class AuthError extends Schema.TaggedError<AuthError>("effect-llm-resilience/AuthError")("AuthError", {
  model,
  status: Schema.optional(Schema.Int)
}) {
  override get message(): string {
    return describe(`The provider refused the credentials${this.status ? ` (HTTP ${this.status})` : ""}`, this.model)
  }
}

/**
 * The model does not exist or the key has no access to it (HTTP 404). Not retryable; Fallback moves on.
 *
 * @example
 * ```ts
 * import { LlmError } from "effect-llm-resilience"
 * const error = new LlmError.ModelNotFound({ model: "gpt-9" })
 * ```
 * @since 0.1.0
 * @category Errors
 */
export class ModelNotFound extends Schema.TaggedError<ModelNotFound>("effect-llm-resilience/ModelNotFound")(
  "ModelNotFound",
  { model }
) {
  override get message(): string {
    return describe("The model was not found", this.model)
  }
}

/**
 * The provider's body did not decode (invalid JSON, missing fields). Retryable.
 *
 * @example
 * ```ts
 * import { LlmError } from "effect-llm-resilience"
 * const error = new LlmError.MalformedResponse({ model: "gpt-4o", reason: "invalid JSON" })
 * ```
 * @since 0.1.0
 * @category Errors
 */
export class MalformedResponse extends Schema.TaggedError<MalformedResponse>(
  "effect-llm-resilience/MalformedResponse"
)("MalformedResponse", { model, reason: Schema.String }) {
  override get message(): string {
    return describe(`The provider's response did not decode: ${this.reason}`, this.model)
  }
}

/**
 * A stream ended without a finish reason or `[DONE]`. `receivedChunks` (and `outputTokens` when known) tell how
 * much arrived, so a budget charges what was used. Retryable (before the first chunk reached the caller).
 *
 * @example
 * ```ts
 * import { LlmError } from "effect-llm-resilience"
 * const error = new LlmError.StreamTruncated({ model: "gpt-4o", receivedChunks: 3 })
 * ```
 * @since 0.1.0
 * @category Errors
 */
export class StreamTruncated extends Schema.TaggedError<StreamTruncated>("effect-llm-resilience/StreamTruncated")(
  "StreamTruncated",
  { model, receivedChunks: Schema.NonNegativeInt, outputTokens: Schema.optional(Schema.NonNegativeInt) }
) {
  override get message(): string {
    return describe(`The stream was cut after ${this.receivedChunks} chunks`, this.model)
  }
}

/**
 * A circuit breaker is open for `key`; the provider was not called. `retryAfter` is when it half-opens.
 * Retry does not retry it; Fallback moves on to the next model.
 *
 * @example
 * ```ts
 * import { Duration } from "effect"
 * import { LlmError } from "effect-llm-resilience"
 * const error = new LlmError.CircuitOpen({ key: "gpt-4o", retryAfter: Duration.seconds(30) })
 * ```
 * @since 0.1.0
 * @category Errors
 */
export class CircuitOpen extends Schema.TaggedError<CircuitOpen>("effect-llm-resilience/CircuitOpen")("CircuitOpen", {
  model,
  key: Schema.String,
  retryAfter: Schema.DurationFromMillis
}) {
  override get message(): string {
    return describe(`The circuit "${this.key}" is open${seconds(this.retryAfter)}`, this.model)
  }
}

/**
 * A bulkhead is full for `key` (all `maxConcurrent` slots busy and `maxQueue` waiters queued); the provider
 * was not called. Not retryable (shed load); Fallback moves on.
 *
 * @example
 * ```ts
 * import { LlmError } from "effect-llm-resilience"
 * const error = new LlmError.BulkheadRejected({ key: "gpt-4o", maxConcurrent: 10, maxQueue: 100 })
 * ```
 * @since 0.1.0
 * @category Errors
 */
export class BulkheadRejected extends Schema.TaggedError<BulkheadRejected>("effect-llm-resilience/BulkheadRejected")(
  "BulkheadRejected",
  { model, key: Schema.String, maxConcurrent: Schema.NonNegativeInt, maxQueue: Schema.NonNegativeInt }
) {
  override get message(): string {
    return describe(
      `The bulkhead "${this.key}" is full (${this.maxConcurrent} running, ${this.maxQueue} queued)`,
      this.model
    )
  }
}

/**
 * A token budget cannot fit the call; the provider was not called. `requested` and `remaining` are in the
 * budget's `unit` (tokens or USD). `scope` names the budget (e.g. "global" or "user"), never a user id in clear.
 *
 * @example
 * ```ts
 * import { LlmError } from "effect-llm-resilience"
 * const error = new LlmError.BudgetExceeded({ scope: "user", requested: 1200, remaining: 300 })
 * ```
 * @since 0.1.0
 * @category Errors
 */
export class BudgetExceeded extends Schema.TaggedError<BudgetExceeded>("effect-llm-resilience/BudgetExceeded")(
  "BudgetExceeded",
  {
    model,
    scope: Schema.String,
    requested: Schema.Number,
    remaining: Schema.Number,
    unit: Schema.optional(Schema.Literal("tokens", "usd"))
  }
) {
  override get message(): string {
    const unit = this.unit ?? "tokens"
    return describe(
      `The ${this.scope} budget cannot fit ${this.requested} ${unit} (${this.remaining} ${unit} remaining)`,
      this.model
    )
  }
}

/**
 * An idempotency key is in flight (with `onInFlight: "reject"`) or was used with a different payload.
 *
 * @example
 * ```ts
 * import { LlmError } from "effect-llm-resilience"
 * const error = new LlmError.IdempotencyConflict({ key: "order-42", reason: "payload-mismatch" })
 * ```
 * @since 0.1.0
 * @category Errors
 */
export class IdempotencyConflict extends Schema.TaggedError<IdempotencyConflict>(
  "effect-llm-resilience/IdempotencyConflict"
)("IdempotencyConflict", {
  model,
  key: Schema.String,
  reason: Schema.Literal("in-flight", "payload-mismatch")
}) {
  override get message(): string {
    return describe(
      // The key stays out of the message: it may carry user data (it is in the `key` field for programs).
      this.reason === "in-flight"
        ? "A call with the same idempotency key is already in flight"
        : "The idempotency key was already used with a different request",
      this.model
    )
  }
}

/**
 * Every error but {@link AllModelsFailed}: what one model of a fallback chain failed with.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { LlmError } from "effect-llm-resilience"
 * const decode = Schema.decodeUnknownSync(LlmError.ModelFailure)
 * ```
 * @since 0.1.0
 * @category Errors
 */
export const ModelFailure = Schema.Union(
  RateLimited,
  QuotaExhausted,
  ServerError,
  Timeout,
  ConnectionError,
  BadRequest,
  ContextTooLong,
  ContentFiltered,
  AuthError,
  ModelNotFound,
  MalformedResponse,
  StreamTruncated,
  CircuitOpen,
  BulkheadRejected,
  BudgetExceeded,
  IdempotencyConflict
)

/**
 * @since 0.1.0
 * @category Errors
 */
export type ModelFailure = typeof ModelFailure.Type

/**
 * Every model of a fallback chain failed. `failures` holds each model's last error, in chain order.
 *
 * @example
 * ```ts
 * import { LlmError } from "effect-llm-resilience"
 * const error = new LlmError.AllModelsFailed({
 *   failures: [new LlmError.ServerError({ model: "a", status: 503 }), new LlmError.ModelNotFound({ model: "b" })]
 * })
 * ```
 * @since 0.1.0
 * @category Errors
 */
export class AllModelsFailed extends Schema.TaggedError<AllModelsFailed>("effect-llm-resilience/AllModelsFailed")(
  "AllModelsFailed",
  { model, failures: Schema.Array(ModelFailure) }
) {
  override get message(): string {
    return `All models failed: ${this.failures.map((f) => `${f.model ?? "?"} → ${f._tag}`).join(", ")}`
  }
}

/**
 * The error of an LLM call.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { LlmError } from "effect-llm-resilience"
 * const encode = Schema.encodeSync(LlmError.LlmError)
 * encode(new LlmError.ModelNotFound({ model: "gpt-9" }))
 * ```
 * @since 0.1.0
 * @category Errors
 */
export const LlmError = Schema.Union(ModelFailure, AllModelsFailed)

/**
 * @since 0.1.0
 * @category Errors
 */
export type LlmError = typeof LlmError.Type

/**
 * The tag of any {@link LlmError}.
 *
 * @example
 * ```ts
 * import { LlmError } from "effect-llm-resilience"
 * const tag: LlmError.Tag = "RateLimited"
 * ```
 * @since 0.1.0
 * @category Models
 */
export type Tag = LlmError["_tag"]

const tags: ReadonlySet<string> = new Set<Tag>([
  "RateLimited",
  "QuotaExhausted",
  "ServerError",
  "Timeout",
  "ConnectionError",
  "BadRequest",
  "ContextTooLong",
  "ContentFiltered",
  "AuthError",
  "ModelNotFound",
  "MalformedResponse",
  "StreamTruncated",
  "CircuitOpen",
  "BulkheadRejected",
  "BudgetExceeded",
  "IdempotencyConflict",
  "AllModelsFailed"
])

const retryableTags: ReadonlySet<string> = new Set<Tag>([
  "RateLimited",
  "ServerError",
  "Timeout",
  "ConnectionError",
  "MalformedResponse",
  "StreamTruncated"
])

/**
 * True when `u` is one of this library's {@link LlmError}s.
 *
 * @example
 * ```ts
 * import { LlmError } from "effect-llm-resilience"
 * LlmError.isLlmError(new LlmError.ModelNotFound({})) // true
 * LlmError.isLlmError(new Error("x")) // false
 * ```
 * @since 0.1.0
 * @category Guards
 */
export const isLlmError = (u: unknown): u is LlmError =>
  Predicate.hasProperty(u, "_tag") && typeof u._tag === "string" && tags.has(u._tag) && u instanceof Error

/**
 * The one retry classification: true only for RateLimited, ServerError, Timeout, ConnectionError,
 * MalformedResponse and StreamTruncated. Validation, auth, quota, context-length, content, breaker, bulkhead,
 * budget and idempotency errors are never retried.
 *
 * @example
 * ```ts
 * import { LlmError } from "effect-llm-resilience"
 * LlmError.isRetryable(new LlmError.ServerError({ status: 503 })) // true
 * LlmError.isRetryable(new LlmError.QuotaExhausted({})) // false
 * ```
 * @since 0.1.0
 * @category Guards
 */
export const isRetryable = (error: LlmError): boolean => retryableTags.has(error._tag)

/**
 * The wait the error asks for before another call: the provider's Retry-After on RateLimited and ServerError,
 * the time until half-open on CircuitOpen; none otherwise.
 *
 * @example
 * ```ts
 * import { Duration, Option } from "effect"
 * import { LlmError } from "effect-llm-resilience"
 * LlmError.retryAfter(new LlmError.RateLimited({ retryAfter: Duration.seconds(2) })) // Option.some(2 seconds)
 * ```
 * @since 0.1.0
 * @category Accessors
 */
export const retryAfter = (error: LlmError): Option.Option<Duration.Duration> => {
  switch (error._tag) {
    case "RateLimited":
    case "ServerError":
    case "CircuitOpen":
      return Option.fromNullable(error.retryAfter)
    default:
      return Option.none()
  }
}
