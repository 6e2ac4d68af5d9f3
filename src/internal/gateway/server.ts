/**
 * The gateway's HTTP application: `POST /v1/chat/completions` (JSON and SSE), `GET /v1/models`, `GET /healthz` and
 * `GET /metrics`, each request authenticated by its virtual key, and the drain that graceful shutdown waits on.
 *
 * A stream's first chunk is awaited before the answer's status goes out, so a refusal before any token (a spent
 * budget, an open breaker, an unknown model) is a proper 429/503/404 and not an error event inside a 200. After that
 * a failure is an error event (`data: {"error": …}`), which OpenAI's SDKs raise, and the stream ends without
 * `[DONE]`. Every handler runs interruptibly within its request's scope: a client that goes away, or the end of the
 * shutdown grace, interrupts the call below it (which refunds its budget reservation).
 */
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Chunk, Clock, type Duration, Effect, Either, Option, Random, Stream } from "effect"
import type { ChatChunk, ChatRequest, ChatResponse } from "../../Llm.js"
import type * as LlmClient from "../../LlmClient.js"
import { type LlmError, StreamTruncated } from "../../LlmError.js"
import * as Pricing from "../../Pricing.js"
import { type Route, budgetResetIn } from "./clients.js"
import type { EmbedRequest, Policy as EmbeddingsPolicy } from "../../Embeddings.js"
import * as Embed from "./embeddings.js"
import type { Answered } from "./embeddings.js"
import * as Errors from "./errors.js"
import { authenticate, type KeyRecord } from "./keys.js"
import * as Wire from "./wire.js"

/** Requests in flight, and whether new ones are refused. */
export class Drain {
  closing = false
  private count = 0
  private readonly idle = Effect.unsafeMakeLatch(true)
  get inFlight(): number {
    return this.count
  }
  enter(): void {
    if (this.count++ === 0) this.idle.unsafeClose()
  }
  leave(): void {
    if (--this.count === 0) this.idle.unsafeOpen()
  }
  /** Refuses new requests, then waits until those in flight are done or `grace` has passed. */
  close(grace: Duration.Duration): Effect.Effect<void> {
    return Effect.suspend(() => {
      this.closing = true
      // Interruptible: it runs as a finalizer, where a timeout could not otherwise stop the wait.
      return Effect.interruptible(this.idle.await).pipe(Effect.timeoutOption(grace), Effect.asVoid)
    })
  }
}

/** What the routes need. */
export interface App {
  readonly models: ReadonlyArray<string>
  readonly routes: ReadonlyMap<string, Route>
  readonly client: (key: KeyRecord, model: string) => Effect.Effect<LlmClient.Service, unknown>
  /** The embedding models, each over its deployments (none when the configuration has no `embeddings`). */
  readonly embeddings?: {
    readonly routes: ReadonlyMap<string, (request: EmbedRequest, limits: EmbeddingsPolicy) => Effect.Effect<Answered, LlmError>>
    readonly limits: (key: KeyRecord) => Effect.Effect<EmbeddingsPolicy, unknown>
  } | undefined
  readonly drain: Drain
  readonly metrics: Effect.Effect<string>
}

type Failure = Errors.ErrorAnswer

const respond = (answer: Failure): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.unsafeJson(answer.body, { status: answer.status, headers: answer.headers })

const key = (now: number) =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
    authenticate(request.headers["authorization"], now).pipe(
      Effect.mapError((error): Failure => error._tag === "KeyRefused" ? Errors.fromKeyRefused(error) : Errors.keyStoreUnavailable)
    ))

const allowed = (record: KeyRecord, model: string): boolean => record.models === undefined || record.models.includes(model)

/** The cost of an answer in USD: nothing for a replay, the price of its usage otherwise (unknown when unpriced). */
const costOf = (model: string, usage: ChatResponse["usage"] | undefined, servedFrom: string | undefined) =>
  servedFrom === "cache" || servedFrom === "idempotency" || usage === undefined
    ? Effect.succeed(Option.some(0))
    : Pricing.cost(model, usage)

const costHeader = (cost: Option.Option<number>): string =>
  // Fixed-point (never "6.3e-7"), to the nano-dollar.
  Option.match(cost, { onNone: () => "unknown", onSome: (usd) => usd.toFixed(9).replace(/\.?0+$/, "") || "0" })

const llmHeaders = (answer: {
  readonly model: string
  readonly deployment?: string | undefined
  readonly servedFrom?: string | undefined
  readonly cost?: Option.Option<number> | undefined
}): Record<string, string> => ({
  "x-llm-model": answer.model,
  "x-llm-served-from": answer.servedFrom ?? "provider",
  "x-llm-cache": answer.servedFrom === "cache" ? "hit" : "miss",
  ...(answer.deployment === undefined ? {} : { "x-llm-deployment": answer.deployment }),
  ...(answer.cost === undefined ? {} : { "x-llm-cost-usd": costHeader(answer.cost) })
})

const complete = (client: LlmClient.Service, request: ChatRequest, onError: (e: LlmError) => Failure) =>
  Effect.gen(function* () {
    const response = yield* Effect.mapError(client.complete(request), onError)
    const created = Math.floor((yield* Clock.currentTimeMillis) / 1000)
    const cost = yield* costOf(response.model, response.usage, response.servedFrom)
    return HttpServerResponse.unsafeJson(Wire.completionBody(response, created), {
      headers: llmHeaders({ ...response, cost })
    })
  })

const stream = (
  client: LlmClient.Service,
  request: ChatRequest,
  body: Wire.Body,
  onError: (e: LlmError) => Failure
) =>
  Effect.gen(function* () {
    // Pulled within the request's scope: it ends (and interrupts the call) when the response is written or abandoned.
    const pull = yield* Stream.toPull(client.stream(request))
    const first = yield* Effect.either(pull)
    if (Either.isLeft(first)) {
      return yield* Effect.fail(Option.match(first.left, {
        onNone: () => Errors.fromLlmError(new StreamTruncated({ model: body.model, receivedChunks: 0 }), body.model),
        onSome: onError
      }))
    }
    const head = Option.getOrUndefined(Chunk.head(first.right))
    const now = yield* Clock.currentTimeMillis
    const sse = Wire.sseWriter({
      id: `chatcmpl-${now.toString(36)}${(yield* Random.nextIntBetween(0, 1e9)).toString(36)}`,
      created: Math.floor(now / 1000),
      includeUsage: body.stream_options?.include_usage === true
    })
    const rest = Stream.repeatEffectChunkOption(pull)
    let extra: Wire.Extra = {}
    const events = Stream.concat(Stream.fromChunk(first.right), rest).pipe(
      Stream.tap((chunk: ChatChunk) =>
        chunk.finishReason === undefined ? Effect.void : Effect.map(
          costOf(chunk.model, chunk.usage, chunk.servedFrom),
          (cost) => void (extra = { deployment: chunk.deployment, costUsd: Option.getOrUndefined(cost) })
        )),
      Stream.mapConcat((chunk) => sse.chunk(chunk, () => extra)),
      Stream.concat(Stream.make(sse.done)),
      Stream.catchAll((error: LlmError) => Stream.make(sse.error(onError(error).body))),
      (s) => Stream.concat(Stream.make(sse.opening(head?.model ?? body.model)), s),
      Stream.encodeText
    )
    return HttpServerResponse.stream(events, {
      contentType: "text/event-stream",
      headers: { "cache-control": "no-cache", ...llmHeaders({ model: head?.model ?? body.model, servedFrom: head?.servedFrom }) }
    })
  })

const readBody = Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
  Effect.mapError(request.json, (): Failure => Errors.invalidBody("The body is not valid JSON")))

const chat = (app: App) =>
  Effect.gen(function* () {
    const now = yield* Clock.currentTimeMillis
    const record = yield* key(now)
    const body = yield* Effect.flatMap(readBody, (raw) =>
      Either.mapLeft(Wire.decodeBody(raw), (e): Failure => Errors.invalidBody(e.message, e.param)))
    if (!allowed(record, body.model)) return yield* Effect.fail(Errors.modelNotAllowed(body.model))
    const route = app.routes.get(body.model)
    if (route === undefined) return yield* Effect.fail(Errors.unknownModel(body.model))
    const headers = (yield* HttpServerRequest.HttpServerRequest).headers
    const request = yield* Either.mapLeft(
      Wire.toRequest(body, { tenant: record.tenant, headers }),
      (e): Failure => Errors.invalidBody(e.message, e.param)
    )
    const client = yield* Effect.mapError(app.client(record, body.model), (): Failure => Errors.internal)
    const onError = (error: LlmError) => Errors.fromLlmError(error, body.model, budgetResetIn(route, record, now))
    return yield* (body.stream === true ? stream(client, request, body, onError) : complete(client, request, onError))
  })

const embeddings = (app: App) =>
  Effect.gen(function* () {
    const now = yield* Clock.currentTimeMillis
    const record = yield* key(now)
    const body = yield* Effect.flatMap(readBody, (raw) =>
      Either.mapLeft(Embed.decodeBody(raw), (message): Failure => Errors.invalidBody(message)))
    if (!allowed(record, body.model)) return yield* Effect.fail(Errors.modelNotAllowed(body.model))
    const route = app.embeddings?.routes.get(body.model)
    if (route === undefined || app.embeddings === undefined) return yield* Effect.fail(Errors.unknownModel(body.model))
    const limits = yield* Effect.mapError(app.embeddings.limits(record), (): Failure => Errors.internal)
    const answered = yield* Effect.mapError(route(Embed.toRequest(body, record.tenant), limits), (error) =>
      Errors.fromLlmError(error, body.model))
    const cost = yield* Embed.costOf(answered.response)
    return HttpServerResponse.unsafeJson(Embed.responseBody(answered.response, body.encoding_format), {
      headers: llmHeaders({ model: answered.response.model, deployment: answered.deployment, servedFrom: "provider", cost })
    })
  })

const models = (app: App) =>
  Effect.gen(function* () {
    const record = yield* key(yield* Clock.currentTimeMillis)
    return HttpServerResponse.unsafeJson({
      object: "list",
      data: [...app.models, ...(app.embeddings?.routes.keys() ?? [])].filter((m) => allowed(record, m)).map((id) => ({ id, object: "model", created: 0, owned_by: "gateway" }))
    })
  })

/** Counts the request in flight for the life of its scope, or refuses it once the gateway is closing. */
const tracked = <R>(app: App, handler: Effect.Effect<HttpServerResponse.HttpServerResponse, Failure, R>) =>
  Effect.suspend(() => {
    if (app.drain.closing) return Effect.succeed(respond(Errors.shuttingDown))
    app.drain.enter()
    return Effect.zipRight(
      Effect.addFinalizer(() => Effect.sync(() => app.drain.leave())),
      handler.pipe(
        Effect.catchAll((failure) => Effect.succeed(respond(failure))),
        // Logged by kind only: a defect's message could quote a request.
        Effect.catchAllDefect((defect) =>
          Effect.as(
            Effect.logError(`gateway: a request failed unexpectedly (${defect instanceof Error ? defect.name : typeof defect})`),
            respond(Errors.internal)
          )),
        Effect.interruptible
      )
    )
  })

/** The routes. */
export const router = (app: App) =>
  HttpRouter.empty.pipe(
    HttpRouter.post("/v1/chat/completions", tracked(app, chat(app))),
    HttpRouter.post("/v1/embeddings", tracked(app, embeddings(app))),
    HttpRouter.get("/v1/models", tracked(app, models(app))),
    HttpRouter.get("/healthz", Effect.sync(() =>
      app.drain.closing
        ? HttpServerResponse.unsafeJson({ status: "shutting_down" }, { status: 503 })
        : HttpServerResponse.unsafeJson({ status: "ok" }))),
    HttpRouter.get("/metrics", Effect.map(app.metrics, (text) =>
      HttpServerResponse.text(text, { contentType: "text/plain; version=0.0.4; charset=utf-8" }))),
    HttpRouter.all("*", Effect.map(HttpServerRequest.HttpServerRequest, (request) =>
      respond(Errors.notFound(request.method, new URL(request.url, "http://gateway").pathname))))
  )
