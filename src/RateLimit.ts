/**
 * Client-side rate limits: requests per minute and tokens per minute, per model, per user, globally or per any
 * key, so a fleet stays under the provider's limits instead of collecting 429s. Each request is charged its
 * estimated tokens up front (prompt tokens + `maxTokens`), as the provider does; after the call the charge becomes
 * its real usage (`tpmCharge`). With `providerQuota` it also reads the provider's own rate-limit headers and waits
 * before sending what the provider would refuse.
 *
 * Built on `@effect/experimental`'s `RateLimiter` (token buckets refilled continuously over one minute): the
 * state sits in its `RateLimiterStore`, in memory ({@link layerStoreMemory}) or in Redis
 * (`Redis.layerRateLimiterStore`, subpath `effect-llm-resilience/Redis`), so many processes can share one limit.
 *
 * @since 0.1.0
 */
import * as RateLimiter from "@effect/experimental/RateLimiter"
import { Clock, Duration, Effect, Either, Layer, Option, Schema, Stream } from "effect"
import { dual } from "effect/Function"
import { approximateMessageTokens } from "./internal/approximateTokens.js"
import { makeMemoryStore } from "./internal/rateLimitStore.js"
import { makeGate } from "./internal/rateLimitQuota.js"
import * as Quota from "./internal/quota.js"
import { strict } from "./internal/optionSchemas.js"
import { DurationInput } from "./internal/durationInput.js"
import { decode, InvalidOptions } from "./InvalidOptions.js"
import type { ChatChunk, ChatRequest, ChatResponse, Usage } from "./Llm.js"
import * as LlmClient from "./LlmClient.js"
import { BadRequest, RateLimited } from "./LlmError.js"
import * as LlmMetrics from "./LlmMetrics.js"
import * as Telemetry from "./internal/telemetry.js"
import { Tokenizer } from "./Tokenizer.js"

/**
 * What a limit is counted per: the request's model, its `user` (requests without one share the key
 * "anonymous"), one global limit, or any key computed from the request.
 *
 * @example
 * ```ts
 * import { RateLimit } from "effect-llm-resilience"
 * const per: RateLimit.Per = (request) => request.metadata?.tenant ?? "default"
 * ```
 * @since 0.1.0
 * @category Models
 */
export type Per = "model" | "user" | "global" | ((request: ChatRequest) => string)

/**
 * Options of {@link policy}.
 *
 * @example
 * ```ts
 * import { RateLimit } from "effect-llm-resilience"
 * const options: RateLimit.Options = { rpm: 500, tpm: 200_000, per: "model", onLimit: "wait" }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Options {
  /** Requests per minute (a positive integer). At least one of `rpm` and `tpm` is required. */
  readonly rpm?: number | undefined
  /** Tokens per minute (a positive integer), each request costing its prompt tokens plus `maxTokens`. */
  readonly tpm?: number | undefined
  /** Defaults to "model". */
  readonly per?: Per | undefined
  /**
   * "wait" sleeps (on the Effect clock) until the request fits; "fail" fails at once with
   * `RateLimited { source: "client", retryAfter }`. Defaults to "wait".
   */
  readonly onLimit?: "wait" | "fail" | undefined
  /** In "wait" mode, the longest wait: a request that would wait longer fails as in "fail" mode. Defaults to no cap. */
  readonly maxWait?: Duration.DurationInput | undefined
  /**
   * Namespaces this policy's keys in the store: two policies with different limits over one shared store need
   * different names. Defaults to "llm".
   */
  readonly name?: string | undefined
  /**
   * What a call's `tpm` charge ends as, once its usage is known:
   * - `"usage"`: its real usage. The estimate (prompt + `maxTokens`) is taken up front; after the call the unused
   *   part goes back to the bucket and tokens beyond it are charged, so the limit counts tokens really used.
   * - `"estimate"`: the estimate stays charged (tokens beyond it are still charged). This is how OpenAI counts:
   *   `max_tokens` toward TPM when the request arrives, whatever the answer's length. Pick it when `tpm` mirrors
   *   such a provider's limit and `providerQuota` is off.
   *
   * A call that fails keeps its estimate charged (the provider may have counted it). Defaults to "usage".
   */
  readonly tpmCharge?: "usage" | "estimate" | undefined
  /**
   * Proactive throttling from the provider's rate-limit headers (`x-ratelimit-remaining-requests` / `-tokens` and
   * their resets, which the OpenAI adapter reports, or any client through {@link reportQuotaHeaders}): a call waits
   * before it is sent while the last headers of its model say the quota is spent, or too short for its estimate,
   * until their reset — instead of being sent and meeting a 429. In "fail" mode (or past `maxWait`) it fails with
   * `RateLimited { source: "client", retryAfter }`. The view is this process's, per model, learned from its own
   * responses: each call sent takes its share at once, and a response's headers only lower it until the reset.
   * With `providerQuota`, `rpm` and `tpm` may both be left out. Defaults to false.
   */
  readonly providerQuota?: boolean | undefined
}

const PerSchema = Schema.Union(
  Schema.Literal("model", "user", "global"),
  Schema.declare((u: unknown): u is (request: ChatRequest) => string => typeof u === "function", {
    identifier: "KeyFunction",
    message: () => "Expected \"model\", \"user\", \"global\" or a function (request) => string"
  })
)

const OptionsSchema = Schema.Struct({
  rpm: Schema.optional(Schema.Int.pipe(Schema.positive())),
  tpm: Schema.optional(Schema.Int.pipe(Schema.positive())),
  per: Schema.optional(PerSchema),
  onLimit: Schema.optional(Schema.Literal("wait", "fail")),
  maxWait: Schema.optional(DurationInput),
  name: Schema.optional(Schema.NonEmptyString),
  tpmCharge: Schema.optional(Schema.Literal("usage", "estimate")),
  providerQuota: Schema.optional(Schema.Boolean)
}).annotations(strict)

/**
 * An in-memory `RateLimiterStore` (one process): the token-bucket and fixed-window algorithms of
 * `@effect/experimental`'s memory store, except that a key whose bucket has refilled completely is forgotten, so
 * per-user keys do not accumulate for the life of the process. For limits shared by many processes provide
 * `Redis.layerRateLimiterStore` (subpath `effect-llm-resilience/Redis`) instead.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { FakeLlm, LlmClient, RateLimit } from "effect-llm-resilience"
 * const Live = LlmClient.layerWith(RateLimit.policy({ rpm: 60 })).pipe(
 *   Layer.provide(FakeLlm.layer(FakeLlm.reply("ok"))),
 *   Layer.provide(RateLimit.layerStoreMemory)
 * )
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layerStoreMemory: Layer.Layer<RateLimiter.RateLimiterStore> = Layer.sync(
  RateLimiter.RateLimiterStore,
  () => makeMemoryStore().store
)

/**
 * The store Tag the policy requires (from `@effect/experimental/RateLimiter`).
 *
 * @example
 * ```ts
 * import { RateLimit } from "effect-llm-resilience"
 * const tag = RateLimit.RateLimiterStore
 * ```
 * @since 0.1.0
 * @category Tags
 */
export const RateLimiterStore: typeof RateLimiter.RateLimiterStore = RateLimiter.RateLimiterStore

const WINDOW = Duration.minutes(1)

type Limit = { readonly kind: "rpm" | "tpm"; readonly limit: number }

const keyOf = (per: Per, request: ChatRequest): string => {
  if (per === "model") return `model:${request.model}`
  if (per === "user") return `user:${request.user ?? "anonymous"}`
  if (per === "global") return "global"
  return `custom:${per(request)}`
}

const validate = (options: Options): Either.Either<typeof OptionsSchema.Type, InvalidOptions> =>
  Either.flatMap(decode(OptionsSchema, "RateLimit", options), (decoded) =>
    decoded.rpm === undefined && decoded.tpm === undefined && decoded.providerQuota !== true
      ? Either.left(new InvalidOptions({
        target: "RateLimit",
        issues: [{ path: "rpm", message: "Expected rpm or tpm (or both), or providerQuota: true, actual none" }]
      }))
      : Either.right(decoded))

/**
 * A policy that keeps calls under client-side requests-per-minute and tokens-per-minute limits. Each request
 * costs 1 request and its estimated tokens: prompt tokens (with the `Tokenizer` in context when the policy is
 * built, else ≈ 4 characters a token) plus `maxTokens` (0 when unset). In "wait" mode the call sleeps until it
 * fits; in "fail" mode (or past `maxWait`) it fails with `RateLimited { source: "client", retryAfter }` and uses
 * up nothing. After the call the charge is reconciled with its `usage` (reported by the provider, or the library's
 * own count when it reported none): tokens beyond the estimate are charged too, and the unused part goes back
 * (`tpmCharge: "usage"`, the default; `"estimate"` keeps it, as OpenAI does). With `providerQuota: true` a call also
 * waits before it is sent while the provider's rate-limit headers say its model's quota is spent until their reset.
 * A request costing more than `tpm` can never fit and
 * fails with `BadRequest`
 * (code "request_too_large"). Every wait and refusal is counted in `llm_rate_limited_total` (labels `key`: the
 * kind of key — "model" | "user" | "global" | "custom", never a user id; `action`: "waited" | "rejected"; the limit hit is
 * a span attribute). If the store fails (say, Redis is down) the call is let through and a warning logged.
 * Streams are limited when they start.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { FakeLlm, LlmClient, RateLimit, Tokenizer } from "effect-llm-resilience"
 * const Live = LlmClient.layerWith(
 *   RateLimit.policy({ rpm: 500, tpm: 200_000, per: "model", onLimit: "wait" }),
 *   RateLimit.policy({ rpm: 20, per: "user", onLimit: "fail", name: "per-user" })
 * ).pipe(
 *   Layer.provide(FakeLlm.layer(FakeLlm.reply("ok"))),
 *   Layer.provide(RateLimit.layerStoreMemory),
 *   Layer.provide(Tokenizer.layer)
 * )
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const policy = (
  options: Options
): Effect.Effect<LlmClient.Policy, InvalidOptions, RateLimiter.RateLimiterStore> =>
  Effect.map(Effect.zip(admission(options), quotaGate(options)), ([admit, gate]) =>
    LlmClient.policy({
      name: "RateLimit",
      complete: (next) => (request) => {
        const call = Effect.flatMap(admit.admit(request), (admitted) =>
          admitted === undefined
            ? next(request)
            : Effect.tap(next(request), (response: ChatResponse) => admit.settle(admitted, response)))
        return gate === undefined ? call : gate.complete(request, call)
      },
      stream: (next) => (request) => {
        const chunks = Stream.unwrap(Effect.map(admit.admit(request), (admitted) => {
          if (admitted === undefined) return next(request)
          let settled = false
          return Stream.tap(next(request), (chunk: ChatChunk) => {
            if (settled || chunk.usage === undefined) return Effect.void
            settled = true
            return admit.settle(admitted, chunk)
          })
        }))
        return gate === undefined ? chunks : gate.stream(request, chunks)
      }
    }))

const quotaGate = (options: Options) =>
  Effect.map(Effect.serviceOption(Tokenizer), (tokenizer) => {
    if (options.providerQuota !== true) return undefined
    const kindLabel = typeof options.per === "function" ? "custom" : options.per ?? "model"
    return makeGate({
      onLimit: options.onLimit ?? "wait",
      maxWait: options.maxWait === undefined ? undefined : Duration.decode(options.maxWait),
      estimate: (request) => estimate(tokenizer, request),
      record: (action) =>
        Effect.zipRight(
          Effect.zipRight(LlmMetrics.count(LlmMetrics.rateLimited, { key: kindLabel, action }), Telemetry.rateLimited(kindLabel, action)),
          Effect.annotateCurrentSpan({ "llm.rate_limit.limit": "provider-quota", "llm.rate_limit.action": action })
        )
    })
  })

/**
 * The admission step of {@link policy}, for calls that are not chat completions (`Embeddings.rateLimit` uses it):
 * `admit(request, tokens?)` takes one request and `tokens` (the call's exact cost; omitted: the policy's estimate)
 * from the same buckets as {@link policy} with the same options, waiting or failing as it does; `settle` charges
 * tokens a call used beyond what it was admitted for. Same store, same keys: an embedding and a completion under one
 * `name` and key share a limit.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Llm, RateLimit } from "effect-llm-resilience"
 * const admitted = Effect.flatMap(RateLimit.admission({ tpm: 1_000_000, per: "user" }), (a) =>
 *   a.admit(new Llm.ChatRequest({ model: "text-embedding-3-small", messages: [], user: "u1" }), 120))
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const admission = (options: Options): Effect.Effect<Admission, InvalidOptions, RateLimiter.RateLimiterStore> =>
  Either.match(validate(options), {
    onLeft: (error) => Effect.fail(error),
    onRight: (decoded) =>
      Effect.gen(function* () {
        const limiter = yield* RateLimiter.make
        const tokenizer = yield* Effect.serviceOption(Tokenizer)
        return makeAdmission(limiter, tokenizer, {
          limits: [
            ...(decoded.rpm === undefined ? [] : [{ kind: "rpm", limit: decoded.rpm } as const]),
            ...(decoded.tpm === undefined ? [] : [{ kind: "tpm", limit: decoded.tpm } as const])
          ],
          per: decoded.per ?? "model",
          onLimit: decoded.onLimit ?? "wait",
          maxWait: decoded.maxWait,
          name: decoded.name ?? "llm",
          tpmCharge: decoded.tpmCharge ?? "usage"
        })
      })
  })

/**
 * What {@link admission} gives: `admit` (undefined when nothing is to be settled: no tpm limit, or the store failed
 * and the call was let through) and `settle`.
 *
 * @example
 * ```ts
 * import { RateLimit } from "effect-llm-resilience"
 * const admitOnly = (a: RateLimit.Admission) => a.admit
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Admission {
  readonly admit: (request: ChatRequest, tokens?: number) => Effect.Effect<Admitted | undefined, RateLimited | BadRequest>
  readonly settle: (
    admitted: Admitted,
    answer: { readonly usage?: Usage | undefined; readonly servedFrom?: string | undefined }
  ) => Effect.Effect<void>
}

interface Resolved {
  readonly limits: ReadonlyArray<Limit>
  readonly per: Per
  readonly onLimit: "wait" | "fail"
  readonly maxWait: Duration.Duration | undefined
  readonly name: string
  readonly tpmCharge: "usage" | "estimate"
}

const estimate = (
  tokenizer: Option.Option<Tokenizer["Type"]>,
  request: ChatRequest
): Effect.Effect<number> =>
  Effect.map(
    Option.match(tokenizer, {
      onNone: () => Effect.succeed(approximateMessageTokens(request.messages)),
      onSome: (t) => t.countMessages(request.messages, request.model)
    }),
    (prompt) => prompt + (request.maxTokens ?? 0)
  )

const makeAdmission = (
  limiter: RateLimiter.RateLimiter,
  tokenizer: Option.Option<Tokenizer["Type"]>,
  options: Resolved
) => {
  const kindLabel = typeof options.per === "function" ? "custom" : options.per
  const needsTokens = options.limits.some((l) => l.kind === "tpm")
  const consume = (key: string, limit: Limit, tokens: number, onExceeded: "delay" | "fail") =>
    limiter.consume({
      algorithm: "token-bucket",
      onExceeded,
      window: WINDOW,
      limit: limit.limit,
      key: `${options.name}:${limit.kind}:${key}`,
      tokens
    })
  const costOf = (limit: Limit, tokens: number) => (limit.kind === "rpm" ? 1 : tokens)
  // Which limit bit goes on the span, not into a label (the documented labels are key and action).
  const record = (limit: Limit, action: "waited" | "rejected") =>
    Effect.zipRight(
      Effect.zipRight(
        LlmMetrics.count(LlmMetrics.rateLimited, { key: kindLabel, action }),
        Telemetry.rateLimited(kindLabel, action)
      ),
      Effect.annotateCurrentSpan({ "llm.rate_limit.limit": limit.kind, "llm.rate_limit.action": action })
    )
  const refund = (key: string, taken: ReadonlyArray<Limit>, tokens: number) =>
    Effect.forEach(taken, (limit) => Effect.ignore(consume(key, limit, -costOf(limit, tokens), "delay")), {
      discard: true
    })
  const storeFailed = (message: string) =>
    Effect.logWarning("rate limit store failed; call let through").pipe(Effect.annotateLogs({ error: message }))
  const rejected = (request: ChatRequest, limit: Limit, retryAfter: Duration.Duration) =>
    Effect.zipRight(
      record(limit, "rejected"),
      Effect.fail(new RateLimited({ model: request.model, source: "client", retryAfter }, true))
    )

  // The slots are taken uninterruptibly and `taken` lists them, so a caller interrupted at any point before its
  // call starts (while it waits its turn, or right after admission) gives back exactly what it took.
  const failMode = (request: ChatRequest, key: string, tokens: number) =>
    Effect.uninterruptibleMask((restore) =>
      Effect.gen(function* () {
        const taken: Array<Limit> = []
        for (const limit of options.limits) {
          const result = yield* Effect.either(consume(key, limit, costOf(limit, tokens), "fail"))
          if (Either.isLeft(result)) {
            yield* refund(key, taken, tokens)
            if (result.left.reason === "Exceeded") return yield* rejected(request, limit, result.left.retryAfter)
            return yield* Effect.as(storeFailed(result.left.message), false)
          }
          taken.push(limit)
        }
        yield* Effect.onInterrupt(restore(Effect.void), () => refund(key, taken, tokens))
        return true
      })
    )

  const waitMode = (request: ChatRequest, key: string, tokens: number) =>
    Effect.uninterruptibleMask((restore) =>
      Effect.gen(function* () {
        let delay = Duration.zero
        let longest: Limit = options.limits[0]
        const taken: Array<Limit> = []
        for (const limit of options.limits) {
          const result = yield* Effect.either(consume(key, limit, costOf(limit, tokens), "delay"))
          if (Either.isLeft(result)) return yield* Effect.as(storeFailed(result.left.message), false)
          taken.push(limit)
          if (Duration.greaterThan(result.right.delay, delay)) {
            delay = result.right.delay
            longest = limit
          }
        }
        if (options.maxWait !== undefined && Duration.greaterThan(delay, options.maxWait)) {
          yield* refund(key, taken, tokens)
          return yield* rejected(request, longest, delay)
        }
        if (!Duration.isZero(delay)) {
          yield* record(longest, "waited")
          yield* Effect.annotateCurrentSpan("llm.rate_limit.wait_ms", Duration.toMillis(delay))
        }
        yield* Effect.onInterrupt(
          restore(Duration.isZero(delay) ? Effect.void : Effect.sleep(delay)),
          () => refund(key, taken, tokens)
        )
        return true
      })
    )

  // After the call the tpm charge is reconciled with the response's usage (the provider's, or the library's own count
  // when it reported none): tokens beyond the estimate (an answer longer than `maxTokens` allowed for, or no
  // `maxTokens`) are charged, and with tpmCharge "usage" the unused part goes back (all of it for an answer that no
  // provider call made: a cache hit or an idempotent replay below this policy).
  const tpm = options.limits.find((l) => l.kind === "tpm")
  const settle = (
    admitted: Admitted,
    answer: { readonly usage?: Usage | undefined; readonly servedFrom?: string | undefined }
  ): Effect.Effect<void> => {
    if (tpm === undefined) return Effect.void
    const fromProvider = (answer.servedFrom ?? "provider") === "provider"
    const used = !fromProvider ? 0 : answer.usage === undefined ? undefined : answer.usage.inputTokens + answer.usage.outputTokens
    if (used === undefined) return Effect.void
    const delta = used - admitted.tokens
    if (delta === 0 || (delta < 0 && options.tpmCharge === "estimate")) return Effect.void
    // In the background: the answer is not held back by a store round trip. A negative take gives tokens back (a
    // bucket never holds more than its limit).
    return Effect.asVoid(Effect.forkDaemon(Effect.ignore(consume(admitted.key, tpm, delta, "delay"))))
  }

  const admit = (request: ChatRequest, exact?: number): Effect.Effect<Admitted | undefined, RateLimited | BadRequest> =>
    Effect.flatMap(
      !needsTokens ? Effect.succeed(0) : exact !== undefined ? Effect.succeed(exact) : estimate(tokenizer, request),
      (tokens): Effect.Effect<
      Admitted | undefined,
      RateLimited | BadRequest
    > => {
      const tpm = options.limits.find((l) => l.kind === "tpm")
      if (tpm !== undefined && tokens > tpm.limit) {
        return Effect.zipRight(
          record(tpm, "rejected"),
          Effect.fail(new BadRequest({
            model: request.model,
            code: "request_too_large",
            reason: `estimated ${tokens} tokens exceed the client limit of ${tpm.limit} tokens per minute`
          }))
        )
      }
      const key = keyOf(options.per, request)
      const admitted = options.onLimit === "fail" ? failMode(request, key, tokens) : waitMode(request, key, tokens)
      return Effect.map(admitted, (charged) => (charged && tpm !== undefined ? { key, tokens } : undefined))
    })
  return { admit, settle }
}

/**
 * A call the tokens-per-minute limit charged `tokens` for, under `key`.
 *
 * @example
 * ```ts
 * import { RateLimit } from "effect-llm-resilience"
 * const tokensOf = (a: RateLimit.Admitted) => a.tokens
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Admitted {
  readonly key: string
  readonly tokens: number
}

/**
 * Something response headers can be read from: a Fetch `Headers`, or a plain record (names compared without case).
 *
 * @example
 * ```ts
 * import { RateLimit } from "effect-llm-resilience"
 * const headers: RateLimit.HeaderSource = { "x-ratelimit-remaining-requests": "12" }
 * ```
 * @since 0.1.0
 * @category Models
 */
export type HeaderSource = Quota.HeaderSource

/**
 * One dimension of a provider's quota (requests or tokens): `limit` when the provider said, `remaining`, and
 * `resetAt` (Effect-clock milliseconds) when it is whole again, when the provider said.
 *
 * @example
 * ```ts
 * import { RateLimit } from "effect-llm-resilience"
 * const spent = (w: RateLimit.QuotaWindow) => w.remaining < 1
 * ```
 * @since 0.1.0
 * @category Models
 */
export type QuotaWindow = Quota.QuotaWindow

/**
 * A provider's quota as one response's rate-limit headers state it: `requests` from `x-ratelimit-*-requests`,
 * `tokens` from `x-ratelimit-*-tokens`, each when sent.
 *
 * @example
 * ```ts
 * import { RateLimit } from "effect-llm-resilience"
 * const left = (q: RateLimit.ProviderQuota) => q.tokens?.remaining
 * ```
 * @since 0.1.0
 * @category Models
 */
export type ProviderQuota = Quota.Quota

/**
 * Reads a response's rate-limit headers at `now` (Effect-clock ms): `x-ratelimit-limit-requests`,
 * `x-ratelimit-remaining-requests`, `x-ratelimit-reset-requests` and the `-tokens` three. Resets are read as OpenAI
 * writes them ("1s", "6m0s", "20ms", "1h2m3.5s"), as a bare number of seconds, or as a date. Undefined when the
 * response sent none.
 *
 * @example
 * ```ts
 * import { RateLimit } from "effect-llm-resilience"
 * const quota = RateLimit.parseQuotaHeaders({
 *   "x-ratelimit-limit-requests": "500",
 *   "x-ratelimit-remaining-requests": "499",
 *   "x-ratelimit-reset-requests": "120ms"
 * }, 0)
 * // quota?.requests → { limit: 500, remaining: 499, resetAt: 120 }
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const parseQuotaHeaders: (headers: HeaderSource, now: number) => ProviderQuota | undefined = Quota.fromHeaders

/**
 * What a provider adapter runs once a response's headers have arrived (an error response's too; a stream's before
 * its first chunk), so a `Router` and `RateLimit.policy({ providerQuota: true })` above it can throttle before a
 * 429. It does nothing, and parses nothing, unless one of them (or {@link observeQuota}) listens to the call. The
 * OpenAI adapter calls it already; call it from a client of your own.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { RateLimit } from "effect-llm-resilience"
 * declare const response: Response
 * const reported = RateLimit.reportQuotaHeaders(response.headers)
 * ```
 * @since 0.1.0
 * @category Combinators
 */
export const reportQuotaHeaders: (headers: HeaderSource | undefined) => Effect.Effect<void> = Quota.report

/**
 * Runs `effect` with `onQuota` called with the provider quota of every response its calls get that carries
 * rate-limit headers (see {@link parseQuotaHeaders}): to log, export or act on it. Other listeners (a `Router`,
 * `providerQuota`) keep theirs.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Llm, LlmClient, RateLimit } from "effect-llm-resilience"
 * const call = LlmClient.complete(new Llm.ChatRequest({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] }))
 * const logged = call.pipe(RateLimit.observeQuota((quota) => Effect.log(`requests left: ${quota.requests?.remaining}`)))
 * ```
 * @since 0.1.0
 * @category Combinators
 */
export const observeQuota: {
  (onQuota: (quota: ProviderQuota) => Effect.Effect<void>): <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  <A, E, R>(effect: Effect.Effect<A, E, R>, onQuota: (quota: ProviderQuota) => Effect.Effect<void>): Effect.Effect<A, E, R>
} = dual(2, <A, E, R>(effect: Effect.Effect<A, E, R>, onQuota: (quota: ProviderQuota) => Effect.Effect<void>) =>
  Quota.observe(effect, (headers) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const quota = Quota.fromHeaders(headers, now)
      return quota === undefined ? Effect.void : onQuota(quota)
    })))
