import type { Duration } from "effect"
import { Option } from "effect"
import { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError, OpenAIError } from "openai"
import {
  AuthError,
  BadRequest,
  ConnectionError,
  ContentFiltered,
  ContextTooLong,
  MalformedResponse,
  type ModelFailure,
  ModelNotFound,
  QuotaExhausted,
  RateLimited,
  ServerError
} from "../LlmError.js"
import * as RetryAfter from "./retryAfter.js"

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

// Network errors from fetch carry a code (ECONNREFUSED, UND_ERR_SOCKET…) on the error or its cause chain;
// the code is safe to report, unlike messages, which may echo URLs or bodies.
const networkCode = (error: unknown, depth = 0): string | undefined => {
  if (depth > 4 || typeof error !== "object" || error === null) return undefined
  const code = (error as { readonly code?: unknown }).code
  if (typeof code === "string" && code.length > 0) return code
  return networkCode((error as { readonly cause?: unknown }).cause, depth + 1)
}

const errorName = (error: unknown): string =>
  error instanceof Error ? error.name : typeof error

/**
 * Maps anything the `openai` SDK (or fetch below it) throws to an LlmError. `nowMillis` reads Retry-After
 * dates. Messages are never copied: they may quote the prompt.
 */
export const fromUnknown = (error: unknown, model: string, nowMillis: number): ModelFailure => {
  if (error instanceof APIConnectionTimeoutError) return new ConnectionError({ model, reason: "timeout" })
  if (error instanceof APIUserAbortError) return new ConnectionError({ model, reason: "aborted" })
  if (error instanceof APIConnectionError) {
    return new ConnectionError({ model, reason: networkCode(error.cause) ?? "connection failed" })
  }
  if (error instanceof APIError) {
    if (typeof error.status !== "number") {
      return new MalformedResponse({ model, reason: "the provider sent an error without an HTTP status" })
    }
    return fromStatus({
      status: error.status,
      code: error.code,
      type: error.type,
      param: error.param,
      retryAfter: Option.getOrUndefined(RetryAfter.fromHeaders(error.headers, nowMillis))
    }, model)
  }
  if (error instanceof SyntaxError) return new MalformedResponse({ model, reason: "invalid JSON" })
  if (error instanceof OpenAIError) return new MalformedResponse({ model, reason: errorName(error) })
  return new ConnectionError({ model, reason: networkCode(error) ?? errorName(error) })
}
