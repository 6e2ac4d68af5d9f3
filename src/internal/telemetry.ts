/**
 * Span helpers shared by the call span (outermost), the attempt span (innermost) and the policies' span events.
 *
 * Every helper is a no-op unless a tracer other than Effect's built-in one is installed (OpenTelemetry, OTLP, a
 * test's own): Effect's own tracer exports nothing, so the library spends nothing on spans under it, not even an
 * attribute object.
 */
import { Cause, Clock, Context, Effect, Exit, FiberRef, Option, Tracer } from "effect"
import type * as Fiber from "effect/Fiber"
import type { ChatMessage, ChatRequest, ToolCall, Usage } from "../Llm.js"
import { isLlmError, type LlmError } from "../LlmError.js"
import * as LlmMetrics from "../LlmMetrics.js"

/** Where a client sends its calls: what the spans and the GenAI metrics name as provider and server. */
export interface ProviderInfo {
  readonly provider: string
  readonly serverAddress: string | undefined
  readonly serverPort: number | undefined
}

/** A fiber of any type (the helpers only read its services, FiberRefs and current span). */
export type AnyFiber = Fiber.RuntimeFiber<unknown, unknown>

// Effect's default tracer: its spans go nowhere.
const nativeTracer = Effect.runSync(Effect.tracer)

/** Whether spans made on `fiber` go anywhere. */
export const isTracing = (fiber: AnyFiber): boolean =>
  Context.get(fiber.currentDefaultServices, Tracer.Tracer) !== nativeTracer &&
  fiber.getFiberRef(FiberRef.currentTracerEnabled)

/** The span clock's time (the tracer's own timestamps use it too). */
export const nowNanos = (fiber: AnyFiber): bigint =>
  Context.get(fiber.currentDefaultServices, Clock.Clock).unsafeCurrentTimeNanos()

const callSpans = new WeakSet<Tracer.Span>()

/** Marks `span` as the span of one logical call. */
export const markCall = (span: Tracer.Span): void => {
  callSpans.add(span)
}

/** Whether `span` is a logical call's span. */
export const isCallSpan = (span: Tracer.AnySpan | undefined): boolean =>
  span !== undefined && span._tag === "Span" && callSpans.has(span)

/** Whether `span` is a logical call's span or lies inside one (a policy may open a span of its own in between). */
export const isWithinCall = (span: Tracer.AnySpan | undefined): boolean => {
  let current = span
  for (let depth = 0; current !== undefined && current._tag === "Span" && depth < 32; depth++) {
    if (callSpans.has(current)) return true
    current = Option.getOrUndefined(current.parent)
  }
  return false
}

/**
 * Adds an event to the current span, when spans go anywhere. `attributes` is only called then, so a policy pays
 * nothing for its event otherwise.
 */
export const addEvent = (name: string, attributes: () => Record<string, unknown>): Effect.Effect<void> =>
  Effect.withFiberRuntime((fiber) => {
    const span = fiber.currentSpan
    if (span !== undefined && span._tag === "Span" && isTracing(fiber)) span.event(name, nowNanos(fiber), attributes())
    return Effect.void
  })

type SdkSpan = { readonly setAttribute?: unknown }

/**
 * Sets a list attribute (`gen_ai.response.finish_reasons` is a string[]). `@effect/opentelemetry`'s bridge to the
 * OpenTelemetry SDK turns every non-primitive value into a string; its spans keep the SDK span as `span`, which
 * takes a list of strings as is, so the list is set there too.
 */
export const setList = (span: Tracer.Span, key: string, values: ReadonlyArray<string>): void => {
  span.attribute(key, values)
  const sdk = (span as { readonly span?: SdkSpan }).span
  if (sdk !== undefined && typeof sdk.setAttribute === "function") {
    ;(sdk.setAttribute as (key: string, value: ReadonlyArray<string>) => void).call(sdk, key, values)
  }
}

const A = LlmMetrics.attributes

/** The name of a logical call's span, as the conventions give it: `{operation} {model}`. */
export const callSpanName = (request: ChatRequest): string => `chat ${request.model}`

/** The attempt span's name. */
export const attemptSpanName = "llm.attempt"

/** Provider and server attributes (on every span the library opens for a call). */
export const setProvider = (span: Tracer.Span, info: ProviderInfo): void => {
  span.attribute(A.providerName, info.provider)
  if (info.serverAddress !== undefined) span.attribute(A.serverAddress, info.serverAddress)
  if (info.serverPort !== undefined) span.attribute(A.serverPort, info.serverPort)
}

/** The request's attributes on a logical call's span (never its text, unless `content` says so). */
export const setRequest = (
  span: Tracer.Span,
  request: ChatRequest,
  info: ProviderInfo,
  stream: boolean,
  content: boolean
): void => {
  span.attribute(A.operationName, "chat")
  span.attribute(A.system, info.provider)
  setProvider(span, info)
  span.attribute(A.requestModel, request.model)
  if (request.maxTokens !== undefined) span.attribute(A.requestMaxTokens, request.maxTokens)
  if (request.temperature !== undefined) span.attribute(A.requestTemperature, request.temperature)
  if (request.topP !== undefined) span.attribute(A.requestTopP, request.topP)
  if (request.seed !== undefined) span.attribute(A.requestSeed, request.seed)
  if (stream) span.attribute(A.stream, true)
  if (content) span.attribute(A.inputMessages, JSON.stringify(request.messages.map(inputMessage)))
}

/** What a call ended with, as far as the spans say it. */
export interface Outcome {
  readonly model: string
  readonly id: string | undefined
  readonly content: string
  readonly finishReason: string | undefined
  readonly toolCalls: ReadonlyArray<ToolCall> | undefined
  readonly usage: Usage | undefined
  readonly servedFrom: string | undefined
}

/** The response's attributes on a logical call's span. */
export const setOutcome = (span: Tracer.Span, outcome: Outcome, content: boolean): void => {
  span.attribute(A.responseModel, outcome.model)
  if (outcome.id !== undefined) span.attribute(A.responseId, outcome.id)
  if (outcome.finishReason !== undefined) setList(span, A.responseFinishReasons, [outcome.finishReason])
  // A cached or replayed answer used no tokens: no usage, so a backend summing gen_ai.usage.* does not charge it.
  if (outcome.usage !== undefined && (outcome.servedFrom === undefined || outcome.servedFrom === "provider")) {
    span.attribute(A.usageInputTokens, outcome.usage.inputTokens)
    span.attribute(A.usageOutputTokens, outcome.usage.outputTokens)
    setUsageDetails(span, outcome.usage)
    if (outcome.usage.estimated === true) span.attribute(A.usageEstimated, true)
  }
  if (outcome.servedFrom !== undefined) span.attribute(A.servedFrom, outcome.servedFrom)
  if (content) span.attribute(A.outputMessages, JSON.stringify([outputMessage(outcome)]))
}

/** The parts of a usage priced apart, as the conventions spell them (only those the provider reported). */
export const setUsageDetails = (span: Tracer.Span, usage: Usage): void => {
  if (usage.cachedInputTokens !== undefined) span.attribute(A.usageCacheReadInputTokens, usage.cachedInputTokens)
  if (usage.cacheWriteInputTokens !== undefined) span.attribute(A.usageCacheCreationInputTokens, usage.cacheWriteInputTokens)
  if (usage.reasoningTokens !== undefined) span.attribute(A.usageReasoningOutputTokens, usage.reasoningTokens)
}

/** The low-cardinality name of what a call failed with: the error's tag, "Interrupted", or "_OTHER". */
export const errorType = (cause: Cause.Cause<unknown>): string => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) return isLlmError(failure.value) ? failure.value._tag : "_OTHER"
  return Cause.isInterruptedOnly(cause) ? "Interrupted" : "_OTHER"
}

/** `error.type` on a span whose call failed (an interruption is not an error: no attribute). */
export const setExit = (span: Tracer.Span, exit: Exit.Exit<unknown, unknown>): void => {
  if (Exit.isFailure(exit) && !Cause.isInterruptedOnly(exit.cause)) span.attribute(A.errorType, errorType(exit.cause))
}

// The conventions' message shapes: https://opentelemetry.io/docs/specs/semconv/gen-ai/ (gen-ai-input-messages.json)
const toolCallPart = (call: ToolCall) => ({ type: "tool_call", id: call.id, name: call.name, arguments: call.arguments })

const inputMessage = (message: ChatMessage) => {
  if (message.role === "tool") {
    return { role: "tool", parts: [{ type: "tool_call_response", id: message.toolCallId ?? "", response: message.content }] }
  }
  const parts: Array<Record<string, unknown>> = message.content.length > 0 ? [{ type: "text", content: message.content }] : []
  for (const call of message.toolCalls ?? []) parts.push(toolCallPart(call))
  return message.name === undefined ? { role: message.role, parts } : { role: message.role, name: message.name, parts }
}

const outputMessage = (outcome: Outcome) => {
  const parts: Array<Record<string, unknown>> = outcome.content.length > 0 ? [{ type: "text", content: outcome.content }] : []
  for (const call of outcome.toolCalls ?? []) parts.push(toolCallPart(call))
  return { role: "assistant", parts, finish_reason: outcome.finishReason ?? "" }
}

// ---------------------------------------------------------------------------------------------------------------
// The policies' span events (names in LlmMetrics.events; attributes listed in docs/observability.md).

const E = LlmMetrics.events

/** A retry decided: the attempt about to start (2 for the first retry), its delay and the error that caused it. */
export const retried = (retry: number, delayMs: number, reason: string, model: string): Effect.Effect<void> =>
  addEvent(E.retry, () => ({
    "llm.retry.attempt": retry + 1,
    "llm.retry.delay_ms": delayMs,
    "llm.retry.reason": reason,
    [A.requestModel]: model
  }))

/** A fallback to the next model. */
export const fellBack = (from: string, to: string, reason: string): Effect.Effect<void> =>
  addEvent(E.fallback, () => ({ "llm.fallback.from": from, "llm.fallback.to": to, "llm.fallback.reason": reason }))

/** A call an open circuit refused. */
export const breakerRejected = (key: string, retryAfterMs: number): Effect.Effect<void> =>
  addEvent(E.breakerRejected, () => ({ "llm.breaker.key": key, "llm.breaker.retry_after_ms": retryAfterMs }))

/** A circuit changed state. */
export const breakerTransition = (key: string, from: string, to: string): Effect.Effect<void> =>
  addEvent(E.breakerTransition, () => ({ "llm.breaker.key": key, "llm.breaker.from": from, "llm.breaker.to": to }))

/** A response served from the cache. */
export const cacheHit = (model: string): Effect.Effect<void> => addEvent(E.cacheHit, () => ({ [A.requestModel]: model }))

/** A response replayed from an idempotency record (or shared with the call in flight). */
export const idempotentReplay: Effect.Effect<void> = addEvent(E.idempotentReplay, () => ({}))

/** A call a token budget refused (never its scope: that may be a user id). */
export const budgetRefused = (budget: string, error: LlmError): Effect.Effect<void> =>
  addEvent(E.budgetRefused, () => ({
    "llm.budget.name": budget,
    "llm.budget.reason": error._tag,
    ...(error._tag === "BudgetExceeded"
      ? { "llm.budget.requested": error.requested, "llm.budget.remaining": error.remaining, "llm.budget.unit": error.unit ?? "tokens" }
      : {})
  }))

/** A prompt trimmed to fit. */
export const promptTrimmed = (model: string, droppedMessages: number, droppedTokens: number): Effect.Effect<void> =>
  addEvent(E.promptTrimmed, () => ({
    [A.requestModel]: model,
    "llm.trim.dropped_messages": droppedMessages,
    "llm.trim.dropped_tokens": droppedTokens
  }))

/** A call a client-side rate limit delayed or refused. */
export const rateLimited = (key: string, action: string): Effect.Effect<void> =>
  addEvent(E.rateLimited, () => ({ "llm.rate_limit.key": key, "llm.rate_limit.action": action }))

/** A call a full bulkhead refused. */
export const bulkheadRejected = (key: string): Effect.Effect<void> =>
  addEvent(E.bulkheadRejected, () => ({ "llm.bulkhead.key": key }))
