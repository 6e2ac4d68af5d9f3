/**
 * Usage the provider did not report, counted by the library: prompt tokens with the `Tokenizer` in context (exact
 * by default), completion tokens from the text received. The innermost instrumentation step fills it in, so the
 * budget, the rate limiter and the metrics all charge it.
 */
import { Effect } from "effect"
import type { ChatRequest, ToolCall, Usage } from "../Llm.js"
import * as Tokenizer from "../Tokenizer.js"

/** Which parts of a usage are to be counted: a bit set of {@link INPUT} and {@link OUTPUT}; 0 for none. */
export type Missing = number

/** The prompt tokens are missing. */
export const INPUT = 1
/** The completion tokens are missing. */
export const OUTPUT = 2

const hasPrompt = (request: ChatRequest): boolean =>
  request.messages.some((m) => m.content.length > 0 || (m.toolCalls !== undefined && m.toolCalls.length > 0))

const hasOutput = (content: string, toolCalls: ReadonlyArray<ToolCall> | undefined): boolean =>
  content.length > 0 || (toolCalls !== undefined && toolCalls.length > 0)

/**
 * What is missing from `usage`: everything when there is none; else a zero count where there was text (a zero
 * input with a non-empty prompt, a zero output with text or tool calls received). Cheap when both counts are set.
 */
export const missing = (
  request: ChatRequest,
  usage: Usage | undefined,
  content: string,
  toolCalls: ReadonlyArray<ToolCall> | undefined
): Missing => {
  if (usage === undefined) return INPUT | OUTPUT
  if (usage.estimated === true) return 0
  let parts = 0
  if (usage.inputTokens === 0 && hasPrompt(request)) parts |= INPUT
  if (usage.outputTokens === 0 && hasOutput(content, toolCalls)) parts |= OUTPUT
  return parts
}

const promptTokens = (tokenizer: Tokenizer.Service, request: ChatRequest): Effect.Effect<number> => {
  const messages = tokenizer.countMessages(request.messages, request.model)
  if (request.tools === undefined || request.tools.length === 0) return messages
  return Effect.zipWith(messages, tokenizer.count(JSON.stringify(request.tools), request.model), (a, b) => a + b)
}

const completionTokens = (
  tokenizer: Tokenizer.Service,
  model: string,
  content: string,
  toolCalls: ReadonlyArray<ToolCall> | undefined
): Effect.Effect<number> => {
  const text = tokenizer.count(content, model)
  if (toolCalls === undefined || toolCalls.length === 0) return text
  return Effect.zipWith(
    text,
    Effect.forEach(toolCalls, (call) =>
      Effect.zipWith(tokenizer.count(call.name, model), tokenizer.count(call.arguments, model), (a, b) =>
        Tokenizer.toolCallOverheadTokens + a + b)),
    (a, calls) => calls.reduce((sum, n) => sum + n, a)
  )
}

/** `usage` with its `missing` parts counted, marked `estimated`. */
export const estimate = (
  request: ChatRequest,
  usage: Usage | undefined,
  content: string,
  toolCalls: ReadonlyArray<ToolCall> | undefined,
  parts: Missing
): Effect.Effect<Usage> =>
  Effect.flatMap(Tokenizer.current, (tokenizer) =>
    Effect.zipWith(
      (parts & INPUT) !== 0 ? promptTokens(tokenizer, request) : Effect.succeed(usage?.inputTokens ?? 0),
      (parts & OUTPUT) !== 0 ? completionTokens(tokenizer, request.model, content, toolCalls) : Effect.succeed(usage?.outputTokens ?? 0),
      (inputTokens, outputTokens): Usage => ({ ...usage, inputTokens, outputTokens, estimated: true })
    ))
