/**
 * The provider adapter over the official `openai` SDK: an `LlmClient` for OpenAI and every
 * OpenAI-compatible server (Azure, vLLM, Ollama, OpenRouter, a local model, the ChaosServer).
 *
 * Imported from the subpath `effect-llm-resilience/OpenAi`, so the core never loads `openai`. The SDK is
 * built with `maxRetries: 0` (the Retry policy owns retries) and a timeout of about 23 days (the Timeout
 * policy owns deadlines); interrupting a call aborts its HTTP request.
 *
 * @since 0.1.0
 */
import { Clock, Config, Duration, Effect, Either, FiberRef, Layer, Option, Redacted, Schema, Stream } from "effect"
import type { ConfigError } from "effect/ConfigError"
import OpenAI, { APIError } from "openai"
import { InvalidOptions } from "./InvalidOptions.js"
import type { ChatChunk, ChatRequest, ChatResponse } from "./Llm.js"
import * as LlmClient from "./LlmClient.js"
import type { Service } from "./LlmClient.js"
import type { LlmError, ModelFailure } from "./LlmError.js"
import { MalformedResponse, StreamTruncated, Timeout } from "./LlmError.js"
import { tryPromiseWithDeadline } from "./internal/deadline.js"
import * as Errors from "./internal/openaiErrors.js"
import * as Mapping from "./internal/openaiMapping.js"
import * as Quota from "./internal/quota.js"
import { make as makeOpenAiEmbeddings } from "./internal/openaiEmbeddings.js"
import * as Embeddings from "./Embeddings.js"
import type { Service as EmbeddingsService } from "./Embeddings.js"
import { PositiveDuration } from "./internal/optionSchemas.js"

/**
 * Options of {@link layer} and {@link make}.
 *
 * @example
 * ```ts
 * import { Redacted } from "effect"
 * import * as OpenAi from "effect-llm-resilience/OpenAi"
 * const options: OpenAi.Options = { apiKey: Redacted.make("sk-..."), baseURL: "http://127.0.0.1:8787/v1" }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Options {
  /** The API key, kept `Redacted` so it never prints. Required. */
  readonly apiKey: Redacted.Redacted<string>
  /** The API root, e.g. `http://127.0.0.1:8787/v1`. Defaults to the SDK's (`OPENAI_BASE_URL` or api.openai.com). */
  readonly baseURL?: string | undefined
  /** Sent as `OpenAI-Organization`. Defaults to the SDK's (`OPENAI_ORG_ID`). */
  readonly organization?: string | undefined
  /** Sent as `OpenAI-Project`. Defaults to the SDK's (`OPENAI_PROJECT_ID`). */
  readonly project?: string | undefined
  /** Headers added to every request. Defaults to none. */
  readonly defaultHeaders?: Readonly<Record<string, string>> | undefined
  /**
   * The body field that carries `maxTokens`. Defaults to `"max_tokens"`, which every OpenAI-compatible
   * server understands; OpenAI's reasoning models need `"max_completion_tokens"`.
   */
  readonly maxTokensParam?: Mapping.MaxTokensParam | undefined
  /**
   * The SDK's own per-request timeout: it bounds the wait for a response's headers (not reading its body or a
   * stream). Defaults to none: deadlines belong to `Timeout.policy`, which aborts the request and fails with a typed
   * `Timeout`. Given (a positive duration), its expiry is a ConnectionError.
   */
  readonly timeout?: Duration.DurationInput | undefined
  /** Only 0 is accepted (the default): retries belong to `Retry.policy`; SDK retries would nest inside them. */
  readonly maxRetries?: 0 | undefined
  /** A `fetch` implementation for the SDK to use (a proxy, a test double). Defaults to the global `fetch`. */
  readonly fetch?: ((input: string | URL | Request, init?: RequestInit) => Promise<Response>) | undefined
  /** Query parameters added to every request (e.g. Azure's `api-version`). Defaults to none. */
  readonly defaultQuery?: Readonly<Record<string, string>> | undefined
  /**
   * The `gen_ai.provider.name` on this client's spans and metrics, as the OpenTelemetry GenAI conventions spell
   * it (`openai`, `azure.ai.openai`, `groq`, `deepseek`, …, or a name of your own). Defaults to "azure.ai.openai"
   * for an `*.openai.azure.com` server, else "openai".
   */
  readonly provider?: string | undefined
}

// setTimeout overflows above 2^31 - 1 ms (and then fires at once), so "no SDK timeout" is just under it.
const SDK_TIMEOUT_MS = 2_000_000_000

// Checked up front: fetch would throw on every call, and that TypeError reads as a (retryable) network failure.
// The messages never quote the value, which may be a credential (`defaultHeaders: { Authorization }`).
const headerName = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
const headerValueMessage = "Expected an HTTP header value (no CR, LF, NUL or character beyond Latin-1)"
const HeaderValue = Schema.String.pipe(
  Schema.filter((s) => !Mapping.invalidHeaderValue.test(s), { message: () => headerValueMessage })
)
const Headers = Schema.Record({ key: Schema.String, value: Schema.String }).pipe(
  Schema.filter((headers) =>
    Object.entries(headers).flatMap(([name, value]) => [
      ...(headerName.test(name) ? [] : [{ path: [name], message: "Expected an HTTP header name (letters, digits, -, …)" }]),
      ...(Mapping.invalidHeaderValue.test(value) ? [{ path: [name], message: headerValueMessage }] : [])
    ])
  )
)

// Exact optional fields: a bad value is reported once, without an "Expected undefined, actual <the whole value>"
// alternative (which would print every header). Explicit `undefined`s are dropped before decoding.
const optional = <S extends Schema.Schema.All>(schema: S) => Schema.optionalWith(schema, { exact: true })

const OptionsSchema = Schema.Struct({
  baseURL: optional(
    Schema.String.pipe(Schema.filter((s) => URL.canParse(s), { message: () => "Expected an absolute URL" }))
  ),
  organization: optional(HeaderValue),
  project: optional(HeaderValue),
  defaultHeaders: optional(Headers),
  maxTokensParam: optional(Schema.Literal("max_tokens", "max_completion_tokens")),
  // 0 would abort every request at once
  timeout: optional(PositiveDuration),
  maxRetries: optional(Schema.Literal(0).annotations({
    message: () => "Expected 0: retries belong to Retry.policy (SDK retries would nest inside it)"
  })),
  fetch: optional(Schema.declare((u: unknown): u is NonNullable<Options["fetch"]> => typeof u === "function", {
    message: () => "Expected a fetch function"
  })),
  defaultQuery: optional(Schema.Record({ key: Schema.String, value: Schema.String })),
  provider: optional(Schema.NonEmptyString)
})

// The key is checked by hand: a Schema issue would print the actual value, i.e. the key itself.
const validate = (options: Options): Either.Either<typeof OptionsSchema.Type, InvalidOptions> => {
  const { apiKey, ...rest } = options
  const keyIssues = Redacted.isRedacted(apiKey)
    ? []
    : [{ path: "apiKey", message: "Expected a Redacted<string> (Redacted.make(key) or Config.redacted(\"OPENAI_API_KEY\"))" }]
  const given = Object.fromEntries(Object.entries(rest).filter(([, value]) => value !== undefined))
  // Unknown keys are errors: a misspelt `baseUrl` must not silently send the calls to api.openai.com.
  const decoded = Schema.decodeUnknownEither(OptionsSchema, { errors: "all", onExcessProperty: "error" })(given)
  if (Either.isRight(decoded) && keyIssues.length === 0) return Either.right(decoded.right)
  const schemaIssues = Either.isLeft(decoded) ? InvalidOptions.fromParseError("OpenAi", decoded.left).issues : []
  return Either.left(new InvalidOptions({ target: "OpenAi", issues: [...keyIssues, ...schemaIssues] }))
}

/** The SDK client both `make` and `makeEmbeddings` call through: no SDK retries (the policies retry), bounded timeout. */
const sdkClient = (options: Options, valid: typeof OptionsSchema.Type): OpenAI =>
  new OpenAI({
    apiKey: Redacted.value(options.apiKey),
    baseURL: valid.baseURL,
    organization: valid.organization,
    project: valid.project,
    defaultHeaders: valid.defaultHeaders,
    maxRetries: 0,
    timeout: valid.timeout === undefined ? SDK_TIMEOUT_MS : Math.min(Duration.toMillis(valid.timeout), SDK_TIMEOUT_MS),
    ...(valid.fetch === undefined ? {} : { fetch: valid.fetch }),
    ...(valid.defaultQuery === undefined ? {} : { defaultQuery: { ...valid.defaultQuery } }),
    // The SDK logs bodies it cannot parse, which may hold completion text.
    logLevel: "off"
  })

const failWith = (error: unknown, model: string): Effect.Effect<never, ModelFailure> =>
  Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.fail(Errors.fromUnknown(error, model, now)))

// Host and port only: a base URL may carry credentials in its user info or query.
const telemetryOf = (baseURL: string, provider: string | undefined): LlmClient.ProviderOptions => {
  const url = new URL(baseURL)
  const serverPort = url.port !== "" ? Number(url.port) : url.protocol === "http:" ? 80 : 443
  const serverAddress = url.hostname
  const named = provider ?? (serverAddress.endsWith(".openai.azure.com") ? "azure.ai.openai" : "openai")
  return { provider: named, serverAddress, serverPort }
}

const requestOptions = (request: ChatRequest, signal: AbortSignal) =>
  request.idempotencyKey === undefined
    ? { signal }
    : { signal, headers: { "Idempotency-Key": request.idempotencyKey } }

// Rate-limit headers go to whoever listens (a Router, RateLimit's `providerQuota`), an error response's too; with
// nobody listening the call is exactly the plain one (one FiberRef read).
const errorHeaders = (error: unknown) => (error instanceof APIError ? error.headers : undefined)

const completeWith = (client: OpenAI, maxTokensParam: Mapping.MaxTokensParam) =>
(request: ChatRequest): Effect.Effect<ChatResponse, LlmError> => {
  const unsendable = Mapping.unsendable(request)
  if (unsendable !== undefined) return Effect.fail(unsendable)
  const create = (signal: AbortSignal) =>
    client.chat.completions.create(Mapping.toBody(request, maxTokensParam), requestOptions(request, signal))
  const failed = (error: unknown) => (error instanceof Timeout ? Effect.fail(error) : failWith(error, request.model))
  return Effect.flatMap(FiberRef.get(Quota.CurrentQuotaObserver), (observer) =>
    observer === undefined
      ? tryPromiseWithDeadline(create).pipe(Effect.catchAll(failed), Effect.flatMap((body) => Mapping.fromCompletion(body, request.model)))
      : tryPromiseWithDeadline((signal) => create(signal).withResponse()).pipe(
        Effect.tapError((error) => Quota.report(errorHeaders(error))),
        Effect.catchAll(failed),
        Effect.tap(({ response }) => observer(response.headers)),
        Effect.flatMap(({ data }) => Mapping.fromCompletion(data, request.model))
      ))
}

type SdkChunk = OpenAI.Chat.ChatCompletionChunk

// Aborting first makes a pending `next()` settle, so `return()` cannot wait on the network.
const openIterator = (stream: AsyncIterable<SdkChunk>, controller: AbortController) =>
  Effect.acquireRelease(
    Effect.sync(() => stream[Symbol.asyncIterator]()),
    (iterator) =>
      Effect.sync(() => controller.abort()).pipe(
        Effect.zipRight(Effect.ignore(Effect.tryPromise(() => iterator.return?.() ?? Promise.resolve(undefined))))
      )
  )

const linkAbort = (signal: AbortSignal, controller: AbortController): void =>
  signal.addEventListener("abort", () => controller.abort(), { once: true })

/**
 * An error while reading the stream: after the finish reason the content is complete (only usage or `[DONE]`
 * is missing), so the stream ends normally; before it, a broken connection or an error event is a truncation.
 */
const onReadError = (
  error: unknown,
  state: Mapping.StreamState,
  model: string
): Effect.Effect<"end", Option.Option<ModelFailure>> => {
  if (state.final !== undefined) return Effect.succeed("end")
  if (error instanceof SyntaxError) {
    return Effect.fail(Option.some(new MalformedResponse({ model, reason: "invalid JSON in a stream event" })))
  }
  return Effect.fail(Option.some(new StreamTruncated({ model, receivedChunks: state.received })))
}

// Pulls the next ChatChunk to emit: skips held-back chunks (the finish chunk, the usage chunk) and turns the end
// of the SDK stream into the last chunk or the error it means.
const makePull = (
  iterator: AsyncIterator<SdkChunk>,
  controller: AbortController,
  model: string
): Effect.Effect<ChatChunk, Option.Option<ModelFailure>> => {
  const state: Mapping.StreamState = { received: 0, final: undefined, usage: undefined, model }
  let ended = false
  const finish = Effect.suspend(() => {
    ended = true
    return Either.match(Mapping.onEnd(state, model), {
      onLeft: (error) => Effect.fail(Option.some(error)),
      onRight: (chunk) => Effect.succeed(chunk)
    })
  })
  const next = Effect.tryPromise({
    try: (signal) => {
      linkAbort(signal, controller)
      return iterator.next()
    },
    catch: (error) => error
  })
  const pull: Effect.Effect<ChatChunk, Option.Option<ModelFailure>> = Effect.suspend(() =>
    ended ? Effect.fail(Option.none()) : next.pipe(
      Effect.catchAll((error) => onReadError(error, state, model)),
      Effect.flatMap((result) => {
        if (result === "end" || result.done === true) return finish
        const chunk = Mapping.onChunk(state, result.value)
        return chunk === undefined ? pull : Effect.succeed(chunk)
      })
    )
  )
  return pull
}

const streamChunks = (client: OpenAI, maxTokensParam: Mapping.MaxTokensParam, request: ChatRequest) =>
  Stream.unwrapScoped(Effect.gen(function* () {
    const controller = new AbortController()
    // Registered before the request is sent: an interruption that lands after the headers arrive but before the
    // iterator below is acquired still aborts the response body instead of leaving the connection open.
    yield* Effect.addFinalizer(() => Effect.sync(() => controller.abort()))
    const body = { ...Mapping.toBody(request, maxTokensParam), stream: true as const, stream_options: { include_usage: true } }
    const observer = yield* FiberRef.get(Quota.CurrentQuotaObserver)
    const sdkStream = yield* Effect.tryPromise({
      try: (signal): Promise<{ readonly data: AsyncIterable<SdkChunk>; readonly headers: Headers | undefined }> => {
        linkAbort(signal, controller)
        const created = client.chat.completions.create(body, requestOptions(request, controller.signal))
        // The headers arrive before the first chunk: reported then, when somebody listens.
        return observer === undefined ? created.then((data) => ({ data, headers: undefined })) :
          created.withResponse().then(({ data, response }) => ({ data, headers: response.headers }))
      },
      catch: (error) => error
    }).pipe(
      Effect.tapError((error) => Quota.report(errorHeaders(error))),
      Effect.catchAll((error) => failWith(error, request.model)),
      Effect.tap(({ headers }) => (observer === undefined || headers === undefined ? Effect.void : observer(headers))),
      Effect.map(({ data }) => data)
    )
    const iterator = yield* openIterator(sdkStream, controller)
    return Stream.repeatEffectOption(makePull(iterator, controller, request.model))
  }))

const streamWith = (client: OpenAI, maxTokensParam: Mapping.MaxTokensParam) =>
(request: ChatRequest): Stream.Stream<ChatChunk, LlmError> => {
  const unsendable = Mapping.unsendable(request)
  return unsendable !== undefined ? Stream.fail(unsendable) : streamChunks(client, maxTokensParam, request)
}

/**
 * Builds an `LlmClient` service over a new `openai` SDK client. Fails with InvalidOptions listing every bad
 * option (an unknown key, such as a misspelt `baseUrl`, is one).
 *
 * Requests map to Chat Completions (`max_tokens` by default, see `maxTokensParam`); `metadata` is never sent
 * and `idempotencyKey` travels as an `Idempotency-Key` header (a key that cannot be a header value fails with
 * BadRequest before anything is sent). Streams ask for `stream_options.include_usage`
 * and end with one chunk carrying the finish reason and usage; a stream that ends before a finish reason fails
 * with StreamTruncated. A response without usage (or with zero counts beside a prompt or an answer) is charged the
 * library's own count, marked `usage.estimated` (see `LlmClient.make`, which also records every call's metrics and
 * spans: `gen_ai.provider.name` "openai", or `provider`, with the server's host and port).
 *
 * @example
 * ```ts
 * import { Effect, Redacted } from "effect"
 * import * as OpenAi from "effect-llm-resilience/OpenAi"
 * const client = OpenAi.make({ apiKey: Redacted.make("sk-..."), baseURL: "http://127.0.0.1:8787/v1" })
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const make = (options: Options): Effect.Effect<Service, InvalidOptions> =>
  Effect.map(validate(options), (valid) => {
    const client = sdkClient(options, valid)
    const maxTokensParam = valid.maxTokensParam ?? "max_tokens"
    // `complete` enforces a Timeout's deadline itself (aborting the request), saving a fiber per call.
    return LlmClient.make({
      complete: completeWith(client, maxTokensParam),
      stream: streamWith(client, maxTokensParam),
      enforces: { deadline: true }
    }, telemetryOf(client.baseURL, valid.provider))
  })

/**
 * A layer providing `LlmClient` over the `openai` SDK. See {@link make} for the mapping.
 *
 * Errors: 400/422 → BadRequest (code `context_length_exceeded` → ContextTooLong, `content_filter` /
 * `content_policy_violation` → ContentFiltered); 401/403 → AuthError; 404 → ModelNotFound; 429 → RateLimited
 * (QuotaExhausted for `insufficient_quota`); 408, 409, 5xx, 529 → ServerError; connection failures →
 * ConnectionError; an undecodable body → MalformedResponse. `retryAfter` comes from `retry-after-ms` or
 * `retry-after` (seconds or an HTTP date).
 *
 * @example
 * ```ts
 * import { Effect, Redacted } from "effect"
 * import { Llm, LlmClient } from "effect-llm-resilience"
 * import * as OpenAi from "effect-llm-resilience/OpenAi"
 * const program = LlmClient.complete(new Llm.ChatRequest({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] }))
 * const runnable = program.pipe(Effect.provide(OpenAi.layer({ apiKey: Redacted.make("sk-...") })))
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layer = (options: Options): Layer.Layer<LlmClient.LlmClient, InvalidOptions> =>
  Layer.effect(LlmClient.LlmClient, make(options))

/**
 * {@link layer} configured from the environment: `OPENAI_API_KEY` (required, read as `Config.redacted`) and
 * `OPENAI_BASE_URL` (optional). Other options may be given.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { LlmClient, Retry } from "effect-llm-resilience"
 * import * as OpenAi from "effect-llm-resilience/OpenAi"
 * const Live = LlmClient.layerWith(Retry.policy({ maxRetries: 3 })).pipe(Layer.provide(OpenAi.layerConfig()))
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layerConfig = (
  options: Omit<Options, "apiKey" | "baseURL"> = {}
): Layer.Layer<LlmClient.LlmClient, ConfigError | InvalidOptions> =>
  Layer.unwrapEffect(
    Effect.map(
      Config.all({
        apiKey: Config.redacted("OPENAI_API_KEY"),
        baseURL: Config.option(Config.string("OPENAI_BASE_URL"))
      }),
      ({ apiKey, baseURL }) => layer({ ...options, apiKey, baseURL: Option.getOrUndefined(baseURL) })
    )
  )

/**
 * An `Embeddings` service over the `openai` SDK (`embeddings.create`), with the options of {@link make} (validated
 * the same way). The vectors come back in input order; errors are classified as the chat calls' are; a body without
 * one vector per input is MalformedResponse.
 *
 * @example
 * ```ts
 * import { Effect, Redacted } from "effect"
 * import { Embeddings } from "effect-llm-resilience"
 * import * as OpenAi from "effect-llm-resilience/OpenAi"
 * const program = Effect.flatMap(OpenAi.makeEmbeddings({ apiKey: Redacted.make("sk-...") }), (e) =>
 *   e.embed(new Embeddings.EmbedRequest({ model: "text-embedding-3-small", input: ["refund policy"] })))
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const makeEmbeddings = (options: Options): Effect.Effect<EmbeddingsService, InvalidOptions> =>
  Effect.map(validate(options), (valid) => {
    const client = sdkClient(options, valid)
    // The innermost step (metrics, usage, the `embeddings {model}` span) under the same provider name as chat.
    return Embeddings.make(makeOpenAiEmbeddings(client), telemetryOf(client.baseURL, valid.provider))
  })

/**
 * {@link makeEmbeddings} as a layer providing `Embeddings`.
 *
 * @example
 * ```ts
 * import { Layer, Redacted } from "effect"
 * import { Embeddings } from "effect-llm-resilience"
 * import * as OpenAi from "effect-llm-resilience/OpenAi"
 * const Live = Embeddings.layerWith(Embeddings.batching()).pipe(
 *   Layer.provide(OpenAi.layerEmbeddings({ apiKey: Redacted.make("sk-...") }))
 * )
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layerEmbeddings = (options: Options): Layer.Layer<Embeddings.Embeddings, InvalidOptions> =>
  Layer.effect(Embeddings.Embeddings, makeEmbeddings(options))
