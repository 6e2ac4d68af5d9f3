/**
 * `AiError` ⇄ `LlmError`. Down (an `@effect/ai` provider under an `LlmClient`), every `AiError` becomes one of the
 * LlmError taxonomy by the rules of the OpenAI adapter: HTTP status (and the provider's error code) → tag,
 * `retry-after-ms` / `retry-after` → `retryAfter`, an undecodable body → MalformedResponse. Up (the policies as a
 * `LanguageModel`), every LlmError travels as the `cause` of an `AiError`.
 *
 * Nothing is copied from an `AiError` but its status, headers it was asked for and the provider's error code: its
 * request (with the `x-api-key` / `authorization` header), its body and its description (which may quote the prompt
 * or the completion) never reach an LlmError.
 */
import * as AiError from "@effect/ai/AiError"
import type { Duration } from "effect"
import { Option } from "effect"
import {
  BadRequest,
  ConnectionError,
  ContentFiltered,
  ContextTooLong,
  isLlmError,
  type LlmError,
  MalformedResponse,
  type ModelFailure,
  QuotaExhausted,
  StreamTruncated
} from "../LlmError.js"
import { fromStatus, networkCode } from "./providerErrors.js"
import * as RetryAfter from "./retryAfter.js"

/** Where the error happened: sending the request (or reading a JSON answer), or reading an opened stream. */
export type Phase = "request" | "stream"

/** What the mapping needs to know besides the error. */
export interface Context {
  readonly model: string
  /** Effect clock time, to read an HTTP-date Retry-After. */
  readonly nowMillis: number
  readonly phase: Phase
  /** Chunks emitted so far (streams). */
  readonly receivedChunks: number
}

/** The fields of a provider error body the classification reads. */
interface ErrorFields {
  readonly code?: string | undefined
  readonly type?: string | undefined
  readonly param?: string | undefined
  readonly message?: string | undefined
}

const stringField = (record: Readonly<Record<string, unknown>>, key: string): string | undefined => {
  const value = record[key]
  return typeof value === "string" && value.length > 0 ? value : undefined
}

const isRecord = (u: unknown): u is Readonly<Record<string, unknown>> =>
  typeof u === "object" && u !== null && !Array.isArray(u)

/**
 * The error fields of a body: OpenAI's `{ error: { code, type, param, message } }` and Anthropic's
 * `{ type: "error", error: { type, message } }` alike. A body given as JSON text (possibly JSON-encoded twice,
 * as `@effect/ai` formats text bodies) is parsed first.
 */
export const errorFields = (body: unknown, depth = 0): ErrorFields | undefined => {
  if (typeof body === "string") {
    if (depth > 1) return undefined
    try {
      return errorFields(JSON.parse(body), depth + 1)
    } catch {
      return undefined
    }
  }
  if (!isRecord(body)) return undefined
  const inner = isRecord(body.error) ? body.error : body
  return {
    code: stringField(inner, "code"),
    type: stringField(inner, "type"),
    param: stringField(inner, "param"),
    message: stringField(inner, "message")
  }
}

// Anthropic reports these as a plain 400 `invalid_request_error`; only the message tells them apart. The message
// is read, never copied.
const promptTooLong = /prompt is too long|too many (input )?tokens|context (window|length)/i
const creditTooLow = /credit balance is too low/i
const filtered = /content filtering policy/i

/** An HTTP error status with the provider's error fields, classified. */
export const fromStatusAndFields = (
  status: number,
  fields: ErrorFields | undefined,
  model: string,
  retryAfter: Option.Option<Duration.Duration>
): ModelFailure => {
  const message = fields?.message ?? ""
  // Anthropic's `billing_error` (402, or a spent quota) is OpenAI's `insufficient_quota`.
  if (fields?.type === "billing_error") return new QuotaExhausted({ model })
  if (status === 400 || status === 413) {
    if (fields?.code === undefined && promptTooLong.test(message)) return new ContextTooLong({ model })
    if (fields?.code === undefined && filtered.test(message)) return new ContentFiltered({ model })
    if (creditTooLow.test(message)) return new QuotaExhausted({ model })
  }
  return fromStatus({
    status,
    code: fields?.code,
    type: fields?.type,
    param: fields?.param,
    retryAfter: Option.getOrUndefined(retryAfter)
  }, model)
}

const responseError = (error: AiError.HttpResponseError, context: Context): ModelFailure => {
  const { model } = context
  switch (error.reason) {
    case "StatusCode": {
      const fields = errorFields(error.body) ?? errorFields(error.description)
      const retryAfter = RetryAfter.fromHeaders(error.response.headers, context.nowMillis)
      return fromStatusAndFields(error.response.status, fields, model, retryAfter)
    }
    // An opened stream whose body cannot be read any further: the connection broke before the finish.
    case "Decode":
      return context.phase === "stream"
        ? new StreamTruncated({ model, receivedChunks: context.receivedChunks })
        : new MalformedResponse({ model, reason: "the body did not decode (invalid JSON or a cut body)" })
    case "EmptyBody":
      return context.phase === "stream"
        ? new StreamTruncated({ model, receivedChunks: context.receivedChunks })
        : new MalformedResponse({ model, reason: "empty body" })
  }
}

const requestError = (error: AiError.HttpRequestError, model: string): ModelFailure => {
  switch (error.reason) {
    case "Transport":
      return new ConnectionError({ model, reason: networkCode(error.cause) ?? "transport error" })
    case "Encode":
      return new BadRequest({ model, reason: "the request body could not be encoded" })
    case "InvalidUrl":
      return new BadRequest({ model, reason: "the provider URL is invalid" })
  }
}

/**
 * The LlmError an `AiError` carries as its cause (an `AiError` made by {@link toAiError}, e.g. by a
 * `LanguageModel` over this library's policies), if any.
 */
export const llmErrorOf = (error: unknown): Option.Option<LlmError> => {
  if (isLlmError(error)) return Option.some(error)
  if (!AiError.isAiError(error) || !("cause" in error)) return Option.none()
  return isLlmError(error.cause) ? Option.some(error.cause) : Option.none()
}

/** Maps any `AiError` to an LlmError (never copying its request, body or description). */
export const toLlmError = (error: AiError.AiError, context: Context): LlmError => {
  const carried = llmErrorOf(error)
  if (Option.isSome(carried)) return carried.value
  const { model } = context
  switch (error._tag) {
    case "HttpResponseError":
      return responseError(error, context)
    case "HttpRequestError":
      return requestError(error, model)
    case "MalformedOutput":
      return new MalformedResponse({ model, reason: "the provider's answer did not match the expected shape" })
    case "MalformedInput":
      return new BadRequest({ model, reason: "the prompt could not be encoded for this provider" })
    case "UnknownError":
      return new MalformedResponse({ model, reason: "the provider failed with an unknown error" })
  }
}

// Anthropic's error event types, by the HTTP status they stand for.
const statusOfErrorType: Readonly<Record<string, number>> = {
  invalid_request_error: 400,
  authentication_error: 401,
  billing_error: 402,
  permission_error: 403,
  not_found_error: 404,
  request_too_large: 413,
  rate_limit_error: 429,
  api_error: 500,
  timeout_error: 504,
  overloaded_error: 529
}

/**
 * An `error` part of a stream (the provider's error event, e.g. Anthropic's `overloaded_error`): classified like the
 * HTTP status it stands for; an event of no known type is a truncation, as in the OpenAI adapter.
 */
export const fromErrorPart = (event: unknown, context: Context): ModelFailure => {
  const fields = errorFields(event)
  const status = fields?.type === undefined ? undefined : statusOfErrorType[fields.type]
  return status === undefined
    ? new StreamTruncated({ model: context.model, receivedChunks: context.receivedChunks })
    : fromStatusAndFields(status, fields, context.model, Option.none())
}

/**
 * An LlmError as an `AiError` keeping it as its `cause`: MalformedResponse as `MalformedOutput`, every other
 * error as `UnknownError`. The description is the LlmError's message (which never quotes a prompt or a key).
 */
export const toAiError = (error: LlmError, method: string): AiError.AiError =>
  error._tag === "MalformedResponse"
    ? new AiError.MalformedOutput({ module: "EffectAi", method, description: error.message, cause: error })
    : new AiError.UnknownError({ module: "EffectAi", method, description: error.message, cause: error })
