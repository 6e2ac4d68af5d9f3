/**
 * The dialect-neutral core of one ChaosServer request: decode the body, draw the fault, count it, wait, hang or
 * fail, decide what the assistant says (a {@link Turn}), and deliver a JSON body or an SSE stream with the drawn
 * fault (cut, malformed). Each dialect (chat completions, Anthropic Messages, OpenAI Responses) supplies a
 * {@link Handler}: its body schema, its error bodies and how a turn reads in its format.
 */
import { HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Clock, Duration, Effect, Either, ParseResult, Schema, Stream } from "effect"
import type * as Http from "node:http"
import * as Content from "./chaosContent.js"
import * as Faults from "./chaosFaults.js"
import type * as Quota from "./chaosQuota.js"
import { forRequest } from "./chaosRandom.js"
import type { ChaosState, Dialect, Tracker } from "./chaosState.js"
import { chooseTool, type ToolRequest, toolInput } from "./chaosTools.js"
import * as NodeHttpServerRequest from "./nodeHttpServer.js"

/** What a request asks for, whatever its dialect. */
export interface Question {
  /** The text of every message, for the generated answer and the input token count. */
  readonly prompt: string
  /** A structured answer was asked for: `schema` is its JSON schema when the request sent one. */
  readonly json: boolean
  readonly schema?: unknown
  readonly maxTokens: number | undefined
  readonly tools: ToolRequest
}

/** What the assistant says. */
export type Turn =
  | { readonly _tag: "text"; readonly answer: Content.Answer }
  | {
    readonly _tag: "tool"
    readonly id: string
    readonly name: string
    readonly input: Record<string, unknown>
    readonly arguments: string
    readonly promptTokens: number
    readonly completionTokens: number
  }
  | { readonly _tag: "filtered"; readonly promptTokens: number }

/** How the answer is delivered: whole, cut (the connection closes halfway) or malformed. */
export type Delivery = "ok" | "cut" | "malformed"

/** One request being answered. */
export interface Call<Body> {
  readonly state: ChaosState
  readonly body: Body
  readonly model: string
  readonly index: number
  /** The server's clock (ms) once the delay is over. */
  readonly now: number
  readonly faults: Faults.Faults
  readonly delivery: Delivery
  readonly turn: Turn
  /** The part of the prompt's tokens read from the server's prompt cache (see chaosPromptCache). */
  readonly cachedTokens: number
  /** The part of the prompt's tokens this request wrote to the server's prompt cache. */
  readonly cacheWriteTokens: number
  readonly cutDraw: number
  readonly tracker: Tracker
  readonly response: Http.ServerResponse
  /** The request id header(s) every response of this call carries. */
  readonly headers: Readonly<Record<string, string>>
}

/** A dialect of the API. */
export interface Handler<Body, I> {
  readonly dialect: Dialect
  readonly schema: Schema.Schema<Body, I>
  /** The header that carries the request id (`x-request-id` for OpenAI, `request-id` for Anthropic). */
  readonly requestIdHeader: string
  /** A 400 in the dialect's error format; `param` is the first failing path. */
  readonly invalid: (message: string, param: string | null) => HttpServerResponse.HttpServerResponse
  readonly model: (body: Body) => string
  /** The error body of an injected error status. */
  readonly errorBody: (error: Faults.ErrorSpec, model: string, requestId: string) => unknown
  /** The tool call id prefix (`call_`, `toolu_`). */
  readonly toolCallPrefix: string
  readonly question: (body: Body) => Question
  readonly reply: (call: Call<Body>) => HttpServerResponse.HttpServerResponse
}

const retryAfterHeaders = (spec: Faults.RetryAfterSpec | undefined, now: number): Record<string, string> => {
  if (spec === undefined) return {}
  if (spec.seconds !== undefined) return { "retry-after": String(spec.seconds) }
  if (spec.ms !== undefined) return { "retry-after-ms": String(spec.ms) }
  if (spec.date !== undefined) return { "retry-after": new Date(now + spec.date * 1000).toUTCString() }
  return {}
}

/** The turn of a request: filtered, a tool call (see `chooseTool`), or a generated text answer. */
export const turnOf = (state: ChaosState, question: Question, filtered: boolean, toolCallId: string): Turn => {
  const promptTokens = Math.max(1, Content.approximateTokens(question.prompt))
  if (filtered) return { _tag: "filtered", promptTokens }
  const tool = chooseTool(question.tools, state.settings.toolCalls)
  if (tool === undefined) {
    return {
      _tag: "text",
      answer: Content.answer({
        seed: state.seed,
        prompt: question.prompt,
        words: state.words,
        json: question.json,
        schema: question.schema,
        maxTokens: question.maxTokens
      })
    }
  }
  const input = toolInput(tool, Content.generateText(state.seed, question.prompt, state.words))
  const args = JSON.stringify(input)
  return { _tag: "tool", id: toolCallId, name: tool.name, input, arguments: args, promptTokens, completionTokens: Content.approximateTokens(args) }
}

// What a quota charges a request when it arrives: its prompt plus `max_tokens` (the answer it gets without one).
const quotaTokens = (state: ChaosState, question: Question): number =>
  Math.max(1, Content.approximateTokens(question.prompt)) +
  (question.maxTokens ?? Content.approximateTokens(Content.generateText(state.seed, question.prompt, state.words)))

// A spent quota: 429 at once, with the quota headers and Retry-After until the window ends.
const quotaExceeded = <Body, I>(handler: Handler<Body, I>, model: string, requestId: string, quota: Quota.Admission) =>
  HttpServerResponse.unsafeJson(handler.errorBody({ status: 429, rate: 1 }, model, requestId), {
    status: 429,
    headers: {
      [handler.requestIdHeader]: requestId,
      ...quota.headers,
      "retry-after-ms": String(Math.ceil(quota.retryAfterMs)),
      "retry-after": String(Math.ceil(quota.retryAfterMs / 1_000))
    }
  })

const decodeBody = <Body, I>(handler: Handler<Body, I>, raw: unknown) =>
  Either.mapLeft(Schema.decodeUnknownEither(handler.schema, { errors: "all" })(raw), (error) => {
    const paths = ParseResult.ArrayFormatter.formatErrorSync(error).map((i) => i.path.join(".") || "(body)")
    return handler.invalid(`Invalid request body at: ${paths.join(", ")}`, paths[0] ?? null)
  })

const respond = <Body, I>(state: ChaosState, handler: Handler<Body, I>, body: Body) =>
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    const response = NodeHttpServerRequest.toServerResponse(request)
    const index = state.nextIndex()
    const next = forRequest(state.seed, index)
    const [outcomeDraw, jitterDraw, cutDraw] = [next(), next(), next()]
    const model = handler.model(body)
    const requestId = `req_chaos_${index}`
    const quota = state.quota.has(model)
      ? state.quota.take(model, quotaTokens(state, handler.question(body)), yield* Clock.currentTimeMillis)
      : undefined
    if (quota !== undefined && !quota.admitted) {
      state.record(model, "error:429", handler.dialect)
      return quotaExceeded(handler, model, requestId, quota)
    }
    const faults = Faults.resolve(state.config, model)
    const decision = Faults.decide(faults, outcomeDraw)
    state.record(model, Faults.outcomeLabel(decision), handler.dialect)
    const tracker = state.track(response)
    yield* Effect.sleep(Faults.delayOf(faults, jitterDraw))
    if (decision._tag === "hang") return yield* Effect.never
    const now = yield* Clock.currentTimeMillis
    const headers = { [handler.requestIdHeader]: requestId, ...quota?.headers }
    if (decision._tag === "error") {
      return HttpServerResponse.unsafeJson(handler.errorBody(decision.error, model, requestId), {
        status: decision.error.status,
        headers: { ...headers, ...retryAfterHeaders(decision.error.retryAfter, now) }
      })
    }
    const question = handler.question(body)
    const turn = turnOf(state, question, decision._tag === "filtered", `${handler.toolCallPrefix}chaos_${index}`)
    // Embedding inputs are not prompts: they neither fill nor read the prompt cache.
    const cache = handler.dialect === "embeddings" ? { cached: 0, written: 0 } : state.promptCache.lookup(model, question.prompt)
    const delivery: Delivery = decision._tag === "cut" || decision._tag === "malformed" ? decision._tag : "ok"
    return handler.reply({ state, body, model, index, now, faults, delivery, turn, cachedTokens: cache.cached, cacheWriteTokens: cache.written, cutDraw, tracker, response, headers })
  })

/** The HTTP handler of one dialect's endpoint. */
export const endpoint = <Body, I>(state: ChaosState, handler: Handler<Body, I>) =>
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    const raw = yield* Effect.either(request.json)
    if (Either.isLeft(raw)) return handler.invalid("The body is not valid JSON", null)
    const body = decodeBody(handler, raw.right)
    if (Either.isLeft(body)) return body.left
    return yield* respond(state, handler, body.right)
  })

const encoder = new TextEncoder()

// Ends the response after the bytes written so far are flushed, without a proper end of body: the client
// sees the connection close mid-response.
const cutConnection = (call: Call<unknown>) =>
  Stream.fromEffect(Effect.sync(() => {
    call.tracker.cut()
    call.response.socket?.destroySoon()
  })).pipe(Stream.drain, Stream.concat(Stream.never))

/** A JSON answer, delivered whole, cut halfway (connection closed) or malformed (half of it, properly ended). */
export const jsonReply = <Body>(call: Call<Body>, body: unknown): HttpServerResponse.HttpServerResponse => {
  if (call.delivery === "ok") return HttpServerResponse.unsafeJson(body, { headers: call.headers })
  const text = JSON.stringify(body)
  const half = text.slice(0, Math.floor(text.length / 2))
  if (call.delivery === "malformed") {
    return HttpServerResponse.text(half, { contentType: "application/json", headers: call.headers })
  }
  return HttpServerResponse.stream(
    Stream.concat(Stream.make(encoder.encode(half)), cutConnection(call)),
    { contentType: "application/json", headers: call.headers }
  )
}

/**
 * The server-sent events of an answer, as formatted frames. As OpenAI and Anthropic do, the `opening` frames (the
 * empty role delta; `message_start`, the block start and a `ping`; `response.created` …) go out with the headers;
 * `firstTokenDelay` delays the first frame after them, so time to first token is time to first text. Each of
 * `deltas` comes after `chunkDelay`, then `finish` (its first frame after `chunkDelay`, the rest at once). A cut
 * stream stops after some deltas and closes the connection; a malformed one sends `broken` after the opening and
 * ends.
 */
export interface SsePlan {
  readonly opening: ReadonlyArray<string>
  readonly deltas: ReadonlyArray<string>
  readonly finish: ReadonlyArray<string>
  readonly broken: string
}

interface Frame {
  readonly delay: Duration.Duration
  readonly data: string
}

const afterOpening = <Body>(call: Call<Body>, plan: SsePlan): ReadonlyArray<Frame> => {
  const gap = call.faults.chunkDelay ?? Duration.zero
  if (call.delivery === "malformed") return [{ delay: gap, data: plan.broken }]
  const cutAt = call.delivery === "cut"
    ? Math.min(call.faults.cutAfterChunks ?? Math.floor(call.cutDraw * plan.deltas.length), plan.deltas.length)
    : plan.deltas.length
  const deltas = plan.deltas.slice(0, cutAt).map((data) => ({ delay: gap, data }))
  if (call.delivery === "cut") return deltas
  return [...deltas, ...plan.finish.map((data, i) => ({ delay: i === 0 ? gap : Duration.zero, data }))]
}

const frames = <Body>(call: Call<Body>, plan: SsePlan): ReadonlyArray<Frame> => {
  const [first, ...rest] = afterOpening(call, plan)
  const firstTokenDelay = call.faults.firstTokenDelay ?? Duration.zero
  return [
    ...plan.opening.map((data) => ({ delay: Duration.zero, data })),
    ...(first === undefined ? [] : [{ ...first, delay: Duration.sum(firstTokenDelay, first.delay) }, ...rest])
  ]
}

/** An SSE answer (see {@link SsePlan}). */
export const sseReply = <Body>(call: Call<Body>, plan: SsePlan): HttpServerResponse.HttpServerResponse => {
  const body = Stream.fromIterable(frames(call, plan)).pipe(
    Stream.mapEffect((frame) =>
      Duration.toMillis(frame.delay) > 0
        ? Effect.as(Effect.sleep(frame.delay), encoder.encode(frame.data))
        : Effect.succeed(encoder.encode(frame.data))
    )
  )
  return HttpServerResponse.stream(
    call.delivery === "cut" ? Stream.concat(body, cutConnection(call)) : body,
    { contentType: "text/event-stream", headers: { ...call.headers, "cache-control": "no-cache" } }
  )
}
