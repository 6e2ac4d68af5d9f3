/**
 * What the ChaosServer answers: deterministic completions (from the seed and the prompt) and bodies in
 * OpenAI's formats (chat.completion, chat.completion.chunk, error objects).
 */
import { hashString, mulberry32 } from "./chaosRandom.js"

const vocabulary = [
  "resilient", "token", "budget", "retry", "circuit", "breaker", "timeout", "fallback", "model", "cache",
  "stream", "chunk", "latency", "jitter", "backoff", "provider", "request", "response", "quota", "limit",
  "effect", "fiber", "layer", "schema", "policy", "signal", "server", "client", "error", "success",
  "window", "probe", "bulkhead", "queue", "cost", "price", "usage", "prompt", "context", "answer",
  "steady", "calm", "quick", "bright", "careful", "honest", "simple", "clear", "gentle", "patient",
  "river", "mountain", "garden", "harbor", "meadow", "forest", "valley", "island", "canyon", "prairie",
  "amber", "cobalt", "silver", "violet"
] as const

/** Approximate tokens of a text: one per four characters (at least one for a non-empty text). */
export const approximateTokens = (text: string): number => Math.ceil(text.length / 4)

/** The text of a request's messages, for hashing and counting (string contents and text parts). */
export const promptText = (messages: ReadonlyArray<{ readonly role: string; readonly content?: unknown }>): string =>
  messages.map((message) => `${message.role}:${contentText(message.content)}`).join("\n")

const contentText = (content: unknown): string => {
  if (typeof content === "string") return content
  if (!Array.isArray(content)) return ""
  return content
    .map((part) => (typeof part === "object" && part !== null && typeof part.text === "string" ? part.text : ""))
    .join("")
}

/** `words` words picked from a fixed vocabulary by a generator seeded with the seed and the prompt. */
export const generateText = (seed: number, prompt: string, words: number): string => {
  const next = mulberry32(hashString(prompt, seed))
  const out: Array<string> = []
  for (let i = 0; i < words; i++) out.push(vocabulary[Math.floor(next() * vocabulary.length)])
  return out.join(" ")
}

/** A generated answer: its content, finish reason (length when `maxTokens` cut it) and usage. */
export interface Answer {
  readonly content: string
  readonly finishReason: "stop" | "length"
  readonly promptTokens: number
  readonly completionTokens: number
}

/** Builds the answer to a prompt; JSON mode wraps the text as `{"answer": …}`. */
export const answer = (options: {
  readonly seed: number
  readonly prompt: string
  readonly words: number
  readonly json: boolean
  readonly maxTokens: number | undefined
}): Answer => {
  const text = generateText(options.seed, options.prompt, options.words)
  const full = options.json ? JSON.stringify({ answer: text }) : text
  const limit = options.maxTokens
  const cut = limit !== undefined && approximateTokens(full) > limit
  const content = cut ? full.slice(0, limit * 4) : full
  return {
    content,
    finishReason: cut ? "length" : "stop",
    promptTokens: Math.max(1, approximateTokens(options.prompt)),
    completionTokens: approximateTokens(content)
  }
}

/** Splits content into stream deltas: one word with its trailing whitespace per piece. */
export const pieces = (content: string): ReadonlyArray<string> => content.match(/\s*\S+\s*/g) ?? (content ? [content] : [])

const usageOf = (a: Pick<Answer, "promptTokens" | "completionTokens">) => ({
  prompt_tokens: a.promptTokens,
  completion_tokens: a.completionTokens,
  total_tokens: a.promptTokens + a.completionTokens
})

/** A tool call the server makes up when the request forces one. */
export interface ToolCallAnswer {
  readonly id: string
  readonly name: string
  readonly arguments: string
}

/** A chat.completion body. */
export const completionBody = (options: {
  readonly id: string
  readonly model: string
  readonly created: number
  readonly answer: Answer
  readonly finishReason?: string
  readonly toolCall?: ToolCallAnswer | undefined
}) => ({
  id: options.id,
  object: "chat.completion",
  created: options.created,
  model: options.model,
  choices: [{
    index: 0,
    message: options.toolCall === undefined
      ? { role: "assistant", content: options.answer.content, refusal: null }
      : {
        role: "assistant",
        content: null,
        refusal: null,
        tool_calls: [{
          id: options.toolCall.id,
          type: "function",
          function: { name: options.toolCall.name, arguments: options.toolCall.arguments }
        }]
      },
    logprobs: null,
    finish_reason: options.toolCall === undefined ? options.finishReason ?? options.answer.finishReason : "tool_calls"
  }],
  usage: usageOf(options.answer)
})

/** One chat.completion.chunk body. */
export const chunkBody = (options: {
  readonly id: string
  readonly model: string
  readonly created: number
  readonly delta: { readonly role?: string; readonly content?: string }
  readonly finishReason: string | null
}) => ({
  id: options.id,
  object: "chat.completion.chunk",
  created: options.created,
  model: options.model,
  choices: [{ index: 0, delta: options.delta, logprobs: null, finish_reason: options.finishReason }]
})

/** The usage chunk sent last when `stream_options.include_usage` is set. */
export const usageChunkBody = (options: {
  readonly id: string
  readonly model: string
  readonly created: number
  readonly answer: Answer
}) => ({
  id: options.id,
  object: "chat.completion.chunk",
  created: options.created,
  model: options.model,
  choices: [],
  usage: usageOf(options.answer)
})

/** One server-sent event line pair. */
export const sse = (data: unknown): string => `data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`

interface ErrorShape {
  readonly type: string
  readonly code: string | null
  readonly param: string | null
  readonly message: string
}

const byCode = (code: string, model: string): ErrorShape | undefined => {
  switch (code) {
    case "insufficient_quota":
      return { type: "insufficient_quota", code, param: null, message: "You exceeded your current quota, please check your plan and billing details." }
    case "context_length_exceeded":
      return { type: "invalid_request_error", code, param: "messages", message: `This model's maximum context length was exceeded (model ${model}).` }
    case "content_filter":
    case "content_policy_violation":
      return { type: "invalid_request_error", code, param: "prompt", message: "The request was rejected by the content management policy." }
    default:
      return undefined
  }
}

const byStatus = (status: number, model: string): ErrorShape => {
  switch (status) {
    case 401:
      return { type: "invalid_request_error", code: "invalid_api_key", param: null, message: "Incorrect API key provided." }
    case 403:
      return { type: "invalid_request_error", code: "unsupported_country_region_territory", param: null, message: "Access to this resource is forbidden." }
    case 404:
      return { type: "invalid_request_error", code: "model_not_found", param: "model", message: `The model \`${model}\` does not exist or you do not have access to it.` }
    case 408:
      return { type: "timeout", code: null, param: null, message: "The request timed out." }
    case 409:
      return { type: "conflict", code: null, param: null, message: "The request conflicts with another request." }
    case 429:
      return { type: "requests", code: "rate_limit_exceeded", param: null, message: `Rate limit reached for ${model}.` }
    case 529:
      return { type: "overloaded_error", code: null, param: null, message: "The server is overloaded." }
    default:
      return status >= 500
        ? { type: "server_error", code: null, param: null, message: `The server had an error (HTTP ${status}).` }
        : { type: "invalid_request_error", code: null, param: null, message: `The request is invalid (HTTP ${status}).` }
  }
}

/** An OpenAI error body for an injected status (and optional code, which picks the type and message). */
export const errorBody = (status: number, code: string | undefined, model: string) => {
  const shape = (code !== undefined ? byCode(code, model) : undefined) ?? byStatus(status, model)
  return { error: { message: shape.message, type: shape.type, param: shape.param, code: code ?? shape.code } }
}
