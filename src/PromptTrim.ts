/**
 * Exact prompt trimming: drops whole messages until a conversation fits a token budget, never separates a tool
 * call from its results, always keeps the current turn, and says what it removed (a marker message in the prompt,
 * the result's counts, metrics and a span attribute).
 *
 * Strategies:
 * - `"keep-system-and-recent"` (default): every system message is kept; the oldest other messages go first.
 * - `"keep-recent"`: only the first system message is kept; the oldest other messages go first, later system
 *   messages (injected context, earlier summaries) included.
 * - `"middle-out"`: every system message is kept; messages go from the middle of the conversation outwards, so
 *   the first turns (the task statement) and the most recent turns stay longest.
 *
 * In every strategy the current turn — the last user message and everything after it, or the last message when
 * there is no user message — is never dropped, and an assistant message with `toolCalls` goes together with the
 * `tool` messages answering it.
 *
 * @since 0.1.0
 */
import { Effect, Either, Option, Schema, Stream } from "effect"
import { dual } from "effect/Function"
import { InvalidOptions, decode } from "./InvalidOptions.js"
import { strict } from "./internal/optionSchemas.js"
import * as Trim from "./internal/trim.js"
import { type ChatMessage, ChatRequest } from "./Llm.js"
import * as LlmClient from "./LlmClient.js"
import { ContextTooLong } from "./LlmError.js"
import * as LlmMetrics from "./LlmMetrics.js"
import * as Telemetry from "./internal/telemetry.js"
import * as Pricing from "./Pricing.js"
import { type Tokenizer, replyPrimingTokens } from "./Tokenizer.js"
import * as TokenizerModule from "./Tokenizer.js"

/**
 * Which messages go first when a prompt is too long. See the module documentation for each strategy.
 *
 * @example
 * ```ts
 * import { PromptTrim } from "effect-llm-resilience"
 * const strategy: PromptTrim.Strategy = "middle-out"
 * ```
 * @since 0.1.0
 * @category Models
 */
export type Strategy = Trim.Strategy

/**
 * The strategies as a Schema.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { PromptTrim } from "effect-llm-resilience"
 * Schema.is(PromptTrim.Strategy)("keep-recent") // true
 * ```
 * @since 0.1.0
 * @category Models
 */
export const Strategy = Schema.Literal("keep-recent", "keep-system-and-recent", "middle-out")

/**
 * What was removed, as given to a marker function.
 *
 * @example
 * ```ts
 * import { PromptTrim } from "effect-llm-resilience"
 * const dropped: PromptTrim.Dropped = { messages: 12, tokens: 3400 }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Dropped {
  readonly messages: number
  readonly tokens: number
}

/**
 * Builds the marker text from what was removed.
 *
 * @example
 * ```ts
 * import { PromptTrim } from "effect-llm-resilience"
 * const marker: PromptTrim.Marker = ({ messages }) => `(${messages} older messages omitted)`
 * ```
 * @since 0.1.0
 * @category Models
 */
export type Marker = (dropped: Dropped) => string

/**
 * The default marker: "[12 earlier messages (3,400 tokens) removed to fit the context window]".
 *
 * @example
 * ```ts
 * import { PromptTrim } from "effect-llm-resilience"
 * PromptTrim.defaultMarker({ messages: 2, tokens: 1500 }) // "[2 earlier messages (1,500 tokens) removed to fit the context window]"
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const defaultMarker: Marker = Trim.defaultMarker

const MarkerSchema = Schema.Union(
  Schema.Literal(false),
  Schema.declare((u: unknown): u is Marker => typeof u === "function", {
    identifier: "Marker",
    message: () => "Expected false or a function (dropped) => string"
  })
)

/**
 * Options of {@link trim}.
 *
 * @example
 * ```ts
 * import { PromptTrim } from "effect-llm-resilience"
 * const options: PromptTrim.TrimOptions = { maxInputTokens: 8000, model: "gpt-4o", strategy: "middle-out" }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface TrimOptions {
  /** The most prompt tokens the result may have (framing, reply priming and marker included). A positive integer. */
  readonly maxInputTokens: number
  /** The model whose tokenizer counts the messages. */
  readonly model: string
  /** Defaults to "keep-system-and-recent". */
  readonly strategy?: Strategy | undefined
  /**
   * The text of the system message inserted where messages were removed, or `false` for none. Defaults to
   * {@link defaultMarker}. The marker's tokens count towards `maxInputTokens`; when every droppable message is
   * gone and only the marker does not fit, the result has no marker (the counts still report the removal).
   */
  readonly marker?: Marker | false | undefined
}

const TrimOptionsSchema = Schema.Struct({
  maxInputTokens: Schema.Int.pipe(Schema.positive()),
  model: Schema.NonEmptyString,
  strategy: Schema.optional(Strategy),
  marker: Schema.optional(MarkerSchema)
}).annotations(strict)

/**
 * The outcome of {@link trim}: the messages to send, how many messages and tokens were removed, the removed
 * messages themselves (for a summary, say) and the prompt tokens of the result.
 *
 * @example
 * ```ts
 * import { PromptTrim } from "effect-llm-resilience"
 * const describe = (r: PromptTrim.TrimResult) => `${r.droppedMessages} messages (${r.droppedTokens} tokens) removed`
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface TrimResult {
  readonly messages: ReadonlyArray<ChatMessage>
  readonly droppedMessages: number
  readonly droppedTokens: number
  readonly dropped: ReadonlyArray<ChatMessage>
  /** Prompt tokens of `messages` (framing, reply priming and marker included); at most `maxInputTokens`. */
  readonly inputTokens: number
}

interface Resolved {
  readonly budget: number
  readonly model: string
  readonly strategy: Strategy
  readonly marker: Marker | false
}

const MAX_MARKER_ROUNDS = 16

/** Trims with per-message counts computed once; the marker is re-counted until the reserve covers it. */
const trimCounted = (
  tokenizer: Tokenizer["Type"],
  messages: ReadonlyArray<ChatMessage>,
  counts: ReadonlyArray<number>,
  options: Resolved
): Effect.Effect<TrimResult, ContextTooLong> => {
  const units = Trim.groupUnits(messages, counts, options.strategy)
  const order = Trim.dropOrder(units, options.strategy)
  const markerOf = (selection: Dropped): ChatMessage | undefined =>
    options.marker === false ? undefined : { role: "system", content: options.marker(selection) }
  const finish = (
    selection: Extract<Trim.Selection, { _tag: "Fits" }>,
    marker: ChatMessage | undefined,
    markerTokens: number
  ): TrimResult => {
    const { kept, removed } = Trim.rebuild(messages, units, selection.dropped, marker)
    return {
      messages: selection.dropped.length === 0 ? messages : kept,
      droppedMessages: selection.droppedMessages,
      droppedTokens: selection.droppedTokens,
      dropped: removed,
      inputTokens: selection.keptTokens + markerTokens
    }
  }
  const round = (reserve: number, rounds: number): Effect.Effect<TrimResult, ContextTooLong> => {
    const selection = Trim.select(units, order, options.budget, replyPrimingTokens, reserve)
    if (selection._tag === "TooLong") {
      return Effect.fail(new ContextTooLong({
        model: options.model,
        contextWindow: options.budget,
        requestedTokens: selection.minimalTokens
      }))
    }
    const marker = markerOf({ messages: selection.droppedMessages, tokens: selection.droppedTokens })
    if (selection.dropped.length === 0 || marker === undefined || !selection.markerFits) {
      return Effect.succeed(finish(selection, undefined, 0))
    }
    return Effect.flatMap(tokenizer.countMessage(marker, options.model), (markerTokens) => {
      if (markerTokens <= reserve) return Effect.succeed(finish(selection, marker, markerTokens))
      // The marker's text depends on what was dropped: reserve its size and select again (reserve only grows).
      if (rounds >= MAX_MARKER_ROUNDS) return Effect.succeed(finish(selection, undefined, 0))
      return round(markerTokens, rounds + 1)
    })
  }
  return round(0, 0)
}

const countEach = (
  tokenizer: Tokenizer["Type"],
  messages: ReadonlyArray<ChatMessage>,
  model: string
): Effect.Effect<Array<number>> => Effect.forEach(messages, (message) => tokenizer.countMessage(message, model))

const resolveTrimOptions = (options: TrimOptions): Either.Either<Resolved, InvalidOptions> =>
  Either.map(decode(TrimOptionsSchema, "PromptTrim.trim", options), (decoded) => ({
    budget: decoded.maxInputTokens,
    model: decoded.model,
    strategy: decoded.strategy ?? "keep-system-and-recent",
    marker: decoded.marker === undefined ? defaultMarker : decoded.marker
  }))

/**
 * Trims `messages` to at most `maxInputTokens` prompt tokens, counted exactly with the `Tokenizer` (framing,
 * reply priming and the marker included). Each message is counted once, so a 1 MB conversation trims in linear
 * time. Fails with `ContextTooLong` when even the minimal prompt (the kept system messages and the current turn)
 * does not fit, and with `InvalidOptions` (every failing path listed) on bad options.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { PromptTrim, Tokenizer } from "effect-llm-resilience"
 * declare const history: ReadonlyArray<import("effect-llm-resilience").Llm.ChatMessage>
 * const program = PromptTrim.trim(history, { maxInputTokens: 4000, model: "gpt-4o" }).pipe(
 *   Effect.tap((r) => Effect.log(`${r.droppedMessages} messages (${r.droppedTokens} tokens) removed`)),
 *   Effect.provide(Tokenizer.layer)
 * )
 * ```
 * @since 0.1.0
 * @category Combinators
 */
export const trim: {
  (options: TrimOptions): (
    messages: ReadonlyArray<ChatMessage>
  ) => Effect.Effect<TrimResult, ContextTooLong | InvalidOptions>
  (
    messages: ReadonlyArray<ChatMessage>,
    options: TrimOptions
  ): Effect.Effect<TrimResult, ContextTooLong | InvalidOptions>
} = dual(
  2,
  (
    messages: ReadonlyArray<ChatMessage>,
    options: TrimOptions
  ): Effect.Effect<TrimResult, ContextTooLong | InvalidOptions> =>
    Either.match(resolveTrimOptions(options), {
      onLeft: (error) => Effect.fail(error),
      onRight: (resolved) =>
        Effect.flatMap(TokenizerModule.current, (tokenizer) =>
          Effect.flatMap(countEach(tokenizer, messages, resolved.model), (counts) =>
            trimCounted(tokenizer, messages, counts, resolved)))
    })
)

/**
 * Options of {@link policy}.
 *
 * @example
 * ```ts
 * import { PromptTrim } from "effect-llm-resilience"
 * const options: PromptTrim.PolicyOptions = { reserveForOutput: 1024, strategy: "middle-out" }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface PolicyOptions {
  /**
   * Output tokens to leave room for when a request has no `maxTokens`. Defaults to the model's max output
   * tokens from the price table, at most half its context window.
   */
  readonly reserveForOutput?: number | undefined
  /** Defaults to "keep-system-and-recent". */
  readonly strategy?: Strategy | undefined
  /**
   * A fixed cap on prompt tokens. Required for models missing from the price table (else their requests pass
   * through untouched); for known models the smaller of this and the context window's room applies. No default.
   */
  readonly maxInputTokens?: number | undefined
  /** The marker text, or `false` for none. Defaults to {@link defaultMarker}. */
  readonly marker?: Marker | false | undefined
}

const PolicyOptionsSchema = Schema.Struct({
  reserveForOutput: Schema.optional(Schema.Int.pipe(Schema.nonNegative())),
  strategy: Schema.optional(Strategy),
  maxInputTokens: Schema.optional(Schema.Int.pipe(Schema.positive())),
  marker: Schema.optional(MarkerSchema)
}).annotations(strict)

/** Prompt room for a request: the window minus the output reserve and tool definitions, capped by maxInputTokens. */
const roomFor = (
  tokenizer: Tokenizer["Type"],
  pricing: Pricing.Pricing["Type"],
  request: ChatRequest,
  options: typeof PolicyOptionsSchema.Type
): Effect.Effect<Option.Option<{ readonly budget: number; readonly window: number; readonly output: number }>> =>
  Effect.gen(function* () {
    const price = pricing.lookup(request.model)
    if (Option.isNone(price) && options.maxInputTokens === undefined) return Option.none()
    // A model whose max output equals its window (gpt-4: 8192 / 8192) would leave no room for any prompt.
    const output = request.maxTokens ?? options.reserveForOutput ??
      Option.match(price, { onNone: () => 0, onSome: (p) => Math.min(p.maxOutputTokens, Math.floor(p.contextWindow / 2)) })
    const tools = request.tools === undefined || request.tools.length === 0
      ? 0
      : yield* tokenizer.count(JSON.stringify(request.tools), request.model)
    const fromWindow = Option.map(price, (p) => p.contextWindow - output - tools)
    const fromCap = options.maxInputTokens === undefined ? Option.none<number>() : Option.some(options.maxInputTokens - tools)
    const budget = Math.min(Option.getOrElse(fromWindow, () => Infinity), Option.getOrElse(fromCap, () => Infinity))
    const window = Option.match(price, { onNone: () => options.maxInputTokens ?? 0, onSome: (p) => p.contextWindow })
    return Option.some({ budget, window, output })
  })

const record = (model: string, result: TrimResult): Effect.Effect<void> =>
  Effect.all([
    LlmMetrics.count(LlmMetrics.trimmedRequests, { model }),
    LlmMetrics.count(LlmMetrics.trimmedTokens, { model }, result.droppedTokens),
    Telemetry.promptTrimmed(model, result.droppedMessages, result.droppedTokens),
    Effect.annotateCurrentSpan({
      "llm.trim.dropped_messages": result.droppedMessages,
      "llm.trim.dropped_tokens": result.droppedTokens,
      "llm.trim.input_tokens": result.inputTokens
    }),
    Effect.logDebug("prompt trimmed").pipe(Effect.annotateLogs({
      model,
      droppedMessages: result.droppedMessages,
      droppedTokens: result.droppedTokens
    }))
  ], { discard: true })

/**
 * A policy that fits every request into its model's context window (from the price table): the prompt may use
 * `contextWindow − (request.maxTokens ?? reserveForOutput ?? min(model max output, contextWindow / 2)) − tool
 * definitions` tokens (tool definitions counted as their JSON text), or
 * `maxInputTokens` when smaller or when the model is not in the table (without it, unknown models pass through
 * untouched). The price table is the `Pricing` in context when the policy is built (else the default table). A request that fits is passed on unchanged (each message counted once). A trimmed one is recorded
 * in `llm_trimmed_requests_total` / `llm_trimmed_tokens_total` and on the current span; one that cannot fit fails
 * with `ContextTooLong` without calling the provider. Applies to streams too.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { FakeLlm, LlmClient, PromptTrim, Tokenizer } from "effect-llm-resilience"
 * const Live = LlmClient.layerWith(PromptTrim.policy({ reserveForOutput: 1024 })).pipe(
 *   Layer.provide(FakeLlm.layer(FakeLlm.echo)),
 *   Layer.provide(Tokenizer.layer)
 * )
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const policy = (
  options: PolicyOptions = {}
): Effect.Effect<LlmClient.Policy, InvalidOptions> =>
  Either.match(decode(PolicyOptionsSchema, "PromptTrim.policy", options), {
    onLeft: (error) => Effect.fail(error),
    onRight: (decoded) =>
      Effect.map(Effect.zip(TokenizerModule.current, Pricing.current), ([tokenizer, pricing]) => {
        const strategy = decoded.strategy ?? "keep-system-and-recent"
        const marker = decoded.marker === undefined ? defaultMarker : decoded.marker
        const fit = (request: ChatRequest): Effect.Effect<ChatRequest, ContextTooLong> =>
          Effect.flatMap(roomFor(tokenizer, pricing, request, decoded), (room) => {
            if (Option.isNone(room)) return Effect.succeed(request)
            const { budget, output, window } = room.value
            return Effect.flatMap(countEach(tokenizer, request.messages, request.model), (counts) => {
              let total = replyPrimingTokens
              for (const n of counts) total += n
              if (total <= budget) return Effect.succeed(request)
              const tooLong = (requested: number) =>
                new ContextTooLong({ model: request.model, contextWindow: window, requestedTokens: requested + output })
              if (budget <= 0) return Effect.fail(tooLong(total))
              return trimCounted(tokenizer, request.messages, counts, { budget, model: request.model, strategy, marker })
                .pipe(
                  Effect.mapError((error) => tooLong(error.requestedTokens ?? total)),
                  Effect.tap((result) => record(request.model, result)),
                  Effect.map((result) => new ChatRequest({ ...request, messages: result.messages }))
                )
            })
          })
        return LlmClient.policy({
          name: "PromptTrim",
          complete: (next) => (request) => Effect.flatMap(fit(request), next),
          stream: (next) => (request) => Stream.unwrap(Effect.map(fit(request), next))
        })
      })
  })
