/**
 * The token budget policy engine: estimate the worst case, reserve it, call, then commit the actual usage or
 * refund. All state lives behind the store; this file only reads the clock, counts tokens and emits telemetry.
 */
import { memoized, sha256Hex } from "./hash.js"
import { Cause, Clock, Effect, Exit, Option, PubSub, Random, Schedule, Stream } from "effect"
import type { ChatChunk, ChatRequest, ChatResponse, Usage } from "../Llm.js"
import type { Complete, StreamFn } from "../LlmClient.js"
import { BadRequest, BudgetExceeded, type LlmError } from "../LlmError.js"
import * as LlmMetrics from "../LlmMetrics.js"
import * as Telemetry from "./telemetry.js"
import type * as Pricing from "../Pricing.js"
import type * as Tokenizer from "../Tokenizer.js"
import type { Amount, Limits, StoreService, Unit } from "./budgetLedger.js"
import { type Period, windowAt } from "./budgetPeriod.js"
import { tokenUsd } from "./priceMath.js"

/** Which requests share a budget. */
export type ScopeKind = "global" | "user" | "custom"

/** An alert: a threshold crossed for one scope value in one period. */
export interface AlertEvent {
  readonly budget: string
  readonly scopeKind: ScopeKind
  readonly scope: string
  readonly unit: Unit
  readonly threshold: number
  readonly used: number
  readonly limit: number
  readonly periodStart: number
  readonly periodEnd: number
  readonly at: number
}

/** Usage of one unit in user units (tokens, or USD). */
export interface UnitUsage {
  readonly used: number
  readonly reserved: number
  readonly limit: number
  readonly remaining: number
}

/** The state of one scope value of a budget. */
export interface UsageReport extends UnitUsage {
  readonly budget: string
  readonly scopeKind: ScopeKind
  readonly scope: string
  readonly unit: Unit
  readonly periodStart: number
  readonly periodEnd: number
  readonly tokens: UnitUsage | undefined
  readonly usd: UnitUsage | undefined
}

/** Validated options. */
export interface Config {
  readonly name: string
  readonly scope: "global" | "user" | ((request: ChatRequest) => string)
  readonly limit: { readonly tokens?: number | undefined; readonly usd?: number | undefined }
  readonly period: Period
  readonly alertAt: ReadonlyArray<number>
  readonly leaseMs: number
  readonly defaultMaxOutputTokens: number | undefined
  readonly onUnpriced: "fail" | "ignoreUsd"
}

interface Services {
  readonly store: StoreService
  readonly tokenizer: Tokenizer.Service
  readonly pricing: Pricing.Pricing["Type"]
  readonly alerts: Option.Option<PubSub.PubSub<AlertEvent>>
}

interface ScopeValue {
  /** The raw value (user id, "anonymous", "global" or the custom function's result): events only, never labels. */
  readonly value: string
  /** The store key: budget name + scope kind + a digest of the value (no user id in clear). */
  readonly key: string
}

interface Held {
  readonly id: string
  readonly request: ChatRequest
  readonly scope: ScopeValue
  readonly promptTokens: number
}

type Outcome =
  | { readonly _tag: "Charge"; readonly usage: Usage; readonly model: string }
  | { readonly _tag: "Refund" }

const NANO = 1_000_000_000

/**
 * How a commit or refund that cannot reach the store is retried: in the background (the caller already has its
 * answer), with exponential backoff on the Effect clock, 5 more tries over about 6 s. A settlement that still fails
 * leaves the reservation to its lease, whose end charges the worst case (budgetLedger.ts): never zero.
 */
export const settleRetry = Schedule.exponential("200 millis").pipe(Schedule.intersect(Schedule.recurs(5)))

/** USD → integer nano-USD, rounding float noise away first. */
export const toNanoUsd = (usd: number): number => Math.floor(Math.round(usd * NANO * 1000) / 1000)

/**
 * Nano-USD of `usage` at `price`, rounded up (a budget never under-charges): cached prompt tokens at the cached-input
 * price, as `Pricing.costOf` prices them.
 */
export const nanoUsdOf = (price: Pricing.ModelPrice, usage: Usage): number => {
  const raw = tokenUsd(price, usage) * 1000
  return Math.ceil(Math.round(raw * 1e6) / 1e6)
}

// A request's prompt tokens, counted once per request and tokenizer (several budgets over one call share the count).
const promptTokenMemo = new WeakMap<ChatRequest, { readonly tokenizer: Tokenizer.Service; readonly tokens: number }>()

// Scopes repeat (one user makes many calls): each is hashed once.
const digest = memoized((value: string): string => sha256Hex(value).slice(0, 32))

/** The scope kind of a configured scope. */
export const scopeKindOf = (scope: Config["scope"]): ScopeKind => typeof scope === "function" ? "custom" : scope

/** Resolves the raw scope value into a store key. `undefined` for a user scope means the anonymous scope. */
export const scopeValue = (config: Config, raw: string | undefined): ScopeValue => {
  const kind = scopeKindOf(config.scope)
  const prefix = `${config.name}|${kind}|`
  if (kind === "global") return { value: "global", key: `${prefix}global` }
  if (kind === "user" && raw === undefined) return { value: "anonymous", key: `${prefix}~anonymous` }
  const value = raw ?? ""
  return { value, key: `${prefix}${digest(value)}` }
}

const scopeOfRequest = (config: Config, request: ChatRequest): ScopeValue =>
  typeof config.scope === "function"
    ? scopeValue(config, config.scope(request))
    : scopeValue(config, config.scope === "user" ? request.user : undefined)

const storeLimits = (config: Config): Limits => ({
  tokens: config.limit.tokens,
  nanoUsd: config.limit.usd === undefined ? undefined : toNanoUsd(config.limit.usd)
})

const fromStoreUnit = (unit: Unit, amount: number): number => unit === "usd" ? amount / NANO : amount

/** The functions of one budget. */
export interface Engine {
  readonly complete: (next: Complete) => Complete
  readonly stream: (next: StreamFn) => StreamFn
  readonly usage: (scope: string | undefined) => Effect.Effect<UsageReport>
  /**
   * Runs a call that is not a chat completion (an embedding) under the budget: reserves `estimate` exactly (no worst
   * case) in `request`'s scope, then settles as a completion does: the usage `charged` reads from the answer (none:
   * refund), a refund on failure, and the same retries and lease-end charge when the store loses the settlement.
   */
  readonly guard: <A, E, R>(
    request: ChatRequest,
    estimate: Usage,
    call: Effect.Effect<A, E, R>,
    charged: (a: A) => Option.Option<{ readonly usage: Usage; readonly model: string }>
  ) => Effect.Effect<A, E | LlmError, R>
}

/** Builds the policy functions of one budget. Reservation ids get a random per-budget prefix (unique across replicas). */
export const make = (config: Config, services: Services): Effect.Effect<Engine> =>
  Effect.map(Effect.all([Random.nextInt, Random.nextInt]), ([a, b]) =>
    build(config, services, `${(a >>> 0).toString(16)}${(b >>> 0).toString(16)}`))

const isTruncated = (error: LlmError): error is Extract<LlmError, { _tag: "StreamTruncated" }> =>
  error._tag === "StreamTruncated"

const build = (config: Config, services: Services, idPrefix: string): Engine => {
  const { pricing, store, tokenizer } = services
  const limits = storeLimits(config)
  const scopeKind = scopeKindOf(config.scope)
  const labels = { budget: config.name }
  let sequence = 0

  const refuse = <A>(error: LlmError): Effect.Effect<A, LlmError> =>
    LlmMetrics.count(LlmMetrics.budgetRejections, labels).pipe(
      Effect.zipRight(Telemetry.budgetRefused(config.name, error)),
      Effect.zipRight(Effect.fail(error))
    )

  const promptTokensOf = (request: ChatRequest): Effect.Effect<number> => {
    const known = promptTokenMemo.get(request)
    if (known !== undefined && known.tokenizer === tokenizer) return Effect.succeed(known.tokens)
    const messages = tokenizer.countMessages(request.messages, request.model)
    const counted = request.tools === undefined || request.tools.length === 0
      ? messages
      : Effect.zipWith(messages, tokenizer.count(JSON.stringify(request.tools), request.model), (a, b) => a + b)
    return Effect.map(counted, (tokens) => {
      promptTokenMemo.set(request, { tokenizer, tokens })
      return tokens
    })
  }

  const worstCase = (request: ChatRequest) =>
    Effect.flatMap(promptTokensOf(request), (promptTokens): Effect.Effect<{ promptTokens: number; amount: Amount }, LlmError> => {
      const price = pricing.lookup(request.model)
      const output = request.maxTokens ??
        Option.match(price, {
          onNone: () => config.defaultMaxOutputTokens,
          onSome: (p) => Math.min(p.maxOutputTokens, Math.max(0, p.contextWindow - promptTokens))
        })
      if (output === undefined) {
        return refuse(new BadRequest({
          model: request.model,
          code: "unknown_max_output",
          reason: "no maxTokens and the model is not in the price table: set maxTokens, price the model or set the budget's defaultMaxOutputTokens"
        }))
      }
      if (Option.isNone(price) && limits.nanoUsd !== undefined && config.onUnpriced === "fail") {
        return refuse(new BadRequest({
          model: request.model,
          code: "unpriced_model",
          reason: "a USD budget cannot price this model: add it with Pricing.layer or set onUnpriced: \"ignoreUsd\""
        }))
      }
      const usage = { inputTokens: promptTokens, outputTokens: output }
      const nanoUsd = Option.match(price, { onNone: () => 0, onSome: (p) => nanoUsdOf(p, usage) })
      return Effect.succeed({ promptTokens, amount: { tokens: promptTokens + output, nanoUsd } })
    })

  const reserve = (request: ChatRequest): Effect.Effect<Held, LlmError> =>
    Effect.flatMap(worstCase(request), ({ amount, promptTokens }) => reserveAmount(request, promptTokens, amount))

  // A call whose usage is known before it runs (an embedding: its inputs' tokens, no output) reserves exactly that.
  const exactAmount = (request: ChatRequest, usage: Usage): Effect.Effect<Amount, LlmError> => {
    const price = pricing.lookup(request.model)
    if (Option.isNone(price) && limits.nanoUsd !== undefined && config.onUnpriced === "fail") {
      return refuse(new BadRequest({
        model: request.model,
        code: "unpriced_model",
        reason: "a USD budget cannot price this model: add it with Pricing.layer or set onUnpriced: \"ignoreUsd\""
      }))
    }
    const nanoUsd = Option.match(price, { onNone: () => 0, onSome: (p) => nanoUsdOf(p, usage) })
    return Effect.succeed({ tokens: usage.inputTokens + usage.outputTokens, nanoUsd })
  }

  // One step for the clock, one for the store: this runs on every call.
  const reserveAmount = (request: ChatRequest, promptTokens: number, amount: Amount): Effect.Effect<Held, LlmError> =>
    Effect.clockWith((clock) => {
      const now = clock.unsafeCurrentTimeMillis()
      const scope = scopeOfRequest(config, request)
      const id = `${idPrefix}-${(++sequence).toString(36)}`
      return Effect.flatMap(store.reserve({
        key: scope.key,
        reservationId: id,
        amount,
        limits,
        window: windowAt(config.period, now),
        now,
        expiresAt: now + config.leaseMs
      }), (result): Effect.Effect<Held, LlmError> => {
        if (result._tag === "Rejected") {
          return refuse<Held>(new BudgetExceeded({
            model: request.model,
            scope: config.name,
            requested: fromStoreUnit(result.unit, result.requested),
            remaining: fromStoreUnit(result.unit, result.remaining),
            unit: result.unit
          }, true)) // built from the store's answer: valid by construction, so not validated again (~50 µs)
        }
        return Effect.succeed({ id, request, scope, promptTokens })
      })
    })

  const publish = (held: Held, crossed: ReadonlyArray<{ unit: Unit; threshold: number }>, snapshot: {
    used: Amount
    periodStart: number
    periodEnd: number
  }, now: number) =>
    Effect.forEach(crossed, ({ threshold, unit }) => {
      const event: AlertEvent = {
        budget: config.name,
        scopeKind,
        scope: held.scope.value,
        unit,
        threshold,
        used: unit === "tokens" ? snapshot.used.tokens : snapshot.used.nanoUsd / NANO,
        limit: unit === "tokens" ? limits.tokens ?? 0 : (limits.nanoUsd ?? 0) / NANO,
        periodStart: snapshot.periodStart,
        periodEnd: snapshot.periodEnd,
        at: now
      }
      return Effect.zipRight(
        LlmMetrics.count(LlmMetrics.budgetAlerts, { budget: config.name, threshold: String(threshold) }),
        Option.match(services.alerts, { onNone: () => Effect.void, onSome: (hub) => Effect.asVoid(PubSub.publish(hub, event)) })
      )
    }, { discard: true })

  const priceOf = (model: string, request: ChatRequest) =>
    Option.orElse(pricing.lookup(model), () => pricing.lookup(request.model))

  const settleOnce = (held: Held, outcome: Outcome): Effect.Effect<void> =>
    Effect.clockWith((clock) => {
      const now = clock.unsafeCurrentTimeMillis()
      const window = windowAt(config.period, now)
      if (outcome._tag === "Refund") {
        return Effect.asVoid(store.refund({ key: held.scope.key, reservationId: held.id, window, now }))
      }
      const price = priceOf(outcome.model, held.request)
      const nanoUsd = Option.isSome(price) ? nanoUsdOf(price.value, outcome.usage) : 0
      const actual = { tokens: outcome.usage.inputTokens + outcome.usage.outputTokens, nanoUsd }
      return Effect.flatMap(store.commit({
        key: held.scope.key,
        reservationId: held.id,
        actual,
        limits,
        alertAt: config.alertAt,
        window,
        now
      }), (result) => result.crossed.length === 0 ? Effect.void : publish(held, result.crossed, result.snapshot, now))
    })

  // A store failure is a defect of the store call (the store contract): sandboxed, so it can be retried.
  const settleRetried = (held: Held, outcome: Outcome): Effect.Effect<void> =>
    Effect.retry(Effect.sandbox(settleOnce(held, outcome)), settleRetry).pipe(
      Effect.zipRight(LlmMetrics.count(LlmMetrics.budgetSettlements, { budget: config.name, outcome: "retried" })),
      Effect.catchAll((cause) =>
        Effect.zipRight(
          LlmMetrics.count(LlmMetrics.budgetSettlements, { budget: config.name, outcome: "lost" }),
          Effect.logWarning(
            "TokenBudget could not settle a reservation; its lease end will charge the worst case",
            cause
          )
        ))
    )

  // The first try runs before the caller gets its answer; retries run in the background so a store outage does
  // not hold every call for the whole backoff.
  const settle = (held: Held, outcome: Outcome): Effect.Effect<void> =>
    Effect.catchAllCause(settleOnce(held, outcome), (cause) =>
      Cause.isInterruptedOnly(cause)
        ? Effect.failCause(cause)
        : Effect.zipRight(
          Effect.logWarning("TokenBudget could not settle a reservation; retrying in the background", cause),
          Effect.asVoid(Effect.forkDaemon(settleRetried(held, outcome)))
        ))

  const truncated = (exit: Exit.Exit<unknown, LlmError>) =>
    Exit.isFailure(exit) ? Option.filter(Cause.failureOption(exit.cause), isTruncated) : Option.none()

  const completeOutcome = (held: Held, exit: Exit.Exit<ChatResponse, LlmError>): Outcome => {
    if (Exit.isSuccess(exit)) {
      return exit.value.servedFrom === "provider"
        ? { _tag: "Charge", usage: exit.value.usage, model: exit.value.model }
        : { _tag: "Refund" }
    }
    return Option.match(truncated(exit), {
      onNone: (): Outcome => ({ _tag: "Refund" }),
      onSome: (e): Outcome => ({
        _tag: "Charge",
        usage: { inputTokens: held.promptTokens, outputTokens: e.outputTokens ?? 0 },
        model: e.model ?? held.request.model
      })
    })
  }

  const complete = (next: Complete): Complete => (request) =>
    Effect.acquireUseRelease(
      reserve(request),
      () => next(request),
      (held, exit) => settle(held, completeOutcome(held, exit))
    )

  const guard = <A, E, R>(
    request: ChatRequest,
    estimate: Usage,
    call: Effect.Effect<A, E, R>,
    charged: (a: A) => Option.Option<{ readonly usage: Usage; readonly model: string }>
  ): Effect.Effect<A, E | LlmError, R> =>
    Effect.acquireUseRelease(
      Effect.flatMap(exactAmount(request, estimate), (amount) => reserveAmount(request, estimate.inputTokens, amount)),
      () => call,
      (held, exit) =>
        settle(held, Exit.isSuccess(exit)
          ? Option.match(charged(exit.value), {
            onNone: (): Outcome => ({ _tag: "Refund" }),
            onSome: (c): Outcome => ({ _tag: "Charge", usage: c.usage, model: c.model })
          })
          : { _tag: "Refund" })
    )

  const stream = (next: StreamFn): StreamFn => (request) =>
    Stream.unwrapScoped(Effect.gen(function* () {
      const seen = { chunks: 0, text: [] as Array<string>, usage: undefined as Usage | undefined, model: request.model, cached: false }
      const counted = Effect.suspend(() => tokenizer.count(seen.text.join(""), request.model))
      const outcome = (held: Held, exit: Exit.Exit<unknown, LlmError>): Effect.Effect<Outcome> => {
        if (seen.cached) return Effect.succeed({ _tag: "Refund" })
        const charge = (outputTokens: number): Outcome => ({
          _tag: "Charge",
          usage: { inputTokens: held.promptTokens, outputTokens },
          model: seen.model
        })
        if (Exit.isSuccess(exit) && seen.usage !== undefined) {
          return Effect.succeed({ _tag: "Charge", usage: seen.usage, model: seen.model })
        }
        const cut = truncated(exit)
        if (Option.isSome(cut) && cut.value.outputTokens !== undefined) {
          return Effect.succeed(charge(cut.value.outputTokens))
        }
        if (Exit.isSuccess(exit) || Option.isSome(cut) || seen.chunks > 0) return Effect.map(counted, charge)
        return Effect.succeed({ _tag: "Refund" })
      }
      yield* Effect.acquireRelease(
        reserve(request),
        (held, exit) => Effect.flatMap(outcome(held, exit as Exit.Exit<unknown, LlmError>), (o) => settle(held, o))
      )
      return Stream.tap(next(request), (chunk: ChatChunk) =>
        Effect.sync(() => {
          seen.chunks++
          if (chunk.content.length > 0) seen.text.push(chunk.content)
          if (chunk.usage !== undefined) seen.usage = chunk.usage
          if (chunk.servedFrom !== undefined && chunk.servedFrom !== "provider") seen.cached = true
          seen.model = chunk.model
        }))
    }))

  const usage = (raw: string | undefined): Effect.Effect<UsageReport> =>
    Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      const scope = scopeValue(config, scopeKind === "global" ? undefined : raw)
      const snapshot = yield* store.usage({ key: scope.key, window: windowAt(config.period, now), now })
      const unitUsage = (unit: Unit): UnitUsage | undefined => {
        const field = unit === "tokens" ? "tokens" : "nanoUsd"
        const limit = limits[field]
        if (limit === undefined) return undefined
        const used = snapshot.used[field]
        const reserved = snapshot.reserved[field]
        return {
          used: fromStoreUnit(unit, used),
          reserved: fromStoreUnit(unit, reserved),
          limit: fromStoreUnit(unit, limit),
          remaining: fromStoreUnit(unit, Math.max(0, limit - used - reserved))
        }
      }
      const tokens = unitUsage("tokens")
      const usd = unitUsage("usd")
      const unit: Unit = tokens !== undefined ? "tokens" : "usd"
      return {
        ...(tokens ?? usd as UnitUsage),
        budget: config.name,
        scopeKind,
        scope: scope.value,
        unit,
        periodStart: snapshot.periodStart,
        periodEnd: snapshot.periodEnd,
        tokens,
        usd
      }
    })

  return { complete, stream, usage, guard }
}
