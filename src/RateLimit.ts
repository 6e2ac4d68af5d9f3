/**
 * Client-side rate limits: requests per minute and tokens per minute, per model, per user, globally or per any
 * key, so a fleet stays under the provider's limits instead of collecting 429s. Each request is charged its
 * estimated tokens up front (prompt tokens + `maxTokens`), as the provider does.
 *
 * Built on `@effect/experimental`'s `RateLimiter` (token buckets refilled continuously over one minute): the
 * state sits in its `RateLimiterStore`, in memory ({@link layerStoreMemory}) or in Redis
 * (`Redis.layerRateLimiterStore`, subpath `effect-llm-resilience/Redis`), so many processes can share one limit.
 *
 * @since 0.1.0
 */
import * as RateLimiter from "@effect/experimental/RateLimiter"
import { Duration, Effect, Either, Layer, Option, Schema, Stream } from "effect"
import { approximateMessageTokens } from "./internal/approximateTokens.js"
import { makeMemoryStore } from "./internal/rateLimitStore.js"
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
  name: Schema.optional(Schema.NonEmptyString)
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
    decoded.rpm === undefined && decoded.tpm === undefined
      ? Either.left(new InvalidOptions({
        target: "RateLimit",
        issues: [{ path: "rpm", message: "Expected rpm or tpm (or both), actual neither" }]
      }))
      : Either.right(decoded))

/**
 * A policy that keeps calls under client-side requests-per-minute and tokens-per-minute limits. Each request
 * costs 1 request and its estimated tokens: prompt tokens (with the `Tokenizer` in context when the policy is
 * built, else ≈ 4 characters a token) plus `maxTokens` (0 when unset). In "wait" mode the call sleeps until it
 * fits; in "fail" mode (or past `maxWait`) it fails with `RateLimited { source: "client", retryAfter }` and uses
 * up nothing. After the call, tokens it used beyond that estimate (its `usage`: reported by the provider, or the
 * library's own count when it reported none) are charged too. A request costing more than `tpm` can never fit and
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
  Effect.map(admission(options), (admit) =>
    LlmClient.policy({
      name: "rate-limit",
      complete: (next) => (request) =>
        Effect.flatMap(admit.admit(request), (admitted) =>
          admitted === undefined
            ? next(request)
            : Effect.tap(next(request), (response: ChatResponse) => admit.settle(admitted, response))),
      stream: (next) => (request) =>
        Stream.unwrap(Effect.map(admit.admit(request), (admitted) => {
          if (admitted === undefined) return next(request)
          let settled = false
          return Stream.tap(next(request), (chunk: ChatChunk) => {
            if (settled || chunk.usage === undefined) return Effect.void
            settled = true
            return admit.settle(admitted, chunk)
          })
        }))
    }))

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
          name: decoded.name ?? "llm"
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
      Effect.fail(new RateLimited({ model: request.model, source: "client", retryAfter }))
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

  // After the call, tokens beyond the estimate (an answer longer than `maxTokens` allowed for, or no `maxTokens`)
  // are charged too, from the response's usage: the provider's, or the library's own count when it reported none.
  const tpm = options.limits.find((l) => l.kind === "tpm")
  const settle = (
    admitted: Admitted,
    answer: { readonly usage?: Usage | undefined; readonly servedFrom?: string | undefined }
  ): Effect.Effect<void> => {
    const fromProvider = (answer.servedFrom ?? "provider") === "provider"
    if (tpm === undefined || answer.usage === undefined || !fromProvider) return Effect.void
    const beyond = answer.usage.inputTokens + answer.usage.outputTokens - admitted.tokens
    // In the background: the answer is not held back by a store round trip.
    if (beyond <= 0) return Effect.void
    return Effect.asVoid(Effect.forkDaemon(Effect.ignore(consume(admitted.key, tpm, beyond, "delay"))))
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
