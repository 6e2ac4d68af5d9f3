/**
 * Every refusal of the gateway as an OpenAI error: a status, a body `{ error: { message, type, code, param } }` (what
 * every OpenAI SDK parses into its error classes) and the headers (Retry-After). An upstream's credentials problem
 * is the gateway's, never the client's: it answers 502, not 401. Messages never hold prompt or completion text, an
 * upstream key, or the upstream's model names.
 */
import { Duration } from "effect"
import type { LlmError } from "../../LlmError.js"
import type { KeyRefused } from "./keys.js"

/** One OpenAI-shaped error answer. */
export interface ErrorAnswer {
  readonly status: number
  readonly body: {
    readonly error: {
      readonly message: string
      readonly type: string
      readonly code: string | null
      readonly param: string | null
    }
  }
  readonly headers: Readonly<Record<string, string>>
}

const answer = (
  status: number,
  type: string,
  code: string | null,
  message: string,
  options: { readonly param?: string | undefined; readonly retryAfter?: Duration.Duration | undefined } = {}
): ErrorAnswer => ({
  status,
  body: { error: { message, type, code, param: options.param ?? null } },
  headers: options.retryAfter === undefined ? {} : retryAfterHeaders(options.retryAfter)
})

/** `Retry-After` in whole seconds (rounded up, at least 1) and `retry-after-ms`. */
export const retryAfterHeaders = (wait: Duration.Duration): Record<string, string> => {
  const ms = Math.max(0, Math.ceil(Duration.toMillis(wait)))
  return { "retry-after": String(Math.max(1, Math.ceil(ms / 1000))), "retry-after-ms": String(ms) }
}

/** What the client did wrong (or is not allowed): the failure to show when every model of a chain failed. */
const clientSide = new Set<string>(["BadRequest", "ContextTooLong", "ContentFiltered", "BudgetExceeded", "IdempotencyConflict"])

/** The failure of a fallback chain to answer with: the client's own fault first, else the last model's. */
export const mostRelevant = (error: LlmError): LlmError => {
  if (error._tag !== "AllModelsFailed") return error
  const own = error.failures.find((f) => clientSide.has(f._tag))
  return own ?? error.failures.at(-1) ?? error
}

// The upstream's model name stays out: the client named the gateway's.
const badRequestMessage = (error: Extract<LlmError, { readonly _tag: "BadRequest" }>): string => {
  const parts = [error.code && `code ${error.code}`, error.param && `param ${error.param}`, error.reason].filter(Boolean)
  return `The request was rejected as invalid${parts.length > 0 ? ` (${parts.join(", ")})` : ""}`
}

/**
 * The answer to a failed call for `model` (the gateway model the client asked for). `budgetRetryAfter` gives the
 * wait until a budget's period ends, when it is known (a calendar period), by the budget's name.
 */
export const fromLlmError = (
  failure: LlmError,
  model: string,
  budgetRetryAfter: (name: string) => Duration.Duration | undefined = () => undefined
): ErrorAnswer => {
  const error = mostRelevant(failure)
  switch (error._tag) {
    case "RateLimited":
      return answer(429, "requests", "rate_limit_exceeded", error.source === "client"
        ? "Rate limit of this key reached"
        : "Rate limit of the upstream reached", { retryAfter: error.retryAfter })
    case "BudgetExceeded":
      return answer(429, "insufficient_quota", "budget_exceeded", `The ${error.scope} budget is spent: it cannot fit this request`, {
        retryAfter: budgetRetryAfter(error.scope)
      })
    case "QuotaExhausted":
      return answer(502, "server_error", "upstream_quota_exhausted", "The upstream's quota is exhausted")
    case "CircuitOpen":
      return answer(503, "server_error", "circuit_open", `The model ${model} is temporarily unavailable`, {
        retryAfter: error.retryAfter
      })
    case "BulkheadRejected":
      return answer(503, "server_error", "overloaded", `The model ${model} is at its concurrency limit`)
    case "BadRequest":
      return answer(400, "invalid_request_error", error.code ?? null, badRequestMessage(error), { param: error.param })
    case "ContextTooLong":
      return answer(400, "invalid_request_error", "context_length_exceeded", `The request does not fit the context window of ${model}`, {
        param: "messages"
      })
    case "ContentFiltered":
      return answer(400, "invalid_request_error", "content_filter", "The request or its answer was refused by a content filter")
    case "AuthError":
      return answer(502, "server_error", "upstream_auth_error", "The upstream refused the gateway's credentials")
    case "ModelNotFound":
      return answer(404, "invalid_request_error", "model_not_found", `The model ${model} does not exist`, { param: "model" })
    case "Timeout":
      return answer(504, "server_error", "timeout", `The model ${model} did not answer in time`)
    case "IdempotencyConflict":
      return answer(409, "invalid_request_error", "idempotency_conflict", error.reason === "in-flight"
        ? "A request with the same Idempotency-Key is in flight"
        : "The Idempotency-Key was already used with a different request", { param: "Idempotency-Key" })
    case "ServerError":
      return answer(502, "server_error", "upstream_error", `The upstream failed (status ${error.status})`, {
        retryAfter: error.retryAfter
      })
    case "ConnectionError":
      return answer(502, "server_error", "upstream_unreachable", "The upstream could not be reached")
    case "MalformedResponse":
      return answer(502, "server_error", "upstream_malformed", "The upstream sent a malformed answer")
    case "StreamTruncated":
      return answer(502, "server_error", "upstream_stream_cut", "The upstream cut its stream")
    case "AllModelsFailed":
      return answer(502, "server_error", "all_models_failed", "Every model failed")
  }
}

/** 401 for a missing or unknown key, 403 for a revoked or expired one. */
export const fromKeyRefused = (refused: KeyRefused): ErrorAnswer => {
  switch (refused.reason) {
    case "missing":
      return answer(401, "invalid_request_error", "missing_api_key", "Give a key: Authorization: Bearer <key>")
    case "unknown":
      return answer(401, "invalid_request_error", "invalid_api_key", "Incorrect API key provided")
    case "revoked":
      return answer(403, "invalid_request_error", "key_revoked", "This key was revoked")
    case "expired":
      return answer(403, "invalid_request_error", "key_expired", "This key has expired")
  }
}

/** The key may not call this model. */
export const modelNotAllowed = (model: string): ErrorAnswer =>
  answer(403, "invalid_request_error", "model_not_allowed", `This key may not call the model ${model}`, { param: "model" })

/** The gateway has no such model. */
export const unknownModel = (model: string): ErrorAnswer =>
  answer(404, "invalid_request_error", "model_not_found", `The model ${model} does not exist`, { param: "model" })

/** No such route. */
export const notFound = (method: string, path: string): ErrorAnswer =>
  answer(404, "invalid_request_error", "unknown_url", `Unknown request URL: ${method} ${path}`)

/** A body the gateway cannot read (never quoting its values: they may be prompt text). */
export const invalidBody = (message: string, param: string | null = null): ErrorAnswer =>
  answer(400, "invalid_request_error", null, message, { param: param ?? undefined })

/** The key store cannot be read. */
export const keyStoreUnavailable: ErrorAnswer = answer(503, "server_error", "key_store_unavailable", "Keys cannot be checked right now", {
  retryAfter: Duration.seconds(1)
})

/** The gateway is shutting down: another replica should take the request. */
export const shuttingDown: ErrorAnswer = answer(503, "server_error", "shutting_down", "The gateway is shutting down", {
  retryAfter: Duration.seconds(1)
})

/** An unexpected failure (a defect), told without its details. */
export const internal: ErrorAnswer = answer(500, "server_error", "internal_error", "The gateway failed to serve the request")
