/**
 * The ChaosServer's HTTP application: routes, request handling and fault injection over a shared state.
 */
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import * as NodeHttpServerRequest from "./nodeHttpServer.js"
import { Clock, Duration, Effect, Either, ParseResult, Schema, Stream } from "effect"
import type * as Http from "node:http"
import * as Content from "./chaosContent.js"
import * as Faults from "./chaosFaults.js"
import { forRequest } from "./chaosRandom.js"

/** The counters `/_chaos/stats` reports. */
export interface Stats {
  readonly requests: number
  readonly byModel: Readonly<Record<string, number>>
  readonly byOutcome: Readonly<Record<string, number>>
  readonly aborted: number
  readonly inFlight: number
}

/** The mutable state of one server. Node callbacks (a closed connection) update it, so it is plain data. */
export class ChaosState {
  config: Faults.FaultConfig
  private index = 0
  private requests = 0
  // Keyed by whatever model name a client sends: null-prototype, so "__proto__" or "constructor" count like any name.
  private byModel: Record<string, number> = Object.create(null)
  private byOutcome: Record<string, number> = Object.create(null)
  private aborted = 0
  private inFlight = 0

  constructor(
    readonly seed: number,
    readonly models: ReadonlyArray<string>,
    readonly words: number,
    config: Faults.FaultConfig
  ) {
    this.config = config
  }

  /** The next request number: the fault sequence is a function of the seed and this number. */
  nextIndex(): number {
    return this.index++
  }

  record(model: string, outcome: string): void {
    this.requests++
    this.byModel[model] = (this.byModel[model] ?? 0) + 1
    this.byOutcome[outcome] = (this.byOutcome[outcome] ?? 0) + 1
  }

  /** Counts a response in flight until its connection closes; a close before the end is a client abort. */
  track(response: Http.ServerResponse): { readonly cut: () => void } {
    let cutByServer = false
    this.inFlight++
    response.once("close", () => {
      this.inFlight--
      if (!response.writableEnded && !cutByServer) this.aborted++
    })
    return { cut: () => (cutByServer = true) }
  }

  stats(): Stats {
    return {
      requests: this.requests,
      byModel: { ...this.byModel },
      byOutcome: { ...this.byOutcome },
      aborted: this.aborted,
      inFlight: this.inFlight
    }
  }

  resetStats(): void {
    this.requests = 0
    this.byModel = Object.create(null)
    this.byOutcome = Object.create(null)
    this.aborted = 0
  }
}

const ChatBody = Schema.Struct({
  model: Schema.NonEmptyString,
  messages: Schema.Array(Schema.Struct({ role: Schema.String, content: Schema.optional(Schema.Unknown) })),
  stream: Schema.optional(Schema.NullOr(Schema.Boolean)),
  stream_options: Schema.optional(Schema.NullOr(Schema.Struct({ include_usage: Schema.optional(Schema.Boolean) }))),
  // OpenAI answers 400 to a limit below 1; so does the ChaosServer, rather than slicing the answer oddly.
  max_tokens: Schema.optional(Schema.NullOr(Schema.Int.pipe(Schema.positive()))),
  max_completion_tokens: Schema.optional(Schema.NullOr(Schema.Int.pipe(Schema.positive()))),
  response_format: Schema.optional(Schema.NullOr(Schema.Struct({ type: Schema.String }))),
  tools: Schema.optional(Schema.NullOr(Schema.Array(Schema.Struct({
    function: Schema.optional(Schema.Struct({ name: Schema.String }))
  })))),
  tool_choice: Schema.optional(Schema.Unknown)
})

type ChatBody = typeof ChatBody.Type

const encoder = new TextEncoder()
const jsonHeaders = (index: number) => ({ "x-request-id": `req_chaos_${index}` })

const invalidRequest = (message: string, param: string | null) =>
  HttpServerResponse.unsafeJson(
    { error: { message, type: "invalid_request_error", param, code: null } },
    { status: 400 }
  )

const decodeChat = (raw: unknown): Either.Either<ChatBody, HttpServerResponse.HttpServerResponse> =>
  Either.mapLeft(Schema.decodeUnknownEither(ChatBody, { errors: "all" })(raw), (error) => {
    const paths = ParseResult.ArrayFormatter.formatErrorSync(error).map((i) => i.path.join(".") || "(body)")
    return invalidRequest(`Invalid request body at: ${paths.join(", ")}`, paths[0] ?? null)
  })

const retryAfterHeaders = (spec: Faults.RetryAfterSpec | undefined, now: number): Record<string, string> => {
  if (spec === undefined) return {}
  if (spec.seconds !== undefined) return { "retry-after": String(spec.seconds) }
  if (spec.ms !== undefined) return { "retry-after-ms": String(spec.ms) }
  if (spec.date !== undefined) return { "retry-after": new Date(now + spec.date * 1000).toUTCString() }
  return {}
}

/** The tool a request forces (`tool_choice` naming a function, or "required" with tools), if any. */
const forcedTool = (body: ChatBody): string | undefined => {
  const choice = body.tool_choice
  if (typeof choice === "object" && choice !== null) {
    const fn = (choice as { readonly function?: { readonly name?: unknown } }).function
    if (typeof fn?.name === "string") return fn.name
  }
  if (choice === "required") return body.tools?.[0]?.function?.name
  return undefined
}

interface Call {
  readonly state: ChaosState
  readonly body: ChatBody
  readonly index: number
  readonly id: string
  readonly created: number
  readonly now: number
  readonly faults: Faults.Faults
  readonly answer: Content.Answer
  readonly cutDraw: number
  readonly tracker: { readonly cut: () => void }
}

const errorResponse = (call: Call, spec: Faults.ErrorSpec) =>
  HttpServerResponse.unsafeJson(Content.errorBody(spec.status, spec.code, call.body.model), {
    status: spec.status,
    headers: { ...jsonHeaders(call.index), ...retryAfterHeaders(spec.retryAfter, call.now) }
  })

// Ends the response after the bytes written so far are flushed, without a proper end of body: the client
// sees the connection close mid-response.
const cutConnection = (call: Call, response: Http.ServerResponse) =>
  Stream.fromEffect(Effect.sync(() => {
    call.tracker.cut()
    response.socket?.destroySoon()
  })).pipe(Stream.drain, Stream.concat(Stream.never))

const bytes = (texts: ReadonlyArray<string>) => Stream.fromIterable(texts.map((t) => encoder.encode(t)))

const completionResponse = (call: Call, decision: Faults.Decision, response: Http.ServerResponse) => {
  const tool = forcedTool(call.body)
  const body = Content.completionBody({
    id: call.id,
    model: call.body.model,
    created: call.created,
    answer: decision._tag === "filtered" ? { ...call.answer, content: "", completionTokens: 0 } : call.answer,
    ...(decision._tag === "filtered" ? { finishReason: "content_filter" } : {}),
    toolCall: tool === undefined || decision._tag === "filtered"
      ? undefined
      : { id: `call_chaos_${call.index}`, name: tool, arguments: JSON.stringify({ query: call.answer.content }) }
  })
  const text = JSON.stringify(body)
  if (decision._tag === "malformed") {
    return HttpServerResponse.text(text.slice(0, Math.floor(text.length / 2)), {
      contentType: "application/json",
      headers: jsonHeaders(call.index)
    })
  }
  if (decision._tag === "cut") {
    return HttpServerResponse.stream(
      Stream.concat(bytes([text.slice(0, Math.floor(text.length / 2))]), cutConnection(call, response)),
      { contentType: "application/json", headers: jsonHeaders(call.index) }
    )
  }
  return HttpServerResponse.unsafeJson(body, { headers: jsonHeaders(call.index) })
}

interface Event {
  readonly delay: Duration.Duration
  readonly data: string
}

const sseEvents = (call: Call, decision: Faults.Decision): { events: Array<Event>; cut: boolean } => {
  const base = { id: call.id, model: call.body.model, created: call.created }
  const firstDelay = call.faults.firstTokenDelay ?? Duration.zero
  const gap = call.faults.chunkDelay ?? Duration.zero
  // As OpenAI does, the opening role delta (empty text) goes out with the headers; `firstTokenDelay` delays the
  // first event after it (the first text, or the broken event), so time to first token is time to first text.
  const events: Array<Event> = [
    { delay: Duration.zero, data: Content.sse(Content.chunkBody({ ...base, delta: { role: "assistant", content: "" }, finishReason: null })) }
  ]
  const delayFirst = () => {
    if (events.length > 1) events[1] = { ...events[1], delay: Duration.sum(firstDelay, events[1].delay) }
  }
  if (decision._tag === "malformed") {
    events.push({ delay: gap, data: Content.sse(JSON.stringify(Content.chunkBody({ ...base, delta: { content: "x" }, finishReason: null })).slice(0, 40)) })
    delayFirst()
    return { events, cut: false }
  }
  const pieces = decision._tag === "filtered" ? [] : Content.pieces(call.answer.content)
  const cutAt = decision._tag === "cut"
    ? Math.min(call.faults.cutAfterChunks ?? Math.floor(call.cutDraw * pieces.length), pieces.length)
    : pieces.length
  for (const piece of pieces.slice(0, cutAt)) {
    events.push({ delay: gap, data: Content.sse(Content.chunkBody({ ...base, delta: { content: piece }, finishReason: null })) })
  }
  if (decision._tag === "cut") {
    delayFirst()
    return { events, cut: true }
  }
  const finishReason = decision._tag === "filtered" ? "content_filter" : call.answer.finishReason
  events.push({ delay: gap, data: Content.sse(Content.chunkBody({ ...base, delta: {}, finishReason })) })
  if (call.body.stream_options?.include_usage === true) {
    const answer = decision._tag === "filtered" ? { ...call.answer, completionTokens: 0 } : call.answer
    events.push({ delay: Duration.zero, data: Content.sse(Content.usageChunkBody({ ...base, answer })) })
  }
  events.push({ delay: Duration.zero, data: Content.sse("[DONE]") })
  delayFirst()
  return { events, cut: false }
}

const streamResponse = (call: Call, decision: Faults.Decision, response: Http.ServerResponse) => {
  const { cut, events } = sseEvents(call, decision)
  const body = Stream.fromIterable(events).pipe(
    Stream.mapEffect((event) =>
      Duration.toMillis(event.delay) > 0
        ? Effect.as(Effect.sleep(event.delay), encoder.encode(event.data))
        : Effect.succeed(encoder.encode(event.data))
    )
  )
  return HttpServerResponse.stream(cut ? Stream.concat(body, cutConnection(call, response)) : body, {
    contentType: "text/event-stream",
    headers: { ...jsonHeaders(call.index), "cache-control": "no-cache" }
  })
}

const respond = (state: ChaosState, body: ChatBody) =>
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    const nodeResponse = NodeHttpServerRequest.toServerResponse(request)
    const index = state.nextIndex()
    const next = forRequest(state.seed, index)
    const [outcomeDraw, jitterDraw, cutDraw] = [next(), next(), next()]
    const faults = Faults.resolve(state.config, body.model)
    const decision = Faults.decide(faults, outcomeDraw)
    state.record(body.model, Faults.outcomeLabel(decision))
    const tracker = state.track(nodeResponse)
    yield* Effect.sleep(Faults.delayOf(faults, jitterDraw))
    if (decision._tag === "hang") return yield* Effect.never
    const now = yield* Clock.currentTimeMillis
    const maxTokens = body.max_completion_tokens ?? body.max_tokens ?? undefined
    const prompt = Content.promptText(body.messages)
    const json = body.response_format?.type === "json_object" || body.response_format?.type === "json_schema"
    const call: Call = {
      state, body, index, now, faults, cutDraw, tracker,
      id: `chatcmpl-chaos-${index}`,
      created: Math.floor(now / 1000),
      answer: Content.answer({ seed: state.seed, prompt, words: state.words, json, maxTokens })
    }
    if (decision._tag === "error") return errorResponse(call, decision.error)
    return body.stream === true
      ? streamResponse(call, decision, nodeResponse)
      : completionResponse(call, decision, nodeResponse)
  })

const chatCompletions = (state: ChaosState) =>
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    const raw = yield* Effect.either(request.json)
    if (Either.isLeft(raw)) return invalidRequest("The body is not valid JSON", null)
    const body = decodeChat(raw.right)
    if (Either.isLeft(body)) return body.left
    return yield* respond(state, body.right)
  })

const listModels = (state: ChaosState) =>
  Effect.succeed(HttpServerResponse.unsafeJson({
    object: "list",
    data: state.models.map((id) => ({ id, object: "model", created: 0, owned_by: "chaos-server" }))
  }))

/** Validates and installs new fault settings. */
export const setConfig = (state: ChaosState, input: unknown) =>
  Either.map(Faults.decodeStrict(Faults.FaultConfig, input), (config) => {
    state.config = config
  })

const postConfig = (state: ChaosState) =>
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    const raw = yield* Effect.either(request.json)
    if (Either.isLeft(raw)) return invalidRequest("The body is not valid JSON", null)
    return Either.match(setConfig(state, raw.right), {
      onLeft: (error) =>
        HttpServerResponse.unsafeJson(
          { error: { message: error.message, type: "invalid_request_error", issues: error.issues } },
          { status: 400 }
        ),
      onRight: () => HttpServerResponse.unsafeJson({ ok: true })
    })
  })

/** The routes: the OpenAI-compatible API under /v1 and the control endpoints under /_chaos. */
export const router = (state: ChaosState) =>
  HttpRouter.empty.pipe(
    HttpRouter.post("/v1/chat/completions", chatCompletions(state)),
    HttpRouter.get("/v1/models", listModels(state)),
    HttpRouter.get("/_chaos/stats", Effect.sync(() => HttpServerResponse.unsafeJson(state.stats()))),
    HttpRouter.post("/_chaos/config", postConfig(state)),
    HttpRouter.post("/_chaos/reset", Effect.sync(() => {
      state.resetStats()
      return HttpServerResponse.unsafeJson({ ok: true })
    }))
  )
