/**
 * One logical model over many deployments (keys, regions, Azure deployments, vLLM replicas): the router maps a
 * request's model to one of its deployments by a strategy, skips deployments that are cooling down, too small for
 * the prompt or at their limits, and fails over to the next one when a deployment fails. The response's
 * `deployment` says which one answered.
 *
 * State that replicas must agree on (calls in flight, the minute's requests and tokens, latency averages,
 * cooldowns) sits behind the {@link RouterStore} Tag: {@link layerStoreMemory} for one process.
 *
 * @since 0.1.0
 */
import { Clock, Context, Duration, Effect, Either, Layer, Metric, Schema } from "effect"
import { DurationInput } from "./internal/durationInput.js"
import { strict } from "./internal/optionSchemas.js"
import * as internal from "./internal/router.js"
import { makeMemory, type DeploymentState as State, type StoreOps } from "./internal/routerStore.js"
import type { Strategy as StrategyName } from "./internal/routerStrategy.js"
import { decode, type InvalidOptions } from "./InvalidOptions.js"
import * as LlmClient from "./LlmClient.js"
import * as LlmMetrics from "./LlmMetrics.js"

/**
 * How the router picks a deployment among the eligible ones:
 * - `"weighted"`: at random, in proportion to `weight` (the `Random` service: seed it to replay);
 * - `"least-busy"`: the fewest calls in flight (ties at random by weight);
 * - `"latency"`: the lowest moving average of latency (time to first token for streams); unmeasured or stale
 *   deployments first, and now and then (`exploration`) another one, so a recovered deployment is noticed;
 * - `"usage"`: the most of its minute's `rpm` / `tpm` left, and of the provider's quota (its rate-limit headers);
 * - `"cost"`: the cheapest for this call by `Pricing` (prompt tokens + `maxTokens`), unpriced ones last.
 *
 * @example
 * ```ts
 * import { Router } from "effect-llm-resilience"
 * const strategy: Router.Strategy = "least-busy"
 * ```
 * @since 0.1.0
 * @category Models
 */
export type Strategy = StrategyName

/**
 * One deployment of a model.
 *
 * @example
 * ```ts
 * import { LlmClient, Router } from "effect-llm-resilience"
 * declare const eastUs: LlmClient.Service
 * const deployment: Router.Deployment = { id: "east-us", model: "gpt-4o", client: eastUs, weight: 3, rpm: 500 }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Deployment {
  /** A unique id: the response's `deployment`, metric labels and the store key. Never put a secret in it. */
  readonly id: string
  /** The model requests ask for: requests for it are routed over its deployments. */
  readonly model: string
  /** The model name sent to this deployment (an Azure deployment name, say). Defaults to `model`. */
  readonly providerModel?: string | undefined
  /**
   * The client that serves it. Defaults to the client below the policy. A deployment with its own client bypasses
   * the policies below the router: decorate that client with the ones it needs.
   */
  readonly client?: LlmClient.Service | undefined
  /** Its share of traffic under `"weighted"` (ties of the other strategies too). Defaults to 1; 0 takes none. */
  readonly weight?: number | undefined
  /** Requests a minute it accepts: at the limit it is skipped until the minute ends. Defaults to no limit. */
  readonly rpm?: number | undefined
  /** Tokens a minute (prompt + `maxTokens` up front, corrected by the real usage after). Defaults to no limit. */
  readonly tpm?: number | undefined
  /** Calls in flight at once: a full deployment is skipped. Defaults to no limit. */
  readonly maxConcurrent?: number | undefined
  /** Its context window in tokens. Defaults to the `Pricing` entry of `providerModel`, else unchecked. */
  readonly contextWindow?: number | undefined
}

/**
 * Router options.
 *
 * @example
 * ```ts
 * import { Router } from "effect-llm-resilience"
 * const options: Router.Options = {
 *   deployments: [{ id: "a", model: "gpt-4o" }, { id: "b", model: "gpt-4o", weight: 2 }],
 *   strategy: "weighted",
 *   cooldown: "30 seconds"
 * }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Options {
  /** The deployments (at least one), of one model or of several. Ids are unique. */
  readonly deployments: ReadonlyArray<Deployment>
  /** Defaults to "weighted". */
  readonly strategy?: Strategy | undefined
  /**
   * How long a failing deployment is skipped: after `allowedFails` consecutive failures, or at once after a 429
   * without Retry-After, a quota, auth or model-not-found error. A Retry-After (or an open breaker's time until it
   * half-opens) sets the cooldown instead. Defaults to "10 seconds".
   */
  readonly cooldown?: Duration.DurationInput | undefined
  /** Consecutive retryable failures that start a cooldown. Defaults to 3. */
  readonly allowedFails?: number | undefined
  /** The latency average's weight of a new sample, in (0, 1]. Defaults to 0.3. */
  readonly latencyAlpha?: number | undefined
  /** A latency average not refreshed for this long counts as unmeasured (tried again first). Defaults to "1 minute". */
  readonly staleAfter?: Duration.DurationInput | undefined
  /** `"latency"`: the probability of trying another deployment than the fastest, in [0, 1]. Defaults to 0.05. */
  readonly exploration?: number | undefined
  /**
   * When a deployment fails with an error another deployment may not have (retryable, an open breaker, a full
   * bulkhead, a quota, auth or model error), try the next one in the same call (each at most once; streams only
   * before their first delta). Defaults to true.
   */
  readonly failover?: boolean | undefined
  /** Namespaces the store keys: two routers over one shared store need different names. Defaults to "router". */
  readonly name?: string | undefined
  /**
   * Proactive throttling from the provider's rate-limit headers (`x-ratelimit-remaining-requests` / `-tokens` and
   * their `-reset-` times, read by the OpenAI adapter, or any client that calls `RateLimit.reportQuotaHeaders`): a
   * deployment whose remaining quota this call would exceed (one request, prompt + `maxTokens` tokens) is skipped
   * until its reset instead of being sent a call that would get a 429, and `"usage"` ranks deployments by what is
   * left of it. Between responses the view is kept conservative: every call admitted takes its share at once, and a
   * response's headers only lower it until the reset (less the other calls in flight). Defaults to true; false
   * learns of a full quota only from a 429 (then a cooldown of its Retry-After).
   */
  readonly providerQuota?: boolean | undefined
}

/**
 * What the store holds for one deployment.
 *
 * @example
 * ```ts
 * import { Router } from "effect-llm-resilience"
 * const busy = (state: Router.DeploymentState) => state.inFlight > 10
 * ```
 * @since 0.1.0
 * @category Models
 */
export type DeploymentState = State

/**
 * A deployment's id, model and state, as {@link Policy.status} reads it.
 *
 * @example
 * ```ts
 * import { Router } from "effect-llm-resilience"
 * const cooling = (s: Router.DeploymentStatus, now: number) => s.state.cooldownUntil > now
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface DeploymentStatus {
  readonly id: string
  readonly model: string
  readonly state: DeploymentState
}

/**
 * The router store failed (say, Redis is down). The router then routes without its state and logs a warning.
 *
 * @example
 * ```ts
 * import { Router } from "effect-llm-resilience"
 * const error = new Router.RouterStoreError({ operation: "read", reason: "connection refused" })
 * ```
 * @since 0.1.0
 * @category Errors
 */
export class RouterStoreError extends Schema.TaggedError<RouterStoreError>("effect-llm-resilience/RouterStoreError")(
  "RouterStoreError",
  { operation: Schema.String, reason: Schema.String }
) {
  override get message(): string {
    return `Router store ${this.operation} failed: ${this.reason}`
  }
}

/**
 * The store's operations, each one atomic step on one deployment's key, `now` from the caller's Effect clock:
 * `read` the state of some keys; `begin` a call (checks `maxConcurrent`, `rpm` and `tpm` and charges it, or refuses);
 * `settle` it (frees the slot, corrects the token charge, averages the latency, counts failures, starts cooldowns).
 *
 * @example
 * ```ts
 * import { Router } from "effect-llm-resilience"
 * const inFlight = (store: Router.Store) => store.read(["router:east-us"], 0)
 * ```
 * @since 0.1.0
 * @category Store
 */
export type Store = StoreOps<RouterStoreError>

/**
 * Where router state lives. Provide {@link layerStoreMemory} (one process).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Router } from "effect-llm-resilience"
 * const program = Effect.flatMap(Router.RouterStore, (store) => store.read(["router:a"], 0))
 * ```
 * @since 0.1.0
 * @category Tags
 */
export class RouterStore extends Context.Tag("effect-llm-resilience/RouterStore")<RouterStore, Store>() {}

/**
 * Builds an in-memory store (one map entry a configured deployment).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Router } from "effect-llm-resilience"
 * const store = Effect.runSync(Router.makeStoreMemory)
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const makeStoreMemory: Effect.Effect<Store> = Effect.sync(makeMemory)

/**
 * The in-memory {@link RouterStore}.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { FakeLlm, LlmClient, Router } from "effect-llm-resilience"
 * const Live = LlmClient.layerWith(
 *   Router.policy({ deployments: [{ id: "a", model: "gpt-4o" }, { id: "b", model: "gpt-4o" }] })
 * ).pipe(Layer.provide(FakeLlm.layer(FakeLlm.reply("ok"))), Layer.provide(Router.layerStoreMemory))
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layerStoreMemory: Layer.Layer<RouterStore> = Layer.effect(RouterStore, makeStoreMemory)

const isService = (u: unknown): u is LlmClient.Service =>
  typeof u === "object" && u !== null && typeof (u as LlmClient.Service).complete === "function" &&
  typeof (u as LlmClient.Service).stream === "function"

const PositiveInt = Schema.Int.pipe(Schema.positive())

const DeploymentSchema = Schema.Struct({
  id: Schema.NonEmptyString,
  model: Schema.NonEmptyString,
  providerModel: Schema.optional(Schema.NonEmptyString),
  client: Schema.optional(Schema.declare(isService, { message: () => "Expected an LlmClient.Service" })),
  weight: Schema.optional(Schema.Number.pipe(Schema.nonNegative(), Schema.finite())),
  rpm: Schema.optional(PositiveInt),
  tpm: Schema.optional(PositiveInt),
  maxConcurrent: Schema.optional(PositiveInt),
  contextWindow: Schema.optional(PositiveInt)
}).annotations(strict)

const uniqueIds = (deployments: ReadonlyArray<{ readonly id: string }>) => {
  const seen = new Set<string>()
  const issues: Array<{ path: ReadonlyArray<number | string>; message: string }> = []
  deployments.forEach((d, i) => {
    if (seen.has(d.id)) issues.push({ path: [i, "id"], message: `Expected a unique id, actual a second "${d.id}"` })
    seen.add(d.id)
  })
  return issues.length === 0 ? true : issues.map((issue) => ({ path: issue.path, message: issue.message }))
}

const OptionsSchema = Schema.Struct({
  deployments: Schema.NonEmptyArray(DeploymentSchema).pipe(Schema.filter(uniqueIds)),
  strategy: Schema.optional(Schema.Literal("weighted", "least-busy", "latency", "usage", "cost")),
  cooldown: Schema.optional(DurationInput),
  allowedFails: Schema.optional(PositiveInt),
  latencyAlpha: Schema.optional(Schema.Number.pipe(Schema.greaterThan(0), Schema.lessThanOrEqualTo(1))),
  staleAfter: Schema.optional(DurationInput),
  exploration: Schema.optional(Schema.Number.pipe(Schema.between(0, 1))),
  failover: Schema.optional(Schema.Boolean),
  name: Schema.optional(Schema.NonEmptyString),
  providerQuota: Schema.optional(Schema.Boolean)
}).annotations(strict)

const millis = (d: Duration.Duration | undefined, fallback: number): number =>
  d === undefined ? fallback : Duration.toMillis(d)

const resolve = (options: Options): Either.Either<internal.Config, InvalidOptions> =>
  Either.map(decode(OptionsSchema, "Router", options), (o) => {
    const name = o.name ?? "router"
    const groups = new Map<string, Array<internal.Deployment>>()
    for (const d of o.deployments) {
      const deployment: internal.Deployment = {
        id: d.id,
        model: d.model,
        providerModel: d.providerModel ?? d.model,
        // Recorded like every client (LlmClient.make), once.
        client: d.client === undefined ? undefined : LlmClient.decorate(d.client),
        weight: d.weight ?? 1,
        rpm: d.rpm,
        tpm: d.tpm,
        maxConcurrent: d.maxConcurrent,
        contextWindow: d.contextWindow,
        key: `${name}:${d.id}`,
        latency: LlmMetrics.routerLatency.pipe(Metric.tagged("model", d.model), Metric.tagged("deployment", d.id))
      }
      groups.set(d.model, [...(groups.get(d.model) ?? []), deployment])
    }
    return {
      strategy: o.strategy ?? "weighted",
      groups,
      cooldownMs: millis(o.cooldown, 10_000),
      allowedFails: o.allowedFails ?? 3,
      alpha: o.latencyAlpha ?? 0.3,
      staleMs: millis(o.staleAfter, 60_000),
      exploration: o.exploration ?? 0.05,
      failover: o.failover ?? true,
      providerQuota: o.providerQuota ?? true
    }
  })

/**
 * The router policy: an {@link LlmClient.Policy} plus `status`, the state of every deployment now.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Router } from "effect-llm-resilience"
 * const report = (router: Router.Policy) =>
 *   Effect.map(router.status, (all) => all.map((d) => `${d.id}: ${d.state.inFlight} in flight`))
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Policy extends LlmClient.Policy {
  readonly status: Effect.Effect<ReadonlyArray<DeploymentStatus>, RouterStoreError>
}

/**
 * The router policy (LLM middleware). A request whose model has deployments goes to one of them, chosen by
 * `strategy` among those eligible: not cooling down, with a context window that fits the prompt + `maxTokens`
 * (counted with the `Tokenizer` in context), under their `rpm`, `tpm` and `maxConcurrent`. When none is eligible
 * the call fails at once, without a provider call: with `ContextTooLong` when no window fits, else with
 * `CircuitOpen { key: "router:<model>", retryAfter }`, the earliest time one will be back (so `Fallback` moves on to
 * the next model). Requests for other models pass through untouched.
 *
 * Place it where a model name becomes a provider call: below `Fallback` and `Retry` (each retry is routed again),
 * above the `CircuitBreaker` (per model, or on each deployment's own client) and `Timeout`. Counted in
 * `llm_router_requests_total` and `llm_router_cooldowns_total` (labels `model`, `deployment`), the latency of each
 * deployment in `llm_router_latency_ms`. Fails with InvalidOptions (every failing path listed) on bad options.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { FakeLlm, LlmClient, Retry, Router } from "effect-llm-resilience"
 * const Live = LlmClient.layerWith(
 *   Retry.policy({ maxRetries: 2 }),
 *   Router.policy({
 *     deployments: [
 *       { id: "east", model: "gpt-4o", rpm: 500 },
 *       { id: "west", model: "gpt-4o", providerModel: "gpt-4o-2024-08-06", rpm: 500 }
 *     ],
 *     strategy: "least-busy"
 *   })
 * ).pipe(Layer.provide(FakeLlm.layer(FakeLlm.reply("ok"))), Layer.provide(Router.layerStoreMemory))
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const policy = (options: Options): Effect.Effect<Policy, InvalidOptions, RouterStore> =>
  Either.match(resolve(options), {
    onLeft: (error) => Effect.fail(error),
    onRight: (config) =>
      Effect.map(RouterStore, (store): Policy => {
        const all = [...config.groups.values()].flat()
        return {
          name: "Router",
          complete: (next) => internal.complete(config, store, next),
          stream: (next) => internal.stream(config, store, next),
          status: Effect.flatMap(Clock.currentTimeMillis, (now) =>
            Effect.map(store.read(all.map((d) => d.key), now), (states) =>
              all.map((d, i) => ({ id: d.id, model: d.model, state: states[i] }))))
        }
      })
  })
