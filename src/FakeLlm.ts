/**
 * A scripted, deterministic LLM provider for tests, examples and benchmarks.
 *
 * Per call it replies, fails with any LlmError, waits (on the Effect clock, so TestClock drives it), hangs,
 * streams chunks with delays, or cuts a stream. `FakeLlm.calls` reads back what it was asked. Usage tokens are
 * computed deterministically from the text (≈ 4 characters a token).
 *
 * @since 0.1.0
 */
import { Clock, Context, Duration, Effect, Layer, Option, Schema, Stream } from "effect"
import { decodeOrThrow, DurationInput } from "./InvalidOptions.js"
import { approximateMessageTokens, approximateTokens } from "./internal/approximateTokens.js"
import { BoundedKeys } from "./internal/boundedKeys.js"
import { ChatChunk, ChatResponse, type ChatRequest, type ToolCall, type Usage } from "./Llm.js"
import { LlmClient, make as makeClient, type Service } from "./LlmClient.js"
import { type LlmError, StreamTruncated } from "./LlmError.js"

/**
 * What the fake does for one call.
 *
 * @example
 * ```ts
 * import { FakeLlm } from "effect-llm-resilience"
 * const step: FakeLlm.Step = FakeLlm.delay("2 seconds", FakeLlm.reply("late answer"))
 * ```
 * @since 0.1.0
 * @category Models
 */
export type Step =
  | {
    readonly _tag: "Reply"
    readonly content: string
    readonly finishReason: string
    readonly model: string | undefined
    readonly usage: Usage | undefined
    readonly toolCalls: ReadonlyArray<ToolCall> | undefined
  }
  | { readonly _tag: "Fail"; readonly error: LlmError }
  | { readonly _tag: "Delay"; readonly duration: Duration.Duration; readonly step: Step }
  | { readonly _tag: "Hang" }
  | {
    readonly _tag: "Stream"
    readonly chunks: ReadonlyArray<string>
    readonly interval: Duration.Duration
    readonly firstChunkAfter: Duration.Duration
    readonly cut: boolean
    readonly finishReason: string
  }
  | { readonly _tag: "Echo" }

/**
 * What the script function sees: the request, the 1-based attempt number for this model + messages, and the
 * 1-based number of the call overall.
 *
 * @example
 * ```ts
 * import { FakeLlm, LlmError } from "effect-llm-resilience"
 * const script: FakeLlm.Script = ({ attempt }) =>
 *   attempt < 3 ? FakeLlm.fail(new LlmError.ServerError({ status: 503 })) : FakeLlm.reply("ok")
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface CallContext {
  readonly request: ChatRequest
  readonly attempt: number
  readonly call: number
}

/**
 * A script: one step for every call, a list (call n gets step n; the last step repeats), or a function of the
 * call.
 *
 * @example
 * ```ts
 * import { FakeLlm, LlmError } from "effect-llm-resilience"
 * const script: FakeLlm.Script = [FakeLlm.fail(new LlmError.RateLimited({})), FakeLlm.reply("ok")]
 * ```
 * @since 0.1.0
 * @category Models
 */
export type Script = Step | ReadonlyArray<Step> | ((context: CallContext) => Step)

/**
 * One call the fake received.
 *
 * @example
 * ```ts
 * import { FakeLlm } from "effect-llm-resilience"
 * const models = (calls: ReadonlyArray<FakeLlm.Call>) => calls.map((c) => c.request.model)
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Call {
  readonly request: ChatRequest
  readonly kind: "complete" | "stream"
  readonly attempt: number
  readonly call: number
  /** Effect clock time (ms) when the call started. */
  readonly at: number
}

/**
 * Replies with `content`. Options: `finishReason` (defaults to "stop", or "tool_calls" with `toolCalls`), `model`
 * (defaults to the request's), `usage` (defaults to ≈ 4 characters a token of the prompt and of `content`),
 * `toolCalls` (on the response, and on the last chunk of a stream).
 *
 * @example
 * ```ts
 * import { FakeLlm } from "effect-llm-resilience"
 * const step = FakeLlm.reply("Hello!", { finishReason: "length" })
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const reply = (
  content: string,
  options?: {
    readonly finishReason?: string
    readonly model?: string
    readonly usage?: Usage
    readonly toolCalls?: ReadonlyArray<ToolCall>
  }
): Step => ({
  _tag: "Reply",
  content,
  finishReason: options?.finishReason ?? (options?.toolCalls !== undefined ? "tool_calls" : "stop"),
  model: options?.model,
  usage: options?.usage,
  toolCalls: options?.toolCalls
})

/**
 * Fails with `error`.
 *
 * @example
 * ```ts
 * import { FakeLlm, LlmError } from "effect-llm-resilience"
 * const step = FakeLlm.fail(new LlmError.ServerError({ status: 503 }))
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const fail = (error: LlmError): Step => ({ _tag: "Fail", error })

/**
 * Waits `duration` on the Effect clock, then performs `step`.
 *
 * @example
 * ```ts
 * import { FakeLlm } from "effect-llm-resilience"
 * const step = FakeLlm.delay("5 seconds", FakeLlm.reply("slow"))
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const delay = (duration: Duration.DurationInput, step: Step): Step => ({
  _tag: "Delay",
  duration: decodeOrThrow(DurationInput, "FakeLlm.delay", duration),
  step
})

/**
 * Never answers (until interrupted).
 *
 * @example
 * ```ts
 * import { FakeLlm } from "effect-llm-resilience"
 * const script = [FakeLlm.hang, FakeLlm.reply("second attempt answers")]
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const hang: Step = { _tag: "Hang" }

/**
 * Replies with the content of the last user message.
 *
 * @example
 * ```ts
 * import { FakeLlm } from "effect-llm-resilience"
 * const layer = FakeLlm.layer(FakeLlm.echo)
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const echo: Step = { _tag: "Echo" }

/**
 * Streams `chunks`: the first after `firstChunkAfter` (default 0), the next ones `interval` apart (default 0),
 * then a final empty chunk with the finish reason and usage. `complete` on this step answers the joined text after
 * the same total delay.
 *
 * @example
 * ```ts
 * import { FakeLlm } from "effect-llm-resilience"
 * const step = FakeLlm.stream(["Hel", "lo"], { firstChunkAfter: "1 second", interval: "100 millis" })
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const stream = (
  chunks: ReadonlyArray<string>,
  options?: {
    readonly interval?: Duration.DurationInput
    readonly firstChunkAfter?: Duration.DurationInput
    readonly finishReason?: string
  }
): Step => ({
  _tag: "Stream",
  chunks,
  interval: decodeOrThrow(DurationInput, "FakeLlm.stream", options?.interval ?? 0),
  firstChunkAfter: decodeOrThrow(DurationInput, "FakeLlm.stream", options?.firstChunkAfter ?? 0),
  cut: false,
  finishReason: options?.finishReason ?? "stop"
})

/**
 * Streams `chunks` like {@link stream}, then fails with StreamTruncated (no finish reason): a connection cut
 * mid-stream. `complete` on this step fails with StreamTruncated after the same delay.
 *
 * @example
 * ```ts
 * import { FakeLlm } from "effect-llm-resilience"
 * const step = FakeLlm.cut(["partial ", "answer"], { interval: "50 millis" })
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const cut = (
  chunks: ReadonlyArray<string>,
  options?: { readonly interval?: Duration.DurationInput; readonly firstChunkAfter?: Duration.DurationInput }
): Step => ({ ...(stream(chunks, options) as Extract<Step, { _tag: "Stream" }>), cut: true })

/**
 * The service that records the calls a fake received.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { FakeLlm } from "effect-llm-resilience"
 * const count = Effect.map(FakeLlm.FakeLlm, (fake) => fake.calls)
 * ```
 * @since 0.1.0
 * @category Tags
 */
export class FakeLlm extends Context.Tag("effect-llm-resilience/FakeLlm")<
  FakeLlm,
  {
    readonly calls: Effect.Effect<ReadonlyArray<Call>>
    readonly reset: Effect.Effect<void>
  }
>() {}

/**
 * Every call received so far, in order.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { FakeLlm } from "effect-llm-resilience"
 * const program = Effect.gen(function* () {
 *   const calls = yield* FakeLlm.calls
 *   return calls.length
 * })
 * ```
 * @since 0.1.0
 * @category Accessors
 */
export const calls: Effect.Effect<ReadonlyArray<Call>, never, FakeLlm> = Effect.flatMap(FakeLlm, (fake) => fake.calls)

/**
 * Forgets the recorded calls and attempt counts.
 *
 * @example
 * ```ts
 * import { FakeLlm } from "effect-llm-resilience"
 * const program = FakeLlm.reset
 * ```
 * @since 0.1.0
 * @category Accessors
 */
export const reset: Effect.Effect<void, never, FakeLlm> = Effect.flatMap(FakeLlm, (fake) => fake.reset)

const pickStep = (script: Script, context: CallContext): Step => {
  if (typeof script === "function") return script(context)
  if (Array.isArray(script)) {
    const steps = script as ReadonlyArray<Step>
    return steps[Math.min(context.call - 1, steps.length - 1)]
  }
  return script as Step
}

const attemptKey = (request: ChatRequest): string =>
  `${request.model}\u0000${request.messages.map((m) => `${m.role}\u0001${m.content}`).join("\u0002")}`

const usageFor = (request: ChatRequest, content: string): Usage => ({
  inputTokens: approximateMessageTokens(request.messages),
  outputTokens: approximateTokens(content)
})

const lastUserContent = (request: ChatRequest): string => {
  for (let i = request.messages.length - 1; i >= 0; i--) {
    if (request.messages[i].role === "user") return request.messages[i].content
  }
  return ""
}

const completeStep = (request: ChatRequest, step: Step, id: string): Effect.Effect<ChatResponse, LlmError> => {
  switch (step._tag) {
    case "Reply":
      return Effect.succeed(
        new ChatResponse({
          id,
          model: step.model ?? request.model,
          content: step.content,
          finishReason: step.finishReason,
          usage: step.usage ?? usageFor(request, step.content),
          servedFrom: "provider",
          ...(step.toolCalls === undefined ? {} : { toolCalls: step.toolCalls })
        }, true)
      )
    case "Echo":
      return completeStep(request, reply(lastUserContent(request)), id)
    case "Fail":
      return Effect.fail(step.error)
    case "Delay":
      return Effect.zipRight(Effect.sleep(step.duration), completeStep(request, step.step, id))
    case "Hang":
      return Effect.never
    case "Stream": {
      const total = Duration.sum(
        step.firstChunkAfter,
        Duration.times(step.interval, Math.max(0, step.chunks.length - 1))
      )
      const content = step.chunks.join("")
      return Effect.zipRight(
        Effect.sleep(total),
        step.cut
          ? Effect.fail(
            new StreamTruncated({
              model: request.model,
              receivedChunks: step.chunks.length,
              outputTokens: approximateTokens(content)
            })
          )
          : completeStep(request, reply(content, { finishReason: step.finishReason }), id)
      )
    }
  }
}

const wordsOf = (content: string): ReadonlyArray<string> => content.match(/\S+\s*|\s+/g) ?? []

const streamStep = (request: ChatRequest, step: Step): Stream.Stream<ChatChunk, LlmError> => {
  switch (step._tag) {
    case "Reply":
    case "Echo": {
      const content = step._tag === "Echo" ? lastUserContent(request) : step.content
      const words = streamStep(request, {
        _tag: "Stream",
        chunks: wordsOf(content),
        interval: Duration.zero,
        firstChunkAfter: Duration.zero,
        cut: false,
        finishReason: step._tag === "Reply" ? step.finishReason : "stop"
      })
      const toolCalls = step._tag === "Reply" ? step.toolCalls : undefined
      // tool calls arrive whole on the last chunk, as the provider adapters deliver them
      return toolCalls === undefined ? words : Stream.map(words, (chunk) =>
        chunk.finishReason === undefined ? chunk : new ChatChunk({ ...chunk, toolCalls }, true))
    }
    case "Fail":
      return Stream.fail(step.error)
    case "Delay":
      return Stream.concat(Stream.drain(Stream.fromEffect(Effect.sleep(step.duration))), streamStep(request, step.step))
    case "Hang":
      return Stream.never
    case "Stream": {
      const model = request.model
      const body = Stream.fromIterable(step.chunks).pipe(
        Stream.zipWithIndex,
        Stream.mapEffect(([text, index]) =>
          Effect.as(
            Effect.sleep(index === 0 ? step.firstChunkAfter : step.interval),
            new ChatChunk({ content: text, model }, true)
          )
        )
      )
      const content = step.chunks.join("")
      const ending: Stream.Stream<ChatChunk, LlmError> = step.cut
        ? Stream.fail(
          new StreamTruncated({ model, receivedChunks: step.chunks.length, outputTokens: approximateTokens(content) })
        )
        : Stream.succeed(
          new ChatChunk({
            content: "",
            model,
            finishReason: step.finishReason,
            usage: usageFor(request, content)
          }, true)
        )
      return Stream.concat(body, ending)
    }
  }
}

/**
 * Options of a fake.
 *
 * @example
 * ```ts
 * import { FakeLlm } from "effect-llm-resilience"
 * const forBenchmarks: FakeLlm.Options = { record: false }
 * const lastThousand: FakeLlm.Options = { record: 1000 }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Options {
  /**
   * How many calls the recorder keeps: the most recent `record` calls (older ones are dropped, so a long run or a
   * benchmark does not measure the log), or none with `false`. Attempt counts (for per-attempt scripts) are kept for
   * the 100,000 most recently seen requests either way. Defaults to 100,000.
   */
  readonly record?: number | false | undefined
}

const DEFAULT_RECORD = 100_000

const RecordOption = Schema.Union(Schema.NonNegativeInt, Schema.Literal(false))

const recordLimit = (options: Options | undefined): number => {
  const record = options?.record
  if (record === undefined) return DEFAULT_RECORD
  const valid = decodeOrThrow(RecordOption, "FakeLlm.make record", record)
  return valid === false ? 0 : valid
}

/**
 * Builds a fake client and its call recorder. The recorder keeps the most recent calls (`options.record`, 100,000
 * by default; `false` keeps none).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { FakeLlm } from "effect-llm-resilience"
 * const program = Effect.gen(function* () {
 *   const { client, recorder } = yield* FakeLlm.make(FakeLlm.reply("hi"))
 *   return client
 * })
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const make = (
  script: Script,
  options?: Options
): Effect.Effect<{ readonly client: Service; readonly recorder: FakeLlm["Type"] }> =>
  Effect.gen(function* () {
    const limit = recordLimit(options)
    // The most recent `limit` calls: appended, and cut back to `limit` once twice as many (amortised O(1)).
    let recorded: Array<Call> = []
    const record = (call: Call) => {
      if (limit === 0) return
      recorded.push(call)
      if (recorded.length >= 2 * limit) recorded = recorded.slice(-limit)
    }
    const attempts = new BoundedKeys<number>("fake-llm")
    let callCount = 0
    const begin = (request: ChatRequest, kind: Call["kind"]) =>
      Effect.flatMap(Clock.currentTimeMillis, (at) => {
        const key = attemptKey(request)
        const attempt = (attempts.get(key) ?? 0) + 1
        attempts.set(key, attempt)
        const call = ++callCount
        const context: CallContext = { request, attempt, call }
        record({ request, kind, attempt, call, at })
        return Effect.succeed(context)
      })
    // Recorded and traced like any provider (gen_ai.provider.name "fake"), by LlmClient.make.
    const client: Service = makeClient({
      complete: (request) =>
        Effect.flatMap(begin(request, "complete"), (context) =>
          completeStep(request, pickStep(script, context), `fake-${context.call}`)),
      stream: (request) =>
        Stream.unwrap(Effect.map(begin(request, "stream"), (context) => streamStep(request, pickStep(script, context))))
    }, { provider: "fake" })
    const recorder: FakeLlm["Type"] = {
      calls: Effect.sync(() => recorded.length > limit ? recorded.slice(-limit) : recorded.slice()),
      reset: Effect.sync(() => {
        recorded = []
        attempts.clear()
        callCount = 0
      })
    }
    return { client, recorder }
  })

/**
 * A layer providing a scripted `LlmClient` and the `FakeLlm` recorder.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { FakeLlm, Llm, LlmClient, LlmError } from "effect-llm-resilience"
 * const layer = FakeLlm.layer([FakeLlm.fail(new LlmError.ServerError({ status: 503 })), FakeLlm.reply("ok")])
 * const program = LlmClient.complete(new Llm.ChatRequest({ model: "m", messages: [{ role: "user", content: "hi" }] }))
 * Effect.runPromise(Effect.flip(program).pipe(Effect.provide(layer)))
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layer = (script: Script, options?: Options): Layer.Layer<LlmClient | FakeLlm> =>
  Layer.effectContext(
    Effect.map(make(script, options), ({ client, recorder }) =>
      Context.make(LlmClient, client).pipe(Context.add(FakeLlm, recorder)))
  )

/**
 * The first recorded call whose request satisfies `predicate`, if any.
 *
 * @example
 * ```ts
 * import { FakeLlm } from "effect-llm-resilience"
 * const firstMini = FakeLlm.findCall((request) => request.model === "gpt-4o-mini")
 * ```
 * @since 0.1.0
 * @category Accessors
 */
export const findCall = (
  predicate: (request: ChatRequest) => boolean
): Effect.Effect<Option.Option<Call>, never, FakeLlm> =>
  Effect.map(calls, (all) => Option.fromNullable(all.find((c) => predicate(c.request))))
