/**
 * The ChaosServer's HTTP application: the routes of every dialect over a shared state, and the control
 * endpoints. The dialects live in their own modules (chaosChat, chaosAnthropic, chaosResponses) over one core
 * (chaosCall) that draws and delivers the faults.
 */
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Effect, Either } from "effect"
import { messages } from "./chaosAnthropic.js"
import * as Batch from "./chaosBatch.js"
import { embeddings } from "./chaosEmbeddings.js"
import { endpoint } from "./chaosCall.js"
import { chat, invalidRequest } from "./chaosChat.js"
import * as Faults from "./chaosFaults.js"
import { responses } from "./chaosResponses.js"
import type { ChaosState } from "./chaosState.js"

export { ChaosState, type Dialect, type Stats, type ToolCallMode } from "./chaosState.js"

// Anthropic clients list models with `anthropic-version` set; they get Anthropic's list shape.
const listModels = (state: ChaosState) =>
  Effect.map(HttpServerRequest.HttpServerRequest, (request) => {
    if (request.headers["anthropic-version"] !== undefined) {
      return HttpServerResponse.unsafeJson({
        data: state.models.map((id) => ({ type: "model", id, display_name: id, created_at: "1970-01-01T00:00:00Z" })),
        has_more: false,
        first_id: state.models[0] ?? null,
        last_id: state.models.at(-1) ?? null
      })
    }
    return HttpServerResponse.unsafeJson({
      object: "list",
      data: state.models.map((id) => ({ id, object: "model", created: 0, owned_by: "chaos-server" }))
    })
  })

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

/**
 * The routes: OpenAI chat completions and Responses, Anthropic Messages and the model list under /v1, and the
 * control endpoints under /_chaos.
 */
export const router = (state: ChaosState) =>
  HttpRouter.empty.pipe(
    HttpRouter.post("/v1/chat/completions", endpoint(state, chat)),
    HttpRouter.post("/v1/responses", endpoint(state, responses)),
    HttpRouter.post("/v1/messages", endpoint(state, messages)),
    HttpRouter.post("/v1/embeddings", endpoint(state, embeddings)),
    HttpRouter.get("/v1/models", listModels(state)),
    HttpRouter.post("/v1/files", Batch.createFile(state)),
    HttpRouter.get("/v1/files/:id", Batch.retrieveFile(state)),
    HttpRouter.get("/v1/files/:id/content", Batch.fileContent(state)),
    HttpRouter.post("/v1/batches", Batch.createBatch(state)),
    HttpRouter.get("/v1/batches/:id", Batch.retrieveBatch(state)),
    HttpRouter.post("/v1/batches/:id/cancel", Batch.cancelBatch(state)),
    HttpRouter.get("/_chaos/batches", Effect.sync(() => HttpServerResponse.unsafeJson(state.batch.stats()))),
    HttpRouter.get("/_chaos/stats", Effect.sync(() => HttpServerResponse.unsafeJson(state.stats()))),
    HttpRouter.post("/_chaos/config", postConfig(state)),
    HttpRouter.post("/_chaos/reset", Effect.sync(() => {
      state.resetStats()
      return HttpServerResponse.unsafeJson({ ok: true })
    }))
  )
