/**
 * The provider-independent half of error classification, shared by every provider adapter (the `openai` SDK
 * adapter and the `@effect/ai` bridge): an HTTP error status (with the provider's error code) to an LlmError, and
 * the network code of a failed connection. Imports nothing but the error classes, so no adapter drags another's
 * driver in.
 */
import type { Duration } from "effect"
import {
  AuthError,
  BadRequest,
  ContentFiltered,
  ContextTooLong,
  type ModelFailure,
  ModelNotFound,
  QuotaExhausted,
  RateLimited,
  ServerError
} from "../LlmError.js"

/** The provider error codes that mean "the content filter refused it". */
export const contentFilterCodes: ReadonlySet<string> = new Set(["content_filter", "content_policy_violation"])

/** What an HTTP error response says, reduced to the fields the classification reads (no free text). */
export interface StatusFailure {
  readonly status: number
  readonly code?: string | null | undefined
  readonly type?: string | null | undefined
  readonly param?: string | null | undefined
  readonly retryAfter?: Duration.Duration | undefined
}

const orUndefined = (value: string | null | undefined): string | undefined =>
  typeof value === "string" && value.length > 0 ? value : undefined

/**
 * Classifies an HTTP error response: 400/422 → BadRequest (or ContextTooLong / ContentFiltered by code),
 * 401/403 → AuthError, 404 → ModelNotFound, 429 → RateLimited (QuotaExhausted for `insufficient_quota`),
 * 408, 409, 5xx and anything else → ServerError. Other 4xx are BadRequest.
 */
export const fromStatus = (failure: StatusFailure, model: string): ModelFailure => {
  const { status, retryAfter } = failure
  const code = orUndefined(failure.code)
  const type = orUndefined(failure.type)
  if (status === 401 || status === 403) return new AuthError({ model, status })
  if (status === 404) return new ModelNotFound({ model })
  if (status === 429) {
    return code === "insufficient_quota" || type === "insufficient_quota"
      ? new QuotaExhausted({ model })
      : new RateLimited({ model, retryAfter, source: "provider" })
  }
  if (status === 408 || status === 409 || status >= 500 || status < 400) {
    return new ServerError({ model, status, retryAfter })
  }
  if (code === "context_length_exceeded") return new ContextTooLong({ model })
  if (code !== undefined && contentFilterCodes.has(code)) return new ContentFiltered({ model })
  return new BadRequest({ model, status, code, type, param: orUndefined(failure.param) })
}

/**
 * The network code (ECONNREFUSED, UND_ERR_SOCKET…) of a failed connection, found on the error or its cause chain.
 * The code is safe to report, unlike messages, which may echo URLs or bodies.
 */
export const networkCode = (error: unknown, depth = 0): string | undefined => {
  if (depth > 4 || typeof error !== "object" || error === null) return undefined
  const code = (error as { readonly code?: unknown }).code
  if (typeof code === "string" && code.length > 0) return code
  return networkCode((error as { readonly cause?: unknown }).cause, depth + 1)
}
