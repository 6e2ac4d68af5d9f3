/**
 * The `LlmClient` service (complete + stream) and `Policy`, the middleware every pattern is written as.
 *
 * A production setup is a stack of policies over a provider layer:
 *
 * ```ts
 * const Live = LlmClient.layerWith(
 *   Retry.policy({ maxRetries: 3 }),
 *   Timeout.policy({ attempt: "30 seconds" })
 * ).pipe(Layer.provide(OpenAi.layerConfig()))
 * ```
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Stream } from "effect"
import * as InstrumentCall from "./internal/instrumentCall.js"
import { infoOf, instrument, marked } from "./internal/instrumentProvider.js"
import type { ProviderInfo } from "./internal/telemetry.js"
import type { ChatChunk, ChatRequest, ChatResponse } from "./Llm.js"
import { type LlmError, Timeout } from "./LlmError.js"
import { tryPromiseWithDeadline } from "./internal/deadline.js"

/**
 * A completion function: what every policy decorates.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { LlmClient, LlmError } from "effect-llm-resilience"
 * const failing: LlmClient.Complete = (request) => Effect.fail(new LlmError.ModelNotFound({ model: request.model }))
 * ```
 * @since 0.1.0
 * @category Models
 */
export type Complete = (request: ChatRequest) => Effect.Effect<ChatResponse, LlmError>

/**
 * A streaming function: emits chunks of one response.
 *
 * @example
 * ```ts
 * import { Stream } from "effect"
 * import { LlmClient } from "effect-llm-resilience"
 * const empty: LlmClient.StreamFn = () => Stream.empty
 * ```
 * @since 0.1.0
 * @category Models
 */
export type StreamFn = (request: ChatRequest) => Stream.Stream<ChatChunk, LlmError>

/**
 * The service: one completion call and one streaming call. Both are interruptible; interrupting them aborts
 * the underlying HTTP request.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { LlmClient, Llm } from "effect-llm-resilience"
 * const service: LlmClient.Service = {
 *   complete: (request) => Effect.succeed(new Llm.ChatResponse({ id: "1", model: request.model, content: "ok",
 *     finishReason: "stop", usage: { inputTokens: 1, outputTokens: 1 }, servedFrom: "provider" })),
 *   stream: (request) => Stream.make(new Llm.ChatChunk({ content: "ok", model: request.model, finishReason: "stop" }))
 * }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Service {
  readonly complete: Complete
  readonly stream: StreamFn
  /**
   * What the provider enforces itself, as data the policies above it read. `deadline: true` says its `complete`
   * aborts its own request when the current Timeout deadline passes (as the OpenAI adapter and
   * {@link tryPromise} do), so no Timeout above it needs a fiber of its own. Defaults to nothing: the provider step
   * every client gets then bounds the call itself.
   */
  readonly enforces?: Enforces | undefined
}

/**
 * What a provider enforces itself (see {@link Service}).
 *
 * @example
 * ```ts
 * import { LlmClient } from "effect-llm-resilience"
 * const enforces: LlmClient.Enforces = { deadline: true }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Enforces {
  /** The provider's `complete` fails with the current deadline's Timeout, its request aborted, when it passes. */
  readonly deadline?: boolean | undefined
}

/**
 * What a policy learns of the steps below it when it is composed (`decorate` passes it as `complete`'s second
 * argument).
 *
 * @example
 * ```ts
 * import { LlmClient } from "effect-llm-resilience"
 * const below: LlmClient.Below = { enforcesDeadline: true }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Below {
  /**
   * Every step below keeps the current deadline (each policy between says `keepsDeadline`, and the provider step
   * enforces it), so a Timeout may hand its deadline down instead of racing the call in a fiber.
   */
  readonly enforcesDeadline: boolean
}

/**
 * The LLM client service tag.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Llm, LlmClient } from "effect-llm-resilience"
 * const request = new Llm.ChatRequest({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] })
 * const program = Effect.gen(function* () {
 *   const client = yield* LlmClient.LlmClient
 *   return yield* client.complete(request)
 * })
 * ```
 * @since 0.1.0
 * @category Tags
 */
export class LlmClient extends Context.Tag("effect-llm-resilience/LlmClient")<LlmClient, Service>() {}

/**
 * Who a client talks to, for its telemetry: `gen_ai.provider.name` and `server.address` / `server.port` on its
 * spans and on the GenAI metrics.
 *
 * @example
 * ```ts
 * import { LlmClient } from "effect-llm-resilience"
 * const options: LlmClient.ProviderOptions = { provider: "openai", serverAddress: "api.openai.com", serverPort: 443 }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface ProviderOptions {
  /**
   * The provider's name as the OpenTelemetry GenAI conventions spell it (`openai`, `anthropic`, `aws.bedrock`,
   * `azure.ai.openai`, …) or a name of your own. Defaults to "custom".
   */
  readonly provider?: string | undefined
  /** The server's host name or address (never a URL with credentials). Defaults to none. */
  readonly serverAddress?: string | undefined
  /** The server's port. Defaults to none. */
  readonly serverPort?: number | undefined
}

const defaultInfo: ProviderInfo = { provider: "custom", serverAddress: undefined, serverPort: undefined }

const infoFrom = (options: ProviderOptions | undefined): ProviderInfo =>
  options === undefined
    ? defaultInfo
    : { provider: options.provider ?? "custom", serverAddress: options.serverAddress, serverPort: options.serverPort }

/**
 * Builds a client from a provider's `complete` and `stream`, with the one innermost step every client gets: per
 * provider call it records the metrics (`llm_requests_total`, `gen_ai.client.operation.duration`, tokens, cost,
 * time to first token…), fills in `usage` the provider did not report (or reported only in part) with the library's
 * own count, marked `estimated`, and opens the call's span (an attempt span under a policy stack's call span).
 *
 * Applied once: a client built by `make` (or decorated from one) is returned as is. `layer`, `layerWith`,
 * `decorate` and the accessors apply it to a client that lacks it, so no provider can go unrecorded.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { Llm, LlmClient } from "effect-llm-resilience"
 * const client = LlmClient.make({
 *   complete: (request) => Effect.succeed(new Llm.ChatResponse({ id: "1", model: request.model, content: "ok",
 *     finishReason: "stop", usage: { inputTokens: 3, outputTokens: 1 }, servedFrom: "provider" })),
 *   stream: () => Stream.empty
 * }, { provider: "my-gateway", serverAddress: "llm.internal", serverPort: 8080 })
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const make = (service: Service, options?: ProviderOptions): Service => instrument(service, infoFrom(options))

const adopted = new WeakMap<Service, Service>()

// A client put in context without `make` (e.g. `Layer.succeed(LlmClient, service)`) is instrumented once.
const instrumented = (client: Service): Service => {
  if (infoOf(client) !== undefined) return client
  let found = adopted.get(client)
  if (found === undefined) {
    found = instrument(client, defaultInfo)
    adopted.set(client, found)
  }
  return found
}

/**
 * Sends one completion request through the `LlmClient` in context.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { FakeLlm, Llm, LlmClient } from "effect-llm-resilience"
 * const program = LlmClient.complete(new Llm.ChatRequest({ model: "m", messages: [{ role: "user", content: "hi" }] }))
 * Effect.runPromise(program.pipe(Effect.provide(FakeLlm.layer(FakeLlm.reply("hello")))))
 * ```
 * @since 0.1.0
 * @category Accessors
 */
export const complete = (request: ChatRequest): Effect.Effect<ChatResponse, LlmError, LlmClient> =>
  Effect.flatMap(LlmClient, (client) => instrumented(client).complete(request))

/**
 * Streams one response through the `LlmClient` in context.
 *
 * @example
 * ```ts
 * import { Stream } from "effect"
 * import { Llm, LlmClient } from "effect-llm-resilience"
 * const text = LlmClient.stream(new Llm.ChatRequest({ model: "m", messages: [{ role: "user", content: "hi" }] })).pipe(
 *   Stream.map((chunk) => chunk.content)
 * )
 * ```
 * @since 0.1.0
 * @category Accessors
 */
export const stream = (request: ChatRequest): Stream.Stream<ChatChunk, LlmError, LlmClient> =>
  Stream.unwrap(Effect.map(LlmClient, (client) => instrumented(client).stream(request)))

/**
 * A middleware over an LLM client: it turns the next `complete` (and `stream`) into decorated ones.
 * `stream` is optional: a policy without it passes streams through untouched.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { LlmClient } from "effect-llm-resilience"
 * const logModel: LlmClient.Policy = LlmClient.policy({
 *   name: "log-model",
 *   complete: (next) => (request) => Effect.zipRight(Effect.logDebug(`model=${request.model}`), next(request))
 * })
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Policy {
  readonly name: string
  /** Decorates the next completion function; `below` says what the steps below enforce (see {@link Below}). */
  readonly complete: (next: Complete, below?: Below) => Complete
  readonly stream?: ((next: StreamFn) => StreamFn) | undefined
  /**
   * The policy keeps the current Timeout deadline: it waits on nothing of its own past it (its own waits, like
   * Retry's backoff, end at the deadline with its Timeout) and calls the next step in the same fiber. A Timeout above
   * a chain of such policies hands its deadline down for free. Defaults to false: a Timeout above it then bounds the
   * whole call with a timer and a fiber, which is always correct.
   */
  readonly keepsDeadline?: boolean | undefined
}

/**
 * A policy, or an Effect that builds one (a stateful policy that needs its store or another service).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { LlmClient } from "effect-llm-resilience"
 * const built: LlmClient.PolicyInput<never, never> = Effect.succeed(LlmClient.policy({ name: "id", complete: (next) => next }))
 * ```
 * @since 0.1.0
 * @category Models
 */
export type PolicyInput<E = never, R = never> = Policy | Effect.Effect<Policy, E, R>

/**
 * Builds a {@link Policy}.
 *
 * @example
 * ```ts
 * import { LlmClient } from "effect-llm-resilience"
 * const identity = LlmClient.policy({ name: "identity", complete: (next) => next, stream: (next) => next })
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const policy = (options: {
  readonly name: string
  readonly complete: (next: Complete, below?: Below) => Complete
  readonly stream?: ((next: StreamFn) => StreamFn) | undefined
  readonly keepsDeadline?: boolean | undefined
}): Policy => ({
  name: options.name,
  complete: options.complete,
  stream: options.stream,
  keepsDeadline: options.keepsDeadline ?? false
})

/**
 * Decorates a client with policies, outermost first: `decorate(client, a, b)` runs `a`, which calls `b`,
 * which calls `client`. Above the policies sits one span per logical call (`chat {model}`, see
 * docs/observability.md), opened once even when decorated clients are decorated again.
 *
 * @example
 * ```ts
 * import { LlmClient, Retry, Timeout } from "effect-llm-resilience"
 * declare const base: LlmClient.Service
 * const client = LlmClient.decorate(base, Retry.policy({ maxRetries: 2 }), Timeout.policy({ attempt: "10 seconds" }))
 * ```
 * @since 0.1.0
 * @category Combinators
 */
export const decorate = (client: Service, ...policies: ReadonlyArray<Policy>): Service => {
  const base = instrumented(client)
  if (policies.length === 0) return base
  const info = infoOf(base) as ProviderInfo
  let completeFn = base.complete
  let streamFn = base.stream
  // An instrumented client enforces the current deadline (its provider step does); a decorated one does when every
  // policy in it keeps the deadline.
  let enforcesDeadline = base.enforces?.deadline === true
  for (let i = policies.length - 1; i >= 0; i--) {
    const p = policies[i]
    completeFn = p.complete(completeFn, enforcesDeadline ? keptBelow : notKeptBelow)
    if (p.stream !== undefined) streamFn = p.stream(streamFn)
    enforcesDeadline = enforcesDeadline && p.keepsDeadline === true
  }
  return marked({
    complete: InstrumentCall.complete(info, completeFn),
    stream: InstrumentCall.stream(info, streamFn),
    enforces: enforcesDeadline ? enforcesDeadlineData : undefined
  }, info)
}

const keptBelow: Below = { enforcesDeadline: true }
const notKeptBelow: Below = { enforcesDeadline: false }
const enforcesDeadlineData: Enforces = { deadline: true }

/**
 * A provider call from a promise that honours the current Timeout deadline and the caller's interruption through
 * one `AbortSignal`: when the deadline passes the signal aborts and the call fails with the deadline's
 * `Timeout` at once, without a fiber of its own. A client whose `complete` is built on it can declare
 * `enforces: { deadline: true }`. Every rejection goes through `catch`.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { Llm, LlmClient, LlmError } from "effect-llm-resilience"
 * declare const callMyGateway: (body: string, signal: AbortSignal) => Promise<string>
 * const client = LlmClient.make({
 *   complete: (request) =>
 *     LlmClient.tryPromise({
 *       try: (signal) => callMyGateway(request.messages.map((m) => m.content).join("\n"), signal),
 *       catch: () => new LlmError.ConnectionError({ model: request.model })
 *     }).pipe(Effect.map((content) => new Llm.ChatResponse({ id: "1", model: request.model, content,
 *       finishReason: "stop", usage: { inputTokens: 0, outputTokens: 0 }, servedFrom: "provider" }))),
 *   stream: () => Stream.empty,
 *   enforces: { deadline: true }
 * }, { provider: "my-gateway" })
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const tryPromise = <A, E>(options: {
  readonly try: (signal: AbortSignal) => PromiseLike<A>
  readonly catch: (error: unknown) => E
}): Effect.Effect<A, E | Timeout> =>
  Effect.catchAll(tryPromiseWithDeadline(options.try), (error) =>
    Effect.fail(error instanceof Timeout ? error : options.catch(error)))

type InputError<P> = P extends Effect.Effect<Policy, infer E, infer _R> ? E : never
type InputContext<P> = P extends Effect.Effect<Policy, infer _E, infer R> ? R : never

/**
 * A layer that decorates the `LlmClient` below it with `policies`, outermost first. Policies given as Effects
 * are built once when the layer is built (their stores and services come from the layer's context).
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { CircuitBreaker, FakeLlm, LlmClient, Retry, Timeout } from "effect-llm-resilience"
 * const Live = LlmClient.layerWith(
 *   Retry.policy({ maxRetries: 3 }),
 *   CircuitBreaker.policy({ per: "model" }),
 *   Timeout.policy({ attempt: "30 seconds" })
 * ).pipe(Layer.provide(FakeLlm.layer(FakeLlm.reply("ok"))), Layer.provide(CircuitBreaker.layerStoreMemory))
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layerWith = <const Policies extends ReadonlyArray<PolicyInput<unknown, unknown>>>(
  ...policies: Policies
): Layer.Layer<LlmClient, InputError<Policies[number]>, LlmClient | InputContext<Policies[number]>> =>
  Layer.effect(
    LlmClient,
    Effect.gen(function* () {
      const base = yield* LlmClient
      const built: Array<Policy> = []
      for (const input of policies) {
        built.push(Effect.isEffect(input) ? yield* (input as Effect.Effect<Policy>) : (input as Policy))
      }
      return decorate(base, ...built)
    })
  ) as Layer.Layer<LlmClient, InputError<Policies[number]>, LlmClient | InputContext<Policies[number]>>

/**
 * A layer holding a given client, built with {@link make} (so its calls are recorded and traced).
 *
 * @example
 * ```ts
 * import { LlmClient } from "effect-llm-resilience"
 * declare const service: LlmClient.Service
 * const layer = LlmClient.layer(service, { provider: "my-gateway" })
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layer = (service: Service, options?: ProviderOptions): Layer.Layer<LlmClient> =>
  Layer.succeed(LlmClient, make(service, options))

/**
 * Runs `effect` with the current `LlmClient` decorated by `policies` (outermost first): handy to add a policy
 * to one part of a program.
 *
 * @example
 * ```ts
 * import { LlmClient, Retry } from "effect-llm-resilience"
 * declare const program: import("effect").Effect.Effect<string, never, LlmClient.LlmClient>
 * const withRetries = LlmClient.withPolicies(program, Retry.policy({ maxRetries: 5 }))
 * ```
 * @since 0.1.0
 * @category Combinators
 */
export const withPolicies = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  ...policies: ReadonlyArray<Policy>
): Effect.Effect<A, E, R | LlmClient> =>
  Effect.flatMap(LlmClient, (client) => Effect.provideService(effect, LlmClient, decorate(client, ...policies)))
