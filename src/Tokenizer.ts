/**
 * Token counting: exact for OpenAI models (o200k_base / cl100k_base via `gpt-tokenizer`, loaded lazily, once)
 * or approximate (≈ 4 characters a token) for other providers.
 *
 * Chat framing is counted the way OpenAI counts it: every message costs 3 tokens plus its role, content and
 * (with 1 more token) its name; every reply is primed with 3 tokens. So
 * `countMessages(messages) = Σ countMessage(message) + 3`, which lets a trimmer count each message once.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Option } from "effect"
import {
  approximateTokens,
  MESSAGE_OVERHEAD_TOKENS,
  REPLY_PRIMING_TOKENS
} from "./internal/approximateTokens.js"
import { memoized } from "./internal/hash.js"
import type { ChatMessage } from "./Llm.js"

/**
 * The BPE encodings the exact tokenizer knows.
 *
 * @example
 * ```ts
 * import { Tokenizer } from "effect-llm-resilience"
 * const encoding: Tokenizer.Encoding = "o200k_base"
 * ```
 * @since 0.1.0
 * @category Models
 */
export type Encoding = "o200k_base" | "cl100k_base"

/**
 * Tokens of chat framing per message (`<|im_start|>`, separator, `<|im_end|>`), not counting the role itself.
 *
 * @example
 * ```ts
 * import { Tokenizer } from "effect-llm-resilience"
 * Tokenizer.messageOverheadTokens // 3
 * ```
 * @since 0.1.0
 * @category Models
 */
export const messageOverheadTokens: number = MESSAGE_OVERHEAD_TOKENS

/**
 * Tokens that prime every reply (`<|im_start|>assistant<|im_sep|>`), counted once per conversation.
 *
 * @example
 * ```ts
 * import { Tokenizer } from "effect-llm-resilience"
 * Tokenizer.replyPrimingTokens // 3
 * ```
 * @since 0.1.0
 * @category Models
 */
export const replyPrimingTokens: number = REPLY_PRIMING_TOKENS

/**
 * Tokens added per tool call on an assistant message, on top of its name and JSON arguments.
 *
 * @example
 * ```ts
 * import { Tokenizer } from "effect-llm-resilience"
 * Tokenizer.toolCallOverheadTokens // 3
 * ```
 * @since 0.1.0
 * @category Models
 */
export const toolCallOverheadTokens = 3

const o200kPrefixes = ["gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "gpt-oss", "o1", "o3", "o4"]
const cl100kPrefixes = ["gpt-4", "gpt-3.5", "gpt-35", "text-embedding-3", "text-embedding-ada-002"]

/**
 * The encoding of a model: o200k_base for the gpt-4o, gpt-4.1, gpt-4.5, gpt-5 and o-series families,
 * cl100k_base for gpt-4 (incl. gpt-4-turbo) and gpt-3.5, o200k_base for anything else. A provider prefix
 * ("openai/gpt-4") is ignored, and a fine-tuned model ("ft:gpt-3.5-turbo-0125:acme::abc123") uses its base model's.
 *
 * @example
 * ```ts
 * import { Tokenizer } from "effect-llm-resilience"
 * Tokenizer.encodingFor("gpt-4o-mini") // "o200k_base"
 * Tokenizer.encodingFor("gpt-4-0613") // "cl100k_base"
 * Tokenizer.encodingFor("ft:gpt-3.5-turbo-0125:acme::abc123") // "cl100k_base"
 * ```
 * @since 0.1.0
 * @category Accessors
 */
export const encodingFor = (model: string): Encoding => {
  const slash = model.lastIndexOf("/")
  let name = (slash >= 0 ? model.slice(slash + 1) : model).toLowerCase()
  if (name.startsWith("ft:")) name = name.slice(3).split(":")[0]
  if (o200kPrefixes.some((prefix) => name.startsWith(prefix))) return "o200k_base"
  if (cl100kPrefixes.some((prefix) => name.startsWith(prefix))) return "cl100k_base"
  return "o200k_base"
}

/**
 * The Tokenizer service. All three counts include nothing but what their doc says, so
 * `countMessages(ms) === Σ countMessage(m) + replyPrimingTokens`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Tokenizer } from "effect-llm-resilience"
 * const service: Tokenizer.Service = {
 *   count: (text) => Effect.succeed(text.length),
 *   countMessage: (message) => Effect.succeed(3 + message.content.length),
 *   countMessages: (messages) => Effect.succeed(3 + messages.reduce((n, m) => n + 3 + m.content.length, 0))
 * }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Service {
  /** Tokens of a plain text (special-token markers such as `<|endoftext|>` count as ordinary text). */
  readonly count: (text: string, model: string) => Effect.Effect<number>
  /** Tokens of one message including its chat framing (3 + role + content, +1 + name, + tool calls). */
  readonly countMessage: (message: ChatMessage, model: string) => Effect.Effect<number>
  /** Prompt tokens of a conversation: every message with its framing, plus 3 tokens priming the reply. */
  readonly countMessages: (messages: ReadonlyArray<ChatMessage>, model: string) => Effect.Effect<number>
}

/**
 * The Tokenizer service tag.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Tokenizer } from "effect-llm-resilience"
 * const program = Effect.gen(function* () {
 *   const tokenizer = yield* Tokenizer.Tokenizer
 *   return yield* tokenizer.count("Hello world", "gpt-4o")
 * }).pipe(Effect.provide(Tokenizer.layer))
 * ```
 * @since 0.1.0
 * @category Tags
 */
export class Tokenizer extends Context.Tag("effect-llm-resilience/Tokenizer")<Tokenizer, Service>() {}

/** A message counter built from a text counter (shared by the exact and approximate tokenizers). */
const makeService = (
  countText: (text: string, model: string) => number,
  countRole: (role: string, model: string) => number
): Service => {
  const messageTokens = (message: ChatMessage, model: string): number => {
    let total = MESSAGE_OVERHEAD_TOKENS + countRole(message.role, model) + countText(message.content, model)
    if (message.name !== undefined) total += 1 + countText(message.name, model)
    if (message.toolCalls !== undefined) {
      for (const call of message.toolCalls) {
        total += toolCallOverheadTokens + countText(call.name, model) + countText(call.arguments, model)
      }
    }
    return total
  }
  return {
    count: (text, model) => Effect.sync(() => countText(text, model)),
    countMessage: (message, model) => Effect.sync(() => messageTokens(message, model)),
    countMessages: (messages, model) =>
      Effect.sync(() => {
        let total = REPLY_PRIMING_TOKENS
        for (const message of messages) total += messageTokens(message, model)
        return total
      })
  }
}

interface EncodingApi {
  readonly countTokens: (text: string, options?: { readonly disallowedSpecial?: Set<string> }) => number
}

const loaded: { o200k_base?: EncodingApi; cl100k_base?: EncodingApi } = {}
const loading: { o200k_base?: Promise<EncodingApi>; cl100k_base?: Promise<EncodingApi> } = {}

const importEncoding = (encoding: Encoding): Promise<EncodingApi> => {
  const pending = loading[encoding] ??
    (encoding === "o200k_base"
      ? import("gpt-tokenizer/encoding/o200k_base")
      : import("gpt-tokenizer/encoding/cl100k_base")
    ).then((module) => {
      const api: EncodingApi = { countTokens: module.countTokens as EncodingApi["countTokens"] }
      loaded[encoding] = api
      return api
    })
  loading[encoding] = pending
  return pending
}

/**
 * Loads an encoding (once per process; later calls return at once). The exact tokenizer calls it on first use,
 * so calling it at start-up only moves the ~100 ms load out of the first request.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Tokenizer } from "effect-llm-resilience"
 * const warm = Effect.all([Tokenizer.preload("o200k_base"), Tokenizer.preload("cl100k_base")])
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const preload = (encoding: Encoding): Effect.Effect<void> =>
  loaded[encoding] !== undefined ? Effect.void : Effect.asVoid(Effect.promise(() => importEncoding(encoding)))

// User text may contain "<|endoftext|>" and the like: the API treats it as plain text, and so do we.
const asPlainText = { disallowedSpecial: new Set<string>() }

const exactText = (encoding: Encoding, text: string): number => {
  if (text.length === 0) return 0
  return (loaded[encoding] as EncodingApi).countTokens(text, asPlainText)
}

// Model names and roles repeat on every call: their encoding and token count are looked up, not recomputed.
const cachedEncodingFor = memoized(encodingFor, 1_000)
const roleTokens = {
  o200k_base: memoized((role) => exactText("o200k_base", role), 100),
  cl100k_base: memoized((role) => exactText("cl100k_base", role), 100)
}
const exactRole = (encoding: Encoding, role: string): number => roleTokens[encoding](role)

// Long texts repeat too: a conversation sends its system prompt and every earlier turn again on each call. Their
// counts are kept (per encoding, least recently used first out) while the texts kept add up to at most
// TEXT_MEMO_CHARS characters; short texts are counted each time (a lookup would cost about as much).
const TEXT_MEMO_MIN_CHARS = 256
const TEXT_MEMO_CHARS = 4_000_000
const textTokens = { o200k_base: new Map<string, number>(), cl100k_base: new Map<string, number>() }
let textMemoChars = 0
const exactLongText = (encoding: Encoding, text: string): number => {
  if (text.length < TEXT_MEMO_MIN_CHARS || text.length > TEXT_MEMO_CHARS / 16) return exactText(encoding, text)
  const memo = textTokens[encoding]
  const known = memo.get(text)
  if (known !== undefined) {
    memo.delete(text)
    memo.set(text, known)
    return known
  }
  const tokens = exactText(encoding, text)
  memo.set(text, tokens)
  textMemoChars += text.length
  while (textMemoChars > TEXT_MEMO_CHARS) {
    const other = encoding === "o200k_base" ? textTokens.cl100k_base : textTokens.o200k_base
    const from = memo.size > 0 ? memo : other
    const oldest = from.keys().next()
    if (oldest.done === true) break
    from.delete(oldest.value)
    textMemoChars -= oldest.value.length
  }
  return tokens
}

const exactService: Service = (() => {
  const inner = makeService(
    (text, model) => exactLongText(cachedEncodingFor(model), text),
    (role, model) => exactRole(cachedEncodingFor(model), role)
  )
  const ensure = <A>(model: string, effect: Effect.Effect<A>): Effect.Effect<A> => {
    const encoding = cachedEncodingFor(model)
    return loaded[encoding] !== undefined ? effect : Effect.zipRight(preload(encoding), effect)
  }
  return {
    count: (text, model) => ensure(model, inner.count(text, model)),
    countMessage: (message, model) => ensure(model, inner.countMessage(message, model)),
    countMessages: (messages, model) => ensure(model, inner.countMessages(messages, model))
  }
})()

const approximateService: Service = makeService((text) => approximateTokens(text), () => 0)

/**
 * Exact counts with `gpt-tokenizer` (o200k_base or cl100k_base by {@link encodingFor}). Each encoding is
 * imported on its first use, once per process.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Tokenizer } from "effect-llm-resilience"
 * const n = Tokenizer.count("Hello world", "gpt-4o").pipe(Effect.provide(Tokenizer.layer)) // Effect<2>
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layer: Layer.Layer<Tokenizer> = Layer.succeed(Tokenizer, exactService)

/**
 * The `Tokenizer` in context, or the exact one when none is provided: counting never needs a layer, and
 * `Tokenizer.layerApproximate` (or your own) replaces it where provided.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Tokenizer } from "effect-llm-resilience"
 * const tokens = Effect.flatMap(Tokenizer.current, (tokenizer) => tokenizer.count("Hello", "gpt-4o"))
 * ```
 * @since 0.1.0
 * @category Accessors
 */
export const current: Effect.Effect<Service> = Effect.map(
  Effect.serviceOption(Tokenizer),
  Option.getOrElse(() => exactService)
)

/**
 * Deterministic approximate counts for providers without a public tokenizer: ⌈characters / 4⌉ a text, 3 tokens
 * of framing a message (role included), 1 + name for a name, 3 + name + arguments a tool call, 3 priming
 * tokens a conversation. Loads nothing.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Tokenizer } from "effect-llm-resilience"
 * const n = Tokenizer.count("12345678", "llama3").pipe(Effect.provide(Tokenizer.layerApproximate)) // Effect<2>
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layerApproximate: Layer.Layer<Tokenizer> = Layer.succeed(Tokenizer, approximateService)

/**
 * Tokens of a plain text with the `Tokenizer` in context.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Tokenizer } from "effect-llm-resilience"
 * const program = Tokenizer.count("How many tokens is this?", "gpt-4o").pipe(Effect.provide(Tokenizer.layer))
 * ```
 * @since 0.1.0
 * @category Accessors
 */
export const count = (text: string, model: string): Effect.Effect<number> =>
  Effect.flatMap(current, (tokenizer) => tokenizer.count(text, model))

/**
 * Tokens of one message including its chat framing, with the `Tokenizer` in context.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Tokenizer } from "effect-llm-resilience"
 * const program = Tokenizer.countMessage({ role: "user", content: "Hi" }, "gpt-4o").pipe(Effect.provide(Tokenizer.layer))
 * ```
 * @since 0.1.0
 * @category Accessors
 */
export const countMessage = (message: ChatMessage, model: string): Effect.Effect<number> =>
  Effect.flatMap(current, (tokenizer) => tokenizer.countMessage(message, model))

/**
 * Prompt tokens of a conversation (framing and reply priming included), with the `Tokenizer` in context.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Tokenizer } from "effect-llm-resilience"
 * const program = Tokenizer.countMessages(
 *   [{ role: "system", content: "Be brief." }, { role: "user", content: "Hi" }],
 *   "gpt-4o"
 * ).pipe(Effect.provide(Tokenizer.layer))
 * ```
 * @since 0.1.0
 * @category Accessors
 */
export const countMessages = (
  messages: ReadonlyArray<ChatMessage>,
  model: string
): Effect.Effect<number> =>
  Effect.flatMap(current, (tokenizer) => tokenizer.countMessages(messages, model))
