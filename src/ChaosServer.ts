/**
 * A fault-injecting HTTP server on loopback that speaks OpenAI's and Anthropic's APIs, for tests, examples,
 * benchmarks and demos.
 *
 * It serves three dialects, each as JSON and as SSE when `stream: true`:
 * - OpenAI Chat Completions, `POST /v1/chat/completions` (the `openai` SDK, this library's OpenAi adapter);
 * - OpenAI Responses, `POST /v1/responses` (what `@effect/ai-openai` speaks: `apiUrl` = `baseURL`);
 * - Anthropic Messages, `POST /v1/messages` (`@effect/ai-anthropic`: `apiUrl` = `url`), with Anthropic's event
 *   stream and error bodies;
 *
 * and `GET /v1/models`, OpenAI Embeddings (`POST /v1/embeddings`: the same text gets the same vector), and OpenAI's
 * Files and Batch API (`/v1/files`, `/v1/batches`: see `batch`). Answers are deterministic text (from the seed and
 * the prompt), a structured answer that fits the requested JSON schema, or a function tool call (see `toolCalls`);
 * a repeated prompt prefix reports cached tokens in 1024-token blocks; a model with a quota (`quotas`) sends
 * OpenAI's `x-ratelimit-*` headers and answers 429 once the quota is spent. Faults are drawn from a seeded PRNG,
 * the same for every dialect: the same seed and the same sequence of requests give the same faults. Control
 * endpoints: `GET /_chaos/stats`, `GET /_chaos/batches`, `POST /_chaos/config` (replace the fault settings) and
 * `POST /_chaos/reset` (zero the counters).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { ChaosServer } from "effect-llm-resilience"
 * const program = Effect.scoped(Effect.gen(function* () {
 *   const server = yield* ChaosServer.make({ seed: 1, faults: { errors: [{ status: 529, rate: 0.2 }] } })
 *   return { openai: server.baseURL, anthropic: server.url }
 * }))
 * ```
 * @since 0.1.0
 */
import type { HttpServerError } from "@effect/platform"
import { Context, Effect, Either, Layer } from "effect"
import type { Duration, Scope } from "effect"
import * as Http from "node:http"
import type { InvalidOptions } from "./InvalidOptions.js"
import * as App from "./internal/chaosApp.js"
import * as BatchState from "./internal/chaosBatchState.js"
import * as FaultSchemas from "./internal/chaosFaults.js"
import * as NodeHttpServer from "./internal/nodeHttpServer.js"

/**
 * When an error response asks the client to retry: `{ seconds }` sends `retry-after: <seconds>`, `{ ms }`
 * sends `retry-after-ms: <ms>`, `{ date }` sends `retry-after` as an HTTP date `date` seconds after now.
 *
 * @example
 * ```ts
 * import { ChaosServer } from "effect-llm-resilience"
 * const later: ChaosServer.RetryAfter = { seconds: 2 }
 * ```
 * @since 0.1.0
 * @category Models
 */
export type RetryAfter = { readonly seconds: number } | { readonly ms: number } | { readonly date: number }

/**
 * One injected error: answer `status` with probability `rate`. `code` sets the OpenAI error code (and the
 * matching type and message): `insufficient_quota` (with 429), `context_length_exceeded`, `content_filter` or
 * `content_policy_violation` (with 400). Without a code each status gets OpenAI's usual one (429 →
 * `rate_limit_exceeded`, 401 → `invalid_api_key`, 404 → `model_not_found`, …).
 *
 * @example
 * ```ts
 * import { ChaosServer } from "effect-llm-resilience"
 * const overloaded: ChaosServer.ErrorFault = { status: 503, rate: 0.2, retryAfter: { seconds: 1 } }
 * const quota: ChaosServer.ErrorFault = { status: 429, rate: 0.05, code: "insufficient_quota" }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface ErrorFault {
  /** An HTTP status from 400 to 599. */
  readonly status: number
  /** The probability of this error, from 0 to 1. */
  readonly rate: number
  /** Defaults to no Retry-After header. */
  readonly retryAfter?: RetryAfter | undefined
  /** Defaults to the status's usual code. */
  readonly code?: string | undefined
}

/**
 * A set of faults. Each rate is the exact probability of its outcome (one draw per request picks at most one),
 * so all rates together must add up to at most 1. Durations accept any `Duration.DurationInput`
 * (a number is milliseconds).
 *
 * @example
 * ```ts
 * import { ChaosServer } from "effect-llm-resilience"
 * const flaky: ChaosServer.Faults = {
 *   errors: [{ status: 503, rate: 0.2 }, { status: 429, rate: 0.1, retryAfter: { ms: 250 } }],
 *   latency: "20 millis",
 *   jitter: "30 millis",
 *   hangRate: 0.01,
 *   cutRate: 0.05
 * }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Faults {
  /** Injected error statuses. Defaults to none. */
  readonly errors?: ReadonlyArray<ErrorFault> | undefined
  /** Fixed delay before every answer (before the headers). Defaults to 0. */
  readonly latency?: Duration.DurationInput | undefined
  /** Extra random delay, uniform in [0, jitter), added to `latency`. Defaults to 0. */
  readonly jitter?: Duration.DurationInput | undefined
  /**
   * Streams: delay between the opening role delta (sent with the headers, as OpenAI does) and the first text
   * (time to first token). Defaults to 0.
   */
  readonly firstTokenDelay?: Duration.DurationInput | undefined
  /** Streams: delay between two chunks. Defaults to 0. */
  readonly chunkDelay?: Duration.DurationInput | undefined
  /** Probability of never answering (the request hangs until the client gives up). Defaults to 0. */
  readonly hangRate?: number | undefined
  /**
   * Probability of cutting the response: a stream stops after some chunks, before its finish reason and
   * `[DONE]`; a JSON answer stops halfway. The connection is closed either way. Defaults to 0.
   */
  readonly cutRate?: number | undefined
  /** How many content chunks a cut stream sends first. Defaults to a random count below the full length. */
  readonly cutAfterChunks?: number | undefined
  /** Probability of a 200 whose body is not valid JSON (a broken SSE event for streams). Defaults to 0. */
  readonly malformedRate?: number | undefined
  /** Probability of a 200 with an empty answer and finish reason `content_filter`. Defaults to 0. */
  readonly contentFilterRate?: number | undefined
  /** A full outage: every request fails with `status` (503 when left out). Defaults to no outage. */
  readonly outage?: {
    readonly status?: number | undefined
    readonly retryAfter?: RetryAfter | undefined
    readonly code?: string | undefined
  } | undefined
}

/**
 * The fault settings: `faults` applies to every model, `perModel[model]` overrides it field by field (the merged
 * rates of a model must add up to at most 1 too). `POST /_chaos/config` and `setConfig` replace these settings as a
 * whole.
 *
 * @example
 * ```ts
 * import { ChaosServer } from "effect-llm-resilience"
 * const config: ChaosServer.FaultConfig = {
 *   faults: { errors: [{ status: 503, rate: 0.1 }] },
 *   perModel: { "gpt-4o": { outage: { status: 503 } } }
 * }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface FaultConfig {
  /** Faults of every model. Defaults to none (every request succeeds). */
  readonly faults?: Faults | undefined
  /** Per-model overrides of `faults`, field by field. Defaults to none. */
  readonly perModel?: Readonly<Record<string, Faults>> | undefined
}

/**
 * Options of a ChaosServer.
 *
 * @example
 * ```ts
 * import { ChaosServer } from "effect-llm-resilience"
 * const options: ChaosServer.Options = { seed: 42, faults: { errors: [{ status: 503, rate: 0.2 }] } }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Options extends FaultConfig {
  /** The port on 127.0.0.1. Defaults to 0 (a random free port). */
  readonly port?: number | undefined
  /** The PRNG seed of faults and generated text. Defaults to 0. */
  readonly seed?: number | undefined
  /** The models `GET /v1/models` lists (any model name is answered). Defaults to gpt-4o-mini, gpt-4o, gpt-4.1-mini. */
  readonly models?: ReadonlyArray<string> | undefined
  /** Words per generated answer. Defaults to 12. */
  readonly words?: number | undefined
  /**
   * Whether OpenAI answers report token usage. `false` leaves `usage` out of every chat completion, stream
   * (`stream_options.include_usage` is ignored: no usage chunk) and Responses object, as some OpenAI-compatible
   * servers do, to test budgets and metrics against a server that reports none. Anthropic answers always carry
   * usage (its clients require it). Defaults to true.
   */
  readonly usage?: boolean | undefined
  /**
   * When a request that offers function tools gets a tool call instead of text, in every dialect:
   * - `"named"`: when the request forces a tool (a named tool choice, `"required"`, Anthropic's `"any"`) or its last
   *   user message names an offered tool (e.g. "use get_weather");
   * - `"offered"`: whenever tools are offered and the tool choice is not `"none"`, unless the conversation ends with
   *   a tool result (then the answer is text, which completes a tool round trip);
   * - `"forced"`: only when the request forces a tool.
   *
   * The call's arguments are a value of the tool's parameters schema (strings from the generated text), or
   * `{ "query": … }` for a tool that declares no parameters. Defaults to `"named"`.
   */
  readonly toolCalls?: "named" | "offered" | "forced" | undefined
  /**
   * The Batch API (`/v1/files`, `/v1/batches`): `completionTime` is how long a batch runs on the server's clock
   * (defaults to 1 second); the lines whose `custom_id` is in `failCustomIds` fail with `failStatus` (defaults to
   * 500) in the error file; with `expireAfterItems`, the batch ends `expired` with only that many lines run.
   */
  readonly batch?: BatchOptions | undefined
  /**
   * Per-model quotas, as a provider keeps them: `rpm` requests and `tpm` tokens a `window` (a minute unless given;
   * at least one of `rpm` and `tpm`). A window starts with the first request after the last one ended. Each request
   * is charged when it arrives (its prompt tokens plus `max_tokens`, or the answer it gets without one, as OpenAI
   * counts `max_tokens` up front), every response of the model carries `x-ratelimit-limit-*`,
   * `x-ratelimit-remaining-*` and `x-ratelimit-reset-*` (`requests`, `tokens`; resets written like "6m0s"), and a
   * request that does not fit is answered 429 at once, with `retry-after` / `retry-after-ms` until the window ends,
   * and charged nothing (counted as `error:429`). Windows run on the Effect clock. Defaults to none.
   */
  readonly quotas?: Readonly<Record<string, Quota>> | undefined
}

/**
 * One model's quota (see {@link Options}).
 *
 * @example
 * ```ts
 * import { ChaosServer } from "effect-llm-resilience"
 * const small: ChaosServer.Quota = { rpm: 5, tpm: 2_000, window: "1 minute" }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Quota {
  /** Requests a window (a positive integer). */
  readonly rpm?: number | undefined
  /** Tokens a window (a positive integer). */
  readonly tpm?: number | undefined
  /** Defaults to "1 minute". */
  readonly window?: Duration.DurationInput | undefined
}

/**
 * The ChaosServer's Batch API settings (see {@link Options}).
 *
 * @example
 * ```ts
 * import { ChaosServer } from "effect-llm-resilience"
 * const batch: ChaosServer.BatchOptions = { completionTime: "200 millis", failCustomIds: ["item-7"] }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface BatchOptions {
  readonly completionTime?: Duration.DurationInput | undefined
  readonly failCustomIds?: ReadonlyArray<string> | undefined
  readonly failStatus?: number | undefined
  readonly expireAfterItems?: number | undefined
}

/**
 * The Batch API counters of `GET /_chaos/batches` (and `server.batchStats`): files uploaded, file contents read,
 * batches created, retrieved and cancelled.
 *
 * @example
 * ```ts
 * import { ChaosServer } from "effect-llm-resilience"
 * const submittedOnce = (stats: ChaosServer.BatchStats) => stats.batchesCreated === 1
 * ```
 * @since 0.1.0
 * @category Models
 */
export type BatchStats = BatchState.BatchStats

/**
 * The counters of `GET /_chaos/stats`: requests with a valid body in total, by model, by dialect (`chat`,
 * `responses`, `messages`) and by outcome (`ok`, `error:<status>`, `hang`, `cut`, `malformed`, `filtered`),
 * connections the client closed before the answer ended (`aborted`) and answers in progress (`inFlight`).
 *
 * @example
 * ```ts
 * import { ChaosServer } from "effect-llm-resilience"
 * const failed = (stats: ChaosServer.Stats) => stats.requests - (stats.byOutcome.ok ?? 0)
 * ```
 * @since 0.1.0
 * @category Models
 */
export type Stats = App.Stats

/**
 * A running ChaosServer.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { ChaosServer } from "effect-llm-resilience"
 * const program = Effect.gen(function* () {
 *   const server = yield* ChaosServer.ChaosServer
 *   console.log(server.baseURL) // http://127.0.0.1:PORT/v1
 * })
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Service {
  /** `http://127.0.0.1:PORT`: the `apiUrl` for Anthropic clients (they add `/v1/messages`). */
  readonly url: string
  /** `http://127.0.0.1:PORT/v1`: the `baseURL` (`apiUrl`) for OpenAI clients. */
  readonly baseURL: string
  readonly port: number
  /** The current counters. */
  readonly stats: Effect.Effect<Stats>
  /** Replaces the fault settings (validated; fails with every failing path). */
  readonly setConfig: (config: FaultConfig) => Effect.Effect<void, InvalidOptions>
  /** Zeroes the counters (the fault sequence goes on). */
  readonly resetStats: Effect.Effect<void>
  /** The Batch API counters. */
  readonly batchStats: Effect.Effect<BatchStats>
}

/**
 * The ChaosServer service tag.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { ChaosServer } from "effect-llm-resilience"
 * const stats = Effect.flatMap(ChaosServer.ChaosServer, (server) => server.stats)
 * ```
 * @since 0.1.0
 * @category Tags
 */
export class ChaosServer extends Context.Tag("effect-llm-resilience/ChaosServer")<ChaosServer, Service>() {}

/**
 * The models listed when `models` is left out.
 *
 * @example
 * ```ts
 * import { ChaosServer } from "effect-llm-resilience"
 * ChaosServer.defaultModels // ["gpt-4o-mini", "gpt-4o", "gpt-4.1-mini"]
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const defaultModels: ReadonlyArray<string> = ["gpt-4o-mini", "gpt-4o", "gpt-4.1-mini"]

const batchSettings = (batch: FaultSchemas.Options["batch"]): BatchState.BatchSettings => ({
  completionTime: batch?.completionTime ?? BatchState.defaultBatchSettings.completionTime,
  failCustomIds: new Set(batch?.failCustomIds ?? []),
  failStatus: batch?.failStatus ?? BatchState.defaultBatchSettings.failStatus,
  expireAfterItems: batch?.expireAfterItems
})

/**
 * Starts a ChaosServer on 127.0.0.1 for the life of the scope. Fails with InvalidOptions listing every bad
 * option. Delays use the Effect clock.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { ChaosServer } from "effect-llm-resilience"
 * const program = Effect.scoped(Effect.gen(function* () {
 *   const server = yield* ChaosServer.make({ seed: 1, faults: { errors: [{ status: 503, rate: 0.5 }] } })
 *   return server.baseURL
 * }))
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const make = (
  options: Options = {}
): Effect.Effect<Service, InvalidOptions | HttpServerError.ServeError, Scope.Scope> =>
  Effect.gen(function* () {
    const valid = yield* FaultSchemas.decodeStrict(FaultSchemas.Options, options)
    const state = new App.ChaosState(valid.seed ?? 0, valid.models ?? defaultModels, valid.words ?? 12, {
      faults: valid.faults,
      perModel: valid.perModel
    }, { usage: valid.usage, toolCalls: valid.toolCalls, batch: batchSettings(valid.batch), quotas: valid.quotas })
    const nodeServer = Http.createServer()
    const server = yield* NodeHttpServer.make(() => nodeServer, { port: valid.port ?? 0, host: "127.0.0.1" })
    yield* server.serve(App.router(state))
    const port = server.address._tag === "TcpAddress" ? server.address.port : 0
    const url = `http://127.0.0.1:${port}`
    return {
      url,
      baseURL: `${url}/v1`,
      port,
      stats: Effect.sync(() => state.stats()),
      setConfig: (config: FaultConfig) => Either.match(App.setConfig(state, config), {
        onLeft: Effect.fail,
        onRight: () => Effect.void
      }),
      resetStats: Effect.sync(() => state.resetStats()),
      batchStats: Effect.sync(() => state.batch.stats())
    }
  })

/**
 * A layer that runs a ChaosServer (on a random free port by default) and provides its {@link ChaosServer}
 * service.
 *
 * @example
 * ```ts
 * import { Effect, Layer, Redacted } from "effect"
 * import { ChaosServer } from "effect-llm-resilience"
 * import * as OpenAi from "effect-llm-resilience/OpenAi"
 * const Chaos = ChaosServer.layer({ seed: 7, faults: { errors: [{ status: 503, rate: 0.2 }] } })
 * const Client = Layer.unwrapEffect(Effect.map(ChaosServer.ChaosServer, (server) =>
 *   OpenAi.layer({ apiKey: Redacted.make("sk-chaos"), baseURL: server.baseURL })))
 * const Live = Client.pipe(Layer.provideMerge(Chaos))
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layer = (options: Options = {}): Layer.Layer<ChaosServer, InvalidOptions | HttpServerError.ServeError> =>
  Layer.scoped(ChaosServer, make(options))

/**
 * Runs a ChaosServer until interrupted, calling `onStart` once it listens (e.g. to print its address).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { ChaosServer } from "effect-llm-resilience"
 * const forever = ChaosServer.run({ port: 8787, seed: 42 }, (server) => Effect.log(`listening on ${server.baseURL}`))
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const run = <E, R>(
  options: Options,
  onStart: (server: Service) => Effect.Effect<void, E, R> = () => Effect.void as Effect.Effect<void, E, R>
): Effect.Effect<never, InvalidOptions | HttpServerError.ServeError | E, R> =>
  Effect.scoped(Effect.flatMap(make(options), (server) => Effect.zipRight(onStart(server), Effect.never)))

