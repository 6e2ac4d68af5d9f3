/**
 * Token budgets that never overshoot: before a call the worst case (prompt tokens + `maxTokens`, priced for USD
 * limits) is **reserved** in one atomic store step and the call is refused with `BudgetExceeded` if it does not
 * fit; after the call the actual usage is **committed** and the rest released; a failed call is **refunded** (a cut
 * stream is charged what it used). Calendar periods reset at their UTC boundary; rolling windows expire usage
 * after their duration. Alerts fire once per threshold per period.
 *
 * State sits behind {@link TokenBudgetStore}: {@link layerStoreMemory} for one process, the Redis store for many.
 *
 * @since 0.1.0
 */
import { type Duration, Effect, Layer, type Queue, type Scope, type Stream } from "effect"
import { dual } from "effect/Function"
import * as BudgetAlerts from "./internal/budgetAlerts.js"
import type * as Ledger from "./internal/budgetLedger.js"
import * as BudgetOptions from "./internal/budgetOptions.js"
import * as BudgetStore from "./internal/budgetStore.js"
import * as internal from "./internal/tokenBudget.js"
import type { InvalidOptions } from "./InvalidOptions.js"
import type { ChatRequest } from "./Llm.js"
import type { Policy } from "./LlmClient.js"
import * as Pricing from "./Pricing.js"
import * as TokenizerModule from "./Tokenizer.js"

// ---------------------------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------------------------

/**
 * A calendar period (reset at its UTC boundary; "month" by calendar month) or a rolling window. A rolling window is
 * kept in `buckets` buckets (default 60): usage expires more than `rolling` and at most `rolling / buckets` later
 * after it was charged.
 *
 * @example
 * ```ts
 * import { TokenBudget } from "effect-llm-resilience"
 * const daily: TokenBudget.PeriodInput = "day"
 * const lastHour: TokenBudget.PeriodInput = { rolling: "1 hour" }
 * ```
 * @since 0.1.0
 * @category Models
 */
export type PeriodInput =
  | "minute"
  | "hour"
  | "day"
  | "month"
  | { readonly rolling: Duration.DurationInput; readonly buckets?: number }

/**
 * Which requests share a budget: one `"global"` budget, one per `"user"` (the request's `user`; requests without
 * one share the `"anonymous"` scope), or one per value of a function of the request (a tenant, a feature).
 *
 * @example
 * ```ts
 * import { TokenBudget } from "effect-llm-resilience"
 * const perTenant: TokenBudget.ScopeInput = (request) => request.metadata?.tenant ?? "none"
 * ```
 * @since 0.1.0
 * @category Models
 */
export type ScopeInput = "global" | "user" | ((request: ChatRequest) => string)

/**
 * Options of {@link policy}.
 *
 * @example
 * ```ts
 * import { TokenBudget } from "effect-llm-resilience"
 * const options: TokenBudget.Options = { scope: "user", limit: { tokens: 200_000 }, period: "day", alertAt: [0.8, 1] }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Options {
  /** Which requests share the budget. Required. */
  readonly scope: ScopeInput
  /** At least one of `tokens` (prompt + completion tokens) and `usd` (priced with `Pricing`). Non-negative. */
  readonly limit: { readonly tokens?: number; readonly usd?: number }
  /** A calendar period in UTC or `{ rolling: duration }`. Required. */
  readonly period: PeriodInput
  /** Fractions of the limit (each in (0, 1]) whose crossing emits one alert per period. Defaults to `[0.8, 1]`. */
  readonly alertAt?: ReadonlyArray<number>
  /**
   * The budget's name: its metric label, the `scope` of its `BudgetExceeded`, and its store key prefix (two
   * budgets with one name share state). Defaults to `<scope kind>-<period>`, e.g. `"user-day"`, `"global-month"`.
   */
  readonly name?: string
  /**
   * How long a reservation holds budget if its caller never settles it (a crashed process, a commit the store lost
   * after its retries). At its end the reservation is charged at its worst case, never dropped; a late commit
   * corrects it. Defaults to 10 minutes.
   */
  readonly reservationTtl?: Duration.DurationInput
  /**
   * Worst-case output tokens of a request without `maxTokens` whose model is not in the price table. Unset by
   * default: such a request is refused with `BadRequest { code: "unknown_max_output" }`.
   */
  readonly defaultMaxOutputTokens?: number
  /**
   * What a USD limit does with a model missing from the price table. `"fail"` (the default) refuses the call with
   * `BadRequest { code: "unpriced_model" }`; `"ignoreUsd"` lets it through and charges it 0 USD (tokens still count).
   */
  readonly onUnpriced?: "fail" | "ignoreUsd"
}

// ---------------------------------------------------------------------------------------------------------------
// Store
// ---------------------------------------------------------------------------------------------------------------

/**
 * Budget amounts as the store keeps them: tokens, and USD in integer nano-dollars (exact sums).
 *
 * @example
 * ```ts
 * import { TokenBudget } from "effect-llm-resilience"
 * const amount: TokenBudget.Amount = { tokens: 1200, nanoUsd: 3_000_000 } // 1200 tokens, $0.003
 * ```
 * @since 0.1.0
 * @category Store
 */
export type Amount = Ledger.Amount

/**
 * Limits as the store sees them; an unset unit is unlimited.
 *
 * @example
 * ```ts
 * import { TokenBudget } from "effect-llm-resilience"
 * const limits: TokenBudget.Limits = { tokens: 50_000 }
 * ```
 * @since 0.1.0
 * @category Store
 */
export type Limits = Ledger.Limits

/**
 * The unit of a limit.
 *
 * @example
 * ```ts
 * import { TokenBudget } from "effect-llm-resilience"
 * const unit: TokenBudget.Unit = "usd"
 * ```
 * @since 0.1.0
 * @category Models
 */
export type Unit = Ledger.Unit

/**
 * The window of one store call, computed by the caller from its clock: a UTC calendar period `{ start, end }` or a
 * rolling `{ durationMs, bucketMs }`.
 *
 * @example
 * ```ts
 * import { TokenBudget } from "effect-llm-resilience"
 * const window: TokenBudget.Window = { _tag: "Rolling", durationMs: 3_600_000, bucketMs: 60_000 }
 * ```
 * @since 0.1.0
 * @category Store
 */
export type Window = import("./internal/budgetPeriod.js").Window

/**
 * What a store holds for one key at `now`: committed `used`, in-flight `reserved`, period bounds (epoch ms, UTC).
 *
 * @example
 * ```ts
 * import { TokenBudget } from "effect-llm-resilience"
 * const free = (s: TokenBudget.Snapshot, limit: number) => limit - s.used.tokens - s.reserved.tokens
 * ```
 * @since 0.1.0
 * @category Store
 */
export type Snapshot = Ledger.Snapshot

/**
 * Input of `reserve`: admit `amount` under `reservationId` (lease until `expiresAt`) if `used + reserved + amount`
 * fits every limit. Reserving an existing id again is a no-op.
 *
 * @example
 * ```ts
 * import { TokenBudget } from "effect-llm-resilience"
 * const input: TokenBudget.ReserveInput = { key: "k", reservationId: "r1", amount: { tokens: 10, nanoUsd: 0 },
 *   limits: { tokens: 100 }, window: { _tag: "Calendar", start: 0, end: 60_000 }, now: 0, expiresAt: 600_000 }
 * ```
 * @since 0.1.0
 * @category Store
 */
export type ReserveInput = Ledger.ReserveInput

/**
 * Result of `reserve`. A rejection names the first unit that did not fit, with `requested` and `remaining` in
 * store units (tokens or nano-USD) read in the same atomic step.
 *
 * @example
 * ```ts
 * import { TokenBudget } from "effect-llm-resilience"
 * const fits = (r: TokenBudget.ReserveResult) => r._tag === "Reserved"
 * ```
 * @since 0.1.0
 * @category Store
 */
export type ReserveResult = Ledger.ReserveResult

/**
 * Input of `commit`: release the reservation, charge `actual` to the period current at `now` and report alert
 * thresholds (`alertAt` fractions of `limits`) crossed for the first time this period.
 *
 * @example
 * ```ts
 * import { TokenBudget } from "effect-llm-resilience"
 * const input: TokenBudget.CommitInput = { key: "k", reservationId: "r1", actual: { tokens: 7, nanoUsd: 0 },
 *   limits: { tokens: 100 }, alertAt: [0.8, 1], window: { _tag: "Calendar", start: 0, end: 60_000 }, now: 5 }
 * ```
 * @since 0.1.0
 * @category Store
 */
export type CommitInput = Ledger.CommitInput

/**
 * Result of `commit`: whether the reservation was still held, the thresholds crossed, and the new state.
 *
 * @example
 * ```ts
 * import { TokenBudget } from "effect-llm-resilience"
 * const alerts = (r: TokenBudget.CommitResult) => r.crossed.map((c) => `${c.unit}@${c.threshold}`)
 * ```
 * @since 0.1.0
 * @category Store
 */
export type CommitResult = Ledger.CommitResult

/**
 * Input of `refund`: release a reservation without charging.
 *
 * @example
 * ```ts
 * import { TokenBudget } from "effect-llm-resilience"
 * const input: TokenBudget.RefundInput = { key: "k", reservationId: "r1", window: { _tag: "Calendar", start: 0, end: 60_000 }, now: 5 }
 * ```
 * @since 0.1.0
 * @category Store
 */
export type RefundInput = Ledger.RefundInput

/**
 * Result of `refund`.
 *
 * @example
 * ```ts
 * import { TokenBudget } from "effect-llm-resilience"
 * const wasHeld = (r: TokenBudget.RefundResult) => r.found
 * ```
 * @since 0.1.0
 * @category Store
 */
export type RefundResult = Ledger.RefundResult

/**
 * Input of `usage`: read one key at `now`.
 *
 * @example
 * ```ts
 * import { TokenBudget } from "effect-llm-resilience"
 * const input: TokenBudget.UsageInput = { key: "k", window: { _tag: "Calendar", start: 0, end: 60_000 }, now: 5 }
 * ```
 * @since 0.1.0
 * @category Store
 */
export type UsageInput = Ledger.UsageInput

/**
 * The store contract: each method is one atomic step on one key (a Redis store runs one Lua script per method),
 * with `now` and the window passed in from the caller's Effect clock. Expired reservations (past their lease) and
 * expired rolling buckets never count. A backend failure is a defect: `reserve` then fails the call (no provider
 * call without a reservation), while a failed `commit`/`refund` is logged and the reservation holds budget until
 * its lease ends (conservative, never overshooting).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { TokenBudget } from "effect-llm-resilience"
 * const program = Effect.gen(function* () {
 *   const store = yield* TokenBudget.makeStoreMemory
 *   const window = { _tag: "Calendar", start: 0, end: 60_000 } as const
 *   return yield* store.reserve({ key: "k", reservationId: "r1", amount: { tokens: 10, nanoUsd: 0 },
 *     limits: { tokens: 100 }, window, now: 0, expiresAt: 600_000 })
 * })
 * ```
 * @since 0.1.0
 * @category Store
 */
export type StoreService = Ledger.StoreService

/**
 * The budget store tag. Provide {@link layerStoreMemory} (one process) or the Redis store (many processes).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { TokenBudget } from "effect-llm-resilience"
 * const read = Effect.flatMap(TokenBudget.TokenBudgetStore, (store) =>
 *   store.usage({ key: "k", window: { _tag: "Calendar", start: 0, end: 60_000 }, now: 0 }))
 * ```
 * @since 0.1.0
 * @category Tags
 */
export const TokenBudgetStore: typeof BudgetStore.TokenBudgetStore = BudgetStore.TokenBudgetStore
export type TokenBudgetStore = BudgetStore.TokenBudgetStore

/**
 * Options of the in-memory store.
 *
 * @example
 * ```ts
 * import { TokenBudget } from "effect-llm-resilience"
 * const options: TokenBudget.StoreMemoryOptions = { maxKeys: 500_000 }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface StoreMemoryOptions {
  /**
   * The most budget keys (one per budget and scope value, e.g. per user) held at once. A key back to the fresh state
   * (nothing used, nothing reserved) is dropped at once; past the bound the least recently used key is evicted,
   * forgetting its usage (counted in `llm_state_evictions_total{store="token-budget"}`). Defaults to 100,000 (about
   * 70 MB). For more users than that, use the Redis store.
   */
  readonly maxKeys?: number | undefined
}

/**
 * A fresh in-memory store with options. Every method runs synchronously on the key's ledger, so it is atomic
 * among fibers. Keys are forgotten once their period, buckets and leases are over (swept every 1024 operations),
 * as soon as they are back to the fresh state, and past `maxKeys` (least recently used first).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { TokenBudget } from "effect-llm-resilience"
 * const store = Effect.runSync(TokenBudget.makeStoreMemoryWith({ maxKeys: 10_000 }))
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const makeStoreMemoryWith = (options: StoreMemoryOptions = {}): Effect.Effect<StoreService, InvalidOptions> =>
  BudgetStore.makeWith(options)


/**
 * A fresh in-memory store with the default options (see {@link makeStoreMemoryWith}).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { TokenBudget } from "effect-llm-resilience"
 * const store = Effect.runSync(TokenBudget.makeStoreMemory)
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const makeStoreMemory: Effect.Effect<StoreService> = BudgetStore.makeDefault

/**
 * The in-memory {@link TokenBudgetStore}: exact within one process (use the Redis store across replicas).
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { FakeLlm, LlmClient, TokenBudget, Tokenizer } from "effect-llm-resilience"
 * const Live = LlmClient.layerWith(TokenBudget.policy({ scope: "global", limit: { tokens: 1_000_000 }, period: "month" })).pipe(
 *   Layer.provide(FakeLlm.layer(FakeLlm.reply("ok"))),
 *   Layer.provide(Layer.merge(TokenBudget.layerStoreMemory, Tokenizer.layer))
 * )
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layerStoreMemory: Layer.Layer<TokenBudgetStore> = Layer.effect(TokenBudgetStore, makeStoreMemory)

/**
 * The in-memory {@link TokenBudgetStore} with options (e.g. `maxKeys`), failing with InvalidOptions on bad ones.
 *
 * @example
 * ```ts
 * import { TokenBudget } from "effect-llm-resilience"
 * const Store = TokenBudget.layerStoreMemoryWith({ maxKeys: 500_000 })
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layerStoreMemoryWith = (options: StoreMemoryOptions): Layer.Layer<TokenBudgetStore, InvalidOptions> =>
  Layer.effect(TokenBudgetStore, makeStoreMemoryWith(options))

// ---------------------------------------------------------------------------------------------------------------
// Alerts
// ---------------------------------------------------------------------------------------------------------------

/**
 * A threshold crossed: `used` reached `threshold × limit` in `unit` for one scope value, first time this period
 * (a rolling window re-arms a threshold once usage falls back below it). `scope` is the raw scope value (a user id
 * for user budgets): it stays in process, it is never a metric label. Times are epoch ms (UTC).
 *
 * @example
 * ```ts
 * import { TokenBudget } from "effect-llm-resilience"
 * const describe = (a: TokenBudget.Alert) => `${a.budget}: ${a.threshold * 100} % of ${a.limit} ${a.unit} used`
 * ```
 * @since 0.1.0
 * @category Models
 */
export type Alert = internal.AlertEvent

/**
 * The hub budgets publish their alerts to. Provide {@link layerAlerts} to the layer that builds the budgets;
 * without it alerts are only counted in `llm_budget_alerts_total`.
 *
 * @example
 * ```ts
 * import { Effect, PubSub } from "effect"
 * import { TokenBudget } from "effect-llm-resilience"
 * const size = Effect.flatMap(TokenBudget.TokenBudgetAlerts, PubSub.size)
 * ```
 * @since 0.1.0
 * @category Tags
 */
export const TokenBudgetAlerts: typeof BudgetAlerts.TokenBudgetAlerts = BudgetAlerts.TokenBudgetAlerts
export type TokenBudgetAlerts = BudgetAlerts.TokenBudgetAlerts

/**
 * An alert hub (unbounded; alerts published while nobody subscribes are dropped).
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { TokenBudget } from "effect-llm-resilience"
 * const stores = Layer.mergeAll(TokenBudget.layerStoreMemory, TokenBudget.layerAlerts)
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layerAlerts: Layer.Layer<TokenBudgetAlerts> = BudgetAlerts.layer

/**
 * Every alert published from now on, as a Stream.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { TokenBudget } from "effect-llm-resilience"
 * const log = TokenBudget.alerts.pipe(
 *   Stream.runForEach((a) => Effect.logWarning(`budget ${a.budget} at ${a.threshold * 100} %`))
 * )
 * ```
 * @since 0.1.0
 * @category Accessors
 */
export const alerts: Stream.Stream<Alert, never, TokenBudgetAlerts> = BudgetAlerts.stream

/**
 * Subscribes now (so no alert published after this point is missed) and returns the queue of alerts; the
 * subscription ends with the scope.
 *
 * @example
 * ```ts
 * import { Effect, Queue } from "effect"
 * import { TokenBudget } from "effect-llm-resilience"
 * const firstAlert = Effect.scoped(Effect.flatMap(TokenBudget.subscribeAlerts, Queue.take))
 * ```
 * @since 0.1.0
 * @category Accessors
 */
export const subscribeAlerts: Effect.Effect<Queue.Dequeue<Alert>, never, Scope.Scope | TokenBudgetAlerts> =
  BudgetAlerts.subscribe

// ---------------------------------------------------------------------------------------------------------------
// Policy
// ---------------------------------------------------------------------------------------------------------------

/**
 * Usage of one unit in user units (tokens, or USD). `remaining = limit - used - reserved` (never negative).
 *
 * @example
 * ```ts
 * import { TokenBudget } from "effect-llm-resilience"
 * const percent = (u: TokenBudget.UnitUsage) => (100 * u.used) / u.limit
 * ```
 * @since 0.1.0
 * @category Models
 */
export type UnitUsage = internal.UnitUsage

/**
 * The state of one scope value of a budget: `used`, `reserved`, `limit` and `remaining` of its main unit (tokens
 * when a token limit is set, else USD), each unit in `tokens` / `usd`, and the period bounds in epoch ms (UTC; for
 * a rolling window, the start of the oldest counted bucket and now).
 *
 * @example
 * ```ts
 * import { TokenBudget } from "effect-llm-resilience"
 * const line = (u: TokenBudget.UsageReport) => `${u.budget}: ${u.used}/${u.limit} ${u.unit}, ${u.remaining} left`
 * ```
 * @since 0.1.0
 * @category Models
 */
export type UsageReport = internal.UsageReport

/**
 * A built budget: an `LlmClient` policy (complete and stream) that also reads its own state.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { TokenBudget } from "effect-llm-resilience"
 * const remaining = (budget: TokenBudget.Budget, user: string) => Effect.map(budget.usage(user), (u) => u.remaining)
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Budget extends Policy {
  readonly _tag: "TokenBudget"
  /** The budget name (metric label, `BudgetExceeded.scope`). */
  readonly budget: string
  readonly scopeKind: "global" | "user" | "custom"
  readonly limit: { readonly tokens?: number | undefined; readonly usd?: number | undefined }
  readonly alertAt: ReadonlyArray<number>
  /** Reads the state of one scope value: a user id (omitted: "anonymous"), a custom scope's value; ignored for "global". */
  readonly usage: (scope?: string) => Effect.Effect<UsageReport>
  /**
   * Runs a call that is not a chat completion under this budget (`Embeddings.tokenBudget` uses it): reserves
   * `estimate` exactly in `request`'s scope, runs `call`, then commits the usage `charged` reads from its answer
   * (`Option.none()`: refund) or refunds a failure, with the settlement retries and lease-end charge of completions.
   */
  readonly guard: internal.Engine["guard"]
}

/**
 * Builds a token budget policy. Several budgets stack (outermost first in `LlmClient.layerWith`): a refusal by an
 * inner one refunds the outer ones.
 *
 * Per call: count the prompt with the `Tokenizer` (+ tool schemas), add `maxTokens` (or the model's max output
 * from `Pricing`, capped by its context window), price it for a USD limit, reserve it atomically, and fail with
 * `BudgetExceeded { scope: name, requested, remaining, unit, model }` without calling the provider if it does not
 * fit. On success the response's usage is charged (priced at the model that answered); on failure the reservation
 * is refunded, except a cut stream (`StreamTruncated`, or a stream failing after some chunks), which is charged its
 * prompt and the output it produced. Streams reserve before the first chunk and commit at their end from the last
 * chunk's usage (or the counted chunks). Responses served from a cache or an idempotency record cost nothing.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { FakeLlm, LlmClient, TokenBudget, Tokenizer } from "effect-llm-resilience"
 * const Live = LlmClient.layerWith(
 *   TokenBudget.policy({ scope: "global", limit: { usd: 500 }, period: "month" }),
 *   TokenBudget.policy({ scope: "user", limit: { tokens: 200_000 }, period: "day", alertAt: [0.8, 1] })
 * ).pipe(
 *   Layer.provide(FakeLlm.layer(FakeLlm.reply("ok"))),
 *   Layer.provide(Layer.mergeAll(TokenBudget.layerStoreMemory, TokenBudget.layerAlerts, Tokenizer.layer))
 * )
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const policy = (options: Options): Effect.Effect<Budget, InvalidOptions, TokenBudgetStore> =>
  Effect.gen(function* () {
    const config = yield* BudgetOptions.resolve(options)
    const engine = yield* internal.make(config, {
      store: yield* TokenBudgetStore,
      tokenizer: yield* TokenizerModule.current,
      pricing: yield* Pricing.current,
      alerts: yield* Effect.serviceOption(TokenBudgetAlerts)
    })
    return {
      _tag: "TokenBudget",
      name: `TokenBudget(${config.name})`,
      budget: config.name,
      scopeKind: internal.scopeKindOf(config.scope),
      limit: config.limit,
      alertAt: config.alertAt,
      complete: engine.complete,
      stream: engine.stream,
      usage: (scope?: string) => engine.usage(scope),
      guard: engine.guard
    } satisfies Budget
  })

/**
 * Reads a budget's state for one scope value (a user id, a custom scope value; nothing for global budgets or the
 * anonymous user).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { TokenBudget } from "effect-llm-resilience"
 * declare const budget: TokenBudget.Budget
 * const report = TokenBudget.usage(budget, "user-42")
 * const same = Effect.flatMap(Effect.succeed(budget), TokenBudget.usage("user-42"))
 * ```
 * @since 0.1.0
 * @category Accessors
 */
export const usage: {
  (scope?: string): (budget: Budget) => Effect.Effect<UsageReport>
  (budget: Budget, scope?: string): Effect.Effect<UsageReport>
} = dual(
  (args) => typeof args[0] === "object" && args[0] !== null && (args[0] as Budget)._tag === "TokenBudget",
  (budget: Budget, scope?: string): Effect.Effect<UsageReport> => budget.usage(scope)
)
