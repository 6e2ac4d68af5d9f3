/**
 * The price table: input, cached-input, output and Batch API USD per million tokens, context window and max output
 * tokens of common models, overridable and extendable by the user. An unknown model is an explicit `Option.none()`,
 * never a silent zero.
 *
 * @since 0.1.0
 */
import { Context, Effect, Either, Layer, Option, Schema } from "effect"
import { strict } from "./internal/optionSchemas.js"
import { tokenUsd } from "./internal/priceMath.js"
import { decode, type InvalidOptions } from "./InvalidOptions.js"
import type { Usage } from "./Llm.js"

const Usd = Schema.Number.pipe(Schema.nonNegative(), Schema.finite())

/**
 * What a model costs and how much it takes (USD per million tokens).
 *
 * - `cachedInputPerMillion`: the price of prompt tokens read from the provider's prompt cache
 *   (`Usage.cachedInputTokens`). Defaults to `inputPerMillion` (no discount assumed).
 * - `cacheWriteInputPerMillion`: the price of prompt tokens written to the prompt cache
 *   (`Usage.cacheWriteInputTokens`; Anthropic charges 1.25× input for its 5-minute cache). Defaults to
 *   `inputPerMillion`.
 * - `batchInputPerMillion` / `batchOutputPerMillion`: the Batch API's prices. Each defaults to its standard price
 *   (no discount assumed). Cached input in a batch gets the batch discount too:
 *   `cachedInputPerMillion × batchInputPerMillion / inputPerMillion`.
 *
 * An embedding model has no output (`outputPerMillion: 0`, `maxOutputTokens: 0`); its `dimensions` is the length of
 * its vectors when a request asks for none (`Embeddings.fallback` checks that a chain's models agree).
 *
 * Reasoning tokens are output tokens (`Usage.reasoningTokens` is a part of `outputTokens`): they have no price of
 * their own.
 *
 * @example
 * ```ts
 * import { Pricing } from "effect-llm-resilience"
 * const price: Pricing.ModelPrice = {
 *   inputPerMillion: 2.5,
 *   cachedInputPerMillion: 1.25,
 *   outputPerMillion: 10,
 *   batchInputPerMillion: 1.25,
 *   batchOutputPerMillion: 5,
 *   contextWindow: 128000,
 *   maxOutputTokens: 16384
 * }
 * ```
 * @since 0.1.0
 * @category Models
 */
export const ModelPrice = Schema.Struct({
  inputPerMillion: Usd,
  outputPerMillion: Usd,
  cachedInputPerMillion: Schema.optionalWith(Usd, { exact: true }),
  cacheWriteInputPerMillion: Schema.optionalWith(Usd, { exact: true }),
  batchInputPerMillion: Schema.optionalWith(Usd, { exact: true }),
  batchOutputPerMillion: Schema.optionalWith(Usd, { exact: true }),
  contextWindow: Schema.Int.pipe(Schema.positive()),
  maxOutputTokens: Schema.Int.pipe(Schema.nonNegative()),
  dimensions: Schema.optionalWith(Schema.Int.pipe(Schema.positive()), { exact: true })
}).annotations(strict)

/**
 * @since 0.1.0
 * @category Models
 */
export type ModelPrice = typeof ModelPrice.Type

/**
 * A price table keyed by model name.
 *
 * @example
 * ```ts
 * import { Pricing } from "effect-llm-resilience"
 * const table: Pricing.PriceTable = { "my-model": { inputPerMillion: 1, outputPerMillion: 2, contextWindow: 32000, maxOutputTokens: 4096 } }
 * ```
 * @since 0.1.0
 * @category Models
 */
export const PriceTable = Schema.Record({ key: Schema.NonEmptyString, value: ModelPrice })

/**
 * @since 0.1.0
 * @category Models
 */
export type PriceTable = typeof PriceTable.Type

// OpenAI, Anthropic and Google all price their batch APIs at half the standard input and output prices.
const price = (
  inputPerMillion: number,
  outputPerMillion: number,
  contextWindow: number,
  maxOutputTokens: number,
  cachedInputPerMillion?: number
): ModelPrice => ({
  inputPerMillion,
  outputPerMillion,
  ...(cachedInputPerMillion === undefined ? {} : { cachedInputPerMillion }),
  batchInputPerMillion: inputPerMillion / 2,
  batchOutputPerMillion: outputPerMillion / 2,
  contextWindow,
  maxOutputTokens
})

// Anthropic: cache reads and 5-minute cache writes have prices of their own (reads 0.1×, writes 1.25× input, except
// Claude 3 Haiku's published $0.03 / $0.30).
const anthropic = (
  inputPerMillion: number,
  outputPerMillion: number,
  contextWindow: number,
  maxOutputTokens: number,
  cachedInputPerMillion: number,
  cacheWriteInputPerMillion: number = inputPerMillion * 1.25
): ModelPrice => ({
  ...price(inputPerMillion, outputPerMillion, contextWindow, maxOutputTokens, cachedInputPerMillion),
  cacheWriteInputPerMillion
})

// OpenAI embedding models: input only (8,191 tokens an input), the Batch API at half price.
const embedding = (inputPerMillion: number, dimensions: number): ModelPrice => ({
  ...price(inputPerMillion, 0, 8_191, 0),
  dimensions
})

/**
 * The date the prices of {@link defaultTable} were taken from the providers' published price lists.
 *
 * @example
 * ```ts
 * import { Pricing } from "effect-llm-resilience"
 * console.log(`list prices as of ${Pricing.defaultTableAsOf}`)
 * ```
 * @since 0.1.0
 * @category Models
 */
export const defaultTableAsOf = "2025-11-25"

/**
 * List prices of common OpenAI, Anthropic and Google Gemini models (USD per million tokens, as of
 * {@link defaultTableAsOf}): input, cached input (prompt-cache reads; a model without one is priced at its input
 * price), output, and the Batch API's half prices. Override them with {@link layer} when your contract differs.
 *
 * @example
 * ```ts
 * import { Pricing } from "effect-llm-resilience"
 * Pricing.defaultTable["gpt-4o-mini"].inputPerMillion // 0.15
 * ```
 * @since 0.1.0
 * @category Models
 */
export const defaultTable: PriceTable = {
  // OpenAI list prices (Standard tier). Cached input: prompt-cache reads; gpt-4-turbo, gpt-4 and gpt-3.5-turbo
  // have no prompt caching.
  "gpt-5": price(1.25, 10, 400_000, 128_000, 0.125),
  "gpt-5-mini": price(0.25, 2, 400_000, 128_000, 0.025),
  "gpt-5-nano": price(0.05, 0.4, 400_000, 128_000, 0.005),
  "gpt-4.1": price(2, 8, 1_047_576, 32_768, 0.5),
  "gpt-4.1-mini": price(0.4, 1.6, 1_047_576, 32_768, 0.1),
  "gpt-4.1-nano": price(0.1, 0.4, 1_047_576, 32_768, 0.025),
  "gpt-4o": price(2.5, 10, 128_000, 16_384, 1.25),
  "gpt-4o-mini": price(0.15, 0.6, 128_000, 16_384, 0.075),
  "gpt-4-turbo": price(10, 30, 128_000, 4_096),
  "gpt-4": price(30, 60, 8_192, 8_192),
  "gpt-3.5-turbo": price(0.5, 1.5, 16_385, 4_096),
  "o1": price(15, 60, 200_000, 100_000, 7.5),
  "o1-mini": price(1.1, 4.4, 128_000, 65_536, 0.55),
  "o3": price(2, 8, 200_000, 100_000, 0.5),
  "o3-mini": price(1.1, 4.4, 200_000, 100_000, 0.55),
  "o4-mini": price(1.1, 4.4, 200_000, 100_000, 0.275),
  // OpenAI embedding models (Standard tier; Batch API half price).
  "text-embedding-3-small": embedding(0.02, 1536),
  "text-embedding-3-large": embedding(0.13, 3072),
  "text-embedding-ada-002": embedding(0.1, 1536),
  // Anthropic list prices as of 2025-11-25 (standard tier; prompts up to 200K tokens; cached input: cache reads, a
  // tenth of input; 5-minute cache writes 1.25× input). A dated snapshot id
  // ("claude-sonnet-4-20250514") is listed beside its alias, since Anthropic's `YYYYMMDD` suffix is not a family match.
  "claude-opus-4-5": anthropic(5, 25, 200_000, 64_000, 0.5),
  "claude-opus-4-5-20251101": anthropic(5, 25, 200_000, 64_000, 0.5),
  "claude-opus-4-1": anthropic(15, 75, 200_000, 32_000, 1.5),
  "claude-opus-4-1-20250805": anthropic(15, 75, 200_000, 32_000, 1.5),
  "claude-opus-4": anthropic(15, 75, 200_000, 32_000, 1.5),
  "claude-opus-4-0": anthropic(15, 75, 200_000, 32_000, 1.5),
  "claude-opus-4-20250514": anthropic(15, 75, 200_000, 32_000, 1.5),
  "claude-sonnet-4-5": anthropic(3, 15, 200_000, 64_000, 0.3),
  "claude-sonnet-4-5-20250929": anthropic(3, 15, 200_000, 64_000, 0.3),
  "claude-sonnet-4": anthropic(3, 15, 200_000, 64_000, 0.3),
  "claude-sonnet-4-0": anthropic(3, 15, 200_000, 64_000, 0.3),
  "claude-sonnet-4-20250514": anthropic(3, 15, 200_000, 64_000, 0.3),
  "claude-haiku-4-5": anthropic(1, 5, 200_000, 64_000, 0.1),
  "claude-haiku-4-5-20251001": anthropic(1, 5, 200_000, 64_000, 0.1),
  "claude-3-7-sonnet": anthropic(3, 15, 200_000, 64_000, 0.3),
  "claude-3-7-sonnet-20250219": anthropic(3, 15, 200_000, 64_000, 0.3),
  "claude-3-5-sonnet": anthropic(3, 15, 200_000, 8_192, 0.3),
  "claude-3-5-sonnet-20241022": anthropic(3, 15, 200_000, 8_192, 0.3),
  "claude-3-5-haiku": anthropic(0.8, 4, 200_000, 8_192, 0.08),
  "claude-3-5-haiku-20241022": anthropic(0.8, 4, 200_000, 8_192, 0.08),
  "claude-3-haiku": anthropic(0.25, 1.25, 200_000, 4_096, 0.03, 0.3),
  "claude-3-haiku-20240307": anthropic(0.25, 1.25, 200_000, 4_096, 0.03, 0.3),
  // Google Gemini API list prices as of 2025-11-25 (paid tier, text, prompts up to 200K tokens; cached input: context
  // caching reads, storage not included).
  "gemini-2.5-pro": price(1.25, 10, 1_048_576, 65_536, 0.125),
  "gemini-2.5-flash": price(0.3, 2.5, 1_048_576, 65_536, 0.03),
  "gemini-2.5-flash-lite": price(0.1, 0.4, 1_048_576, 65_536, 0.01),
  "gemini-2.0-flash": price(0.1, 0.4, 1_048_576, 8_192, 0.025),
  "gemini-2.0-flash-lite": price(0.075, 0.3, 1_048_576, 8_192)
}

// A dated snapshot ("gpt-4o-2024-08-06", "gpt-4-0613") is priced as its family; anything else must match exactly.
const snapshotSuffix = /^-(\d{4}-\d{2}-\d{2}|\d{4})$/

/**
 * Finds a model's price in a table: exact name, then a dated snapshot of a known family, with an optional
 * provider prefix ("openai/gpt-4o") stripped.
 *
 * @example
 * ```ts
 * import { Pricing } from "effect-llm-resilience"
 * Pricing.find(Pricing.defaultTable, "gpt-4o-2024-08-06") // Option.some(gpt-4o's price)
 * Pricing.find(Pricing.defaultTable, "my-local-model") // Option.none()
 * ```
 * @since 0.1.0
 * @category Accessors
 */
export const find = (table: PriceTable, model: string): Option.Option<ModelPrice> => {
  // Own keys only: "constructor" or "toString" is an unknown model, not a property of Object.prototype.
  if (Object.hasOwn(table, model)) return Option.some(table[model])
  const slash = model.lastIndexOf("/")
  const name = slash >= 0 ? model.slice(slash + 1) : model
  if (Object.hasOwn(table, name)) return Option.some(table[name])
  let best: string | undefined
  for (const family of Object.keys(table)) {
    if (name.startsWith(family) && snapshotSuffix.test(name.slice(family.length))) {
      if (best === undefined || family.length > best.length) best = family
    }
  }
  return best === undefined ? Option.none() : Option.some(table[best])
}

/**
 * The USD cost of `usage` at `price`: `cachedInputTokens` at the cached-input price, the rest of the input at the
 * input price, the output (reasoning tokens included: they are a part of it) at the output price.
 *
 * @example
 * ```ts
 * import { Pricing } from "effect-llm-resilience"
 * Pricing.costOf(Pricing.defaultTable["gpt-4o"], { inputTokens: 1000, outputTokens: 500 }) // 0.0075
 * // 1024 of the 2048 prompt tokens read from the cache, at half price
 * Pricing.costOf(Pricing.defaultTable["gpt-4o"], { inputTokens: 2048, outputTokens: 0, cachedInputTokens: 1024 }) // 0.00384
 * ```
 * @since 0.1.0
 * @category Accessors
 */
export const costOf = (modelPrice: ModelPrice, usage: Usage): number => tokenUsd(modelPrice, usage) / 1_000_000

/**
 * The USD cost of `usage` at `price` through the Batch API: {@link costOf} with the batch input and output prices
 * (the cached-input price discounted as the input price is).
 *
 * @example
 * ```ts
 * import { Pricing } from "effect-llm-resilience"
 * Pricing.batchCostOf(Pricing.defaultTable["gpt-4o"], { inputTokens: 1000, outputTokens: 500 }) // 0.00375
 * ```
 * @since 0.1.0
 * @category Accessors
 */
export const batchCostOf = (modelPrice: ModelPrice, usage: Usage): number =>
  tokenUsd(modelPrice, usage, "batch") / 1_000_000

/**
 * The Pricing service: looks up prices in the configured table.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Pricing } from "effect-llm-resilience"
 * const program = Effect.gen(function* () {
 *   const pricing = yield* Pricing.Pricing
 *   return pricing.lookup("gpt-4o")
 * })
 * ```
 * @since 0.1.0
 * @category Tags
 */
export class Pricing extends Context.Tag("effect-llm-resilience/Pricing")<
  Pricing,
  {
    readonly table: PriceTable
    readonly lookup: (model: string) => Option.Option<ModelPrice>
    readonly cost: (model: string, usage: Usage) => Option.Option<number>
    /** The Batch API cost of `usage` on `model` (see {@link batchCostOf}). */
    readonly batchCost: (model: string, usage: Usage) => Option.Option<number>
  }
>() {}

const makeService = (table: PriceTable): Pricing["Type"] => ({
  table,
  lookup: (model) => find(table, model),
  cost: (model, usage) => Option.map(find(table, model), (p) => costOf(p, usage)),
  batchCost: (model, usage) => Option.map(find(table, model), (p) => batchCostOf(p, usage))
})

const defaultService = makeService(defaultTable)

/**
 * The default table, or the default table extended and overridden by `overrides` (validated: every failing
 * path is listed in the {@link InvalidOptions}, a misspelt field included).
 *
 * @example
 * ```ts
 * import { Pricing } from "effect-llm-resilience"
 * const layer = Pricing.layer({
 *   "my-vllm-model": { inputPerMillion: 0, outputPerMillion: 0, contextWindow: 32768, maxOutputTokens: 4096 }
 * })
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layer = (overrides: { readonly [model: string]: ModelPrice } = {}): Layer.Layer<Pricing, InvalidOptions> =>
  Layer.effect(
    Pricing,
    Either.match(decode(PriceTable, "Pricing", overrides), {
      onLeft: (error) => Effect.fail(error),
      onRight: (table) => Effect.succeed(makeService({ ...defaultTable, ...table }))
    })
  )

/**
 * The `Pricing` in context, or the default table when none is provided.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Pricing } from "effect-llm-resilience"
 * const window = Pricing.current.pipe(Effect.map((p) => p.lookup("gpt-4o")))
 * ```
 * @since 0.1.0
 * @category Accessors
 */
export const current: Effect.Effect<Pricing["Type"]> = Effect.map(
  Effect.serviceOption(Pricing),
  Option.getOrElse(() => defaultService)
)

/**
 * The USD cost of `usage` on `model`, or `Option.none()` when the model is not in the table.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Pricing } from "effect-llm-resilience"
 * const usd = Pricing.cost("gpt-4o-mini", { inputTokens: 1_000_000, outputTokens: 0 }) // Effect<Option.some(0.15)>
 * ```
 * @since 0.1.0
 * @category Accessors
 */
export const cost = (model: string, usage: Usage): Effect.Effect<Option.Option<number>> =>
  Effect.map(current, (pricing) => pricing.cost(model, usage))

/**
 * The Batch API USD cost of `usage` on `model`, or `Option.none()` when the model is not in the table.
 *
 * @example
 * ```ts
 * import { Pricing } from "effect-llm-resilience"
 * const usd = Pricing.batchCost("gpt-4o-mini", { inputTokens: 1_000_000, outputTokens: 0 }) // Effect<Option.some(0.075)>
 * ```
 * @since 0.1.0
 * @category Accessors
 */
export const batchCost = (model: string, usage: Usage): Effect.Effect<Option.Option<number>> =>
  Effect.map(current, (pricing) => pricing.batchCost(model, usage))

/**
 * A model's price entry (context window, max output tokens), or `Option.none()` when unknown.
 *
 * @example
 * ```ts
 * import { Pricing } from "effect-llm-resilience"
 * const entry = Pricing.lookup("gpt-4.1")
 * ```
 * @since 0.1.0
 * @category Accessors
 */
export const lookup = (model: string): Effect.Effect<Option.Option<ModelPrice>> =>
  Effect.map(current, (pricing) => pricing.lookup(model))
