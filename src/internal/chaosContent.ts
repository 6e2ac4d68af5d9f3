/**
 * What the ChaosServer answers, in every dialect: deterministic text (from the seed and the prompt), token
 * counts, stream pieces, SSE framing and OpenAI's error bodies (chat completions and Responses share them).
 */
import { hashString, mulberry32 } from "./chaosRandom.js"
import { batchingAnswer } from "./chaosBatching.js"
import { jsonAnswer } from "./chaosTools.js"

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

/** The last user message of a conversation. */
export const lastUser = <M extends { readonly role: string }>(messages: ReadonlyArray<M>): M | undefined => {
  for (let i = messages.length - 1; i >= 0; i--) if (messages[i].role === "user") return messages[i]
  return undefined
}

/**
 * The text of a message content: a string, or the `text` of its parts (a part without text contributes its
 * `content` / `output`, as tool results carry theirs).
 */
export const contentText = (content: unknown): string => {
  if (typeof content === "string") return content
  if (!Array.isArray(content)) return ""
  return content.map(partText).join("")
}

const partText = (part: unknown): string => {
  if (typeof part !== "object" || part === null) return ""
  const { content, output, text } = part as { readonly text?: unknown; readonly content?: unknown; readonly output?: unknown }
  if (typeof text === "string") return text
  if (content !== undefined) return contentText(content)
  return contentText(output)
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

/**
 * Builds the answer to a prompt. JSON mode answers a value of `schema` (strings from the generated text), or
 * wraps the text as `{"answer": …}` without a schema.
 */
export const answer = (options: {
  readonly seed: number
  readonly prompt: string
  readonly words: number
  readonly json: boolean
  readonly schema?: unknown
  readonly maxTokens: number | undefined
}): Answer => {
  const text = generateText(options.seed, options.prompt, options.words)
  // An in-prompt batch (Batching's contract) is answered entry by entry; other JSON as the schema says.
  const full = options.json ? (batchingAnswer(options.prompt, options.seed) ?? jsonAnswer(options.schema, text)) : text
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

/** Splits a tool call's JSON arguments into stream deltas of a few characters each. */
export const argumentPieces = (text: string): ReadonlyArray<string> => text.match(/[\s\S]{1,8}/g) ?? []

/** One server-sent event with only a data line (OpenAI chat completions, and `[DONE]`). */
export const sse = (data: unknown): string => `data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`

/** One server-sent event with an `event:` line naming its type (Anthropic Messages, OpenAI Responses). */
export const sseEvent = (type: string, data: unknown): string => `event: ${type}\ndata: ${JSON.stringify(data)}\n\n`

/** A broken event: the frame's data cut after 40 characters, so it is not valid JSON. */
export const brokenEvent = (frame: string): string => {
  const at = frame.indexOf("data: ")
  return `${frame.slice(0, at + "data: ".length + 40)}\n\n`
}

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
