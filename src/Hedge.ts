/**
 * Hedged requests: when an attempt is slow (it has not answered after `after`), a second one starts beside it; the
 * first success wins and the others are interrupted, their HTTP requests aborted. It cuts the tail latency a few
 * slow calls cause at the price of a few extra calls, each drawn from the shared retry budget so that a slow outage
 * cannot double the load.
 *
 * @since 0.1.0
 */
import { Duration, Effect, Either, Option, Schema } from "effect"
import { DurationInput } from "./internal/durationInput.js"
import * as internal from "./internal/hedge.js"
import { strict } from "./internal/optionSchemas.js"
import { decode, type InvalidOptions } from "./InvalidOptions.js"
import type * as LlmClient from "./LlmClient.js"
import * as Retry from "./Retry.js"

/**
 * A hedge delay from the recent latencies of the model: the `percentile` (in (0, 100)) of the last `window`
 * successful attempts (time to first token for streams), at least `min`; `initial` until `minSamples` have been seen.
 *
 * @example
 * ```ts
 * import { Hedge } from "effect-llm-resilience"
 * const after: Hedge.Percentile = { percentile: 95, min: "50 millis", initial: "2 seconds" }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Percentile {
  readonly percentile: number
  /** The shortest delay. Defaults to 0. */
  readonly min?: Duration.DurationInput | undefined
  /** The delay before `minSamples` latencies are known. Defaults to "2 seconds". */
  readonly initial?: Duration.DurationInput | undefined
  /** Defaults to 20. */
  readonly minSamples?: number | undefined
  /** How many recent latencies count. Defaults to 1000. */
  readonly window?: number | undefined
}

/**
 * Hedge options.
 *
 * @example
 * ```ts
 * import { Hedge } from "effect-llm-resilience"
 * const fixed: Hedge.Options = { after: "800 millis", maxHedges: 1 }
 * const adaptive: Hedge.Options = { after: { percentile: 95 }, maxHedges: 2 }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Options {
  /** How long an attempt may run before the next one starts: a duration, or a {@link Percentile} of recent latencies. */
  readonly after: Duration.DurationInput | Percentile
  /** Extra attempts at most (0 switches hedging off). Defaults to 1. */
  readonly maxHedges?: number | undefined
  /**
   * Where each hedge is drawn from: a hedge the budget refuses is not sent (and counted as refused). Defaults to the
   * `Retry.RetryBudget` in context when the policy is built, else none (hedges are then limited by `maxHedges` only).
   */
  readonly budget?: Retry.Budget | undefined
  /**
   * Whether each call deposits into the budget (counts as a logical call). Defaults to false: the budget's calls are
   * counted by the `Retry.policyWithBudget` that fills it above this policy. Set it when no such Retry sits above.
   */
  readonly deposit?: boolean | undefined
  /** Whether an attempt's retryable error starts the next hedge at once rather than after the delay. Defaults to true. */
  readonly onError?: boolean | undefined
}

const PercentileSchema = Schema.Struct({
  percentile: Schema.Number.pipe(Schema.greaterThan(0), Schema.lessThan(100)),
  min: Schema.optional(DurationInput),
  initial: Schema.optional(DurationInput),
  minSamples: Schema.optional(Schema.Int.pipe(Schema.positive())),
  window: Schema.optional(Schema.Int.pipe(Schema.between(1, 100_000)))
}).annotations(strict)

const After = Schema.Union(PercentileSchema, DurationInput)

const OptionsSchema = Schema.Struct({
  after: After,
  maxHedges: Schema.optional(Schema.Int.pipe(Schema.between(0, 10))),
  budget: Schema.optional(Schema.declare(Retry.isBudget, { message: () => "Expected a Retry.Budget (Retry.makeBudget)" })),
  deposit: Schema.optional(Schema.Boolean),
  onError: Schema.optional(Schema.Boolean)
}).annotations(strict)

const isPercentile = (after: typeof After.Type): after is typeof PercentileSchema.Type =>
  !Duration.isDuration(after)

const delayOf = (after: typeof After.Type): internal.Delay =>
  isPercentile(after)
    ? {
      _tag: "Percentile",
      percentile: after.percentile,
      minMs: after.min === undefined ? 0 : Duration.toMillis(after.min),
      initialMs: Duration.toMillis(after.initial ?? Duration.seconds(2)),
      minSamples: after.minSamples ?? 20,
      window: after.window ?? 1_000
    }
    : { _tag: "Fixed", ms: Duration.toMillis(after) }

/**
 * The hedging policy (LLM middleware). Place it below Retry (a hedged attempt is one attempt for Retry) and above
 * the Router (each hedge is routed again, so it can go to another deployment: `"least-busy"` sees the slow one busy)
 * and the per-attempt Timeout. The response's usage counts the prompt tokens of every attempt that was sent (they are
 * billed, answered or not), so budgets above it charge what was really used. Streams hedge only until one attempt
 * has started (its first text). Counted in `llm_hedges_total` (labels `model`, `outcome`: sent, won, refused).
 * Fails with InvalidOptions (every failing path listed) on bad options.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { FakeLlm, Hedge, LlmClient, Retry } from "effect-llm-resilience"
 * const Live = LlmClient.layerWith(
 *   Retry.policyWithBudget({ maxRetries: 2 }),
 *   Hedge.policy({ after: { percentile: 95 }, maxHedges: 1 })
 * ).pipe(Layer.provide(FakeLlm.layer(FakeLlm.reply("ok"))), Layer.provide(Retry.layerBudget({ ratio: 0.1 })))
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const policy = (options: Options): Effect.Effect<LlmClient.Policy, InvalidOptions> =>
  Either.match(decode(OptionsSchema, "Hedge", options), {
    onLeft: (error) => Effect.fail(error),
    onRight: (o) =>
      Effect.map(Effect.serviceOption(Retry.RetryBudget), (fromContext): LlmClient.Policy => {
        const config: internal.Config = {
          delay: delayOf(o.after),
          maxHedges: o.maxHedges ?? 1,
          budget: o.budget ?? Option.getOrUndefined(fromContext),
          deposit: o.deposit ?? false,
          onError: o.onError ?? true
        }
        const latencies = new internal.Latencies(config.delay)
        return {
          name: "Hedge",
          complete: (next) => internal.complete(config, latencies, next),
          stream: (next) => internal.stream(config, latencies, next)
        }
      })
  })
