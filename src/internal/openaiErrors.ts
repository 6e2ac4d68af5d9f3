import { Option } from "effect"
import { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError, OpenAIError } from "openai"
import { ConnectionError, MalformedResponse, type ModelFailure } from "../LlmError.js"
import { fromStatus, networkCode } from "./providerErrors.js"
import * as RetryAfter from "./retryAfter.js"

export { contentFilterCodes, fromStatus, type StatusFailure } from "./providerErrors.js"

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
