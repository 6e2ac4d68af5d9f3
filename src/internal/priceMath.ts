/**
 * The one formula every USD figure uses (cost metrics, budgets, batch cost): prompt tokens read from the cache at
 * the cached-input price, the rest of the prompt at the input price, the completion (reasoning included: it is a
 * part of the output) at the output price. The Batch API's discount applies to each of them.
 */
import type { Usage } from "../Llm.js"

/** The price fields the formula reads (a `Pricing.ModelPrice`). */
export interface Prices {
  readonly inputPerMillion: number
  readonly outputPerMillion: number
  readonly cachedInputPerMillion?: number | undefined
  readonly batchInputPerMillion?: number | undefined
  readonly batchOutputPerMillion?: number | undefined
}

/** Which prices: the standard (synchronous) ones or the Batch API's. */
export type Tier = "standard" | "batch"

/** The three per-million prices that apply in `tier`. */
export const pricesOf = (price: Prices, tier: Tier): { readonly input: number; readonly cached: number; readonly output: number } => {
  const cached = price.cachedInputPerMillion ?? price.inputPerMillion
  if (tier === "standard") return { input: price.inputPerMillion, cached, output: price.outputPerMillion }
  const input = price.batchInputPerMillion ?? price.inputPerMillion
  // The batch discount stacks on the cache discount (OpenAI's rule): the cached price scaled as the input price is.
  const scaled = price.inputPerMillion > 0 ? cached * (input / price.inputPerMillion) : cached
  return { input, cached: scaled, output: price.batchOutputPerMillion ?? price.outputPerMillion }
}

/** Σ tokens × USD-per-million of `usage` (divide by 10^6 for USD). A cached count above the input is capped. */
export const tokenUsd = (price: Prices, usage: Usage, tier: Tier = "standard"): number => {
  const p = pricesOf(price, tier)
  const cached = Math.min(usage.cachedInputTokens ?? 0, usage.inputTokens)
  return (usage.inputTokens - cached) * p.input + cached * p.cached + usage.outputTokens * p.output
}
