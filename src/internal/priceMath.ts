/**
 * The one formula every USD figure uses (cost metrics, budgets, batch cost): prompt tokens read from the cache at
 * the cached-input price, prompt tokens written to the cache at the cache-write price, the rest of the prompt at the
 * input price, the completion (reasoning included: it is a
 * part of the output) at the output price. The Batch API's discount applies to each of them.
 */
import type { Usage } from "../Llm.js"

/** The price fields the formula reads (a `Pricing.ModelPrice`). */
export interface Prices {
  readonly inputPerMillion: number
  readonly outputPerMillion: number
  readonly cachedInputPerMillion?: number | undefined
  readonly cacheWriteInputPerMillion?: number | undefined
  readonly batchInputPerMillion?: number | undefined
  readonly batchOutputPerMillion?: number | undefined
}

/** Which prices: the standard (synchronous) ones or the Batch API's. */
export type Tier = "standard" | "batch"

/** The four per-million prices that apply in `tier`. */
export const pricesOf = (price: Prices, tier: Tier): {
  readonly input: number
  readonly cached: number
  readonly cacheWrite: number
  readonly output: number
} => {
  const cached = price.cachedInputPerMillion ?? price.inputPerMillion
  const cacheWrite = price.cacheWriteInputPerMillion ?? price.inputPerMillion
  if (tier === "standard") return { input: price.inputPerMillion, cached, cacheWrite, output: price.outputPerMillion }
  const input = price.batchInputPerMillion ?? price.inputPerMillion
  // The batch discount stacks on the cache prices (OpenAI's and Anthropic's rule): scaled as the input price is.
  const scale = price.inputPerMillion > 0 ? input / price.inputPerMillion : 1
  return { input, cached: cached * scale, cacheWrite: cacheWrite * scale, output: price.batchOutputPerMillion ?? price.outputPerMillion }
}

/**
 * Σ tokens × USD-per-million of `usage` (divide by 10^6 for USD). Cached and cache-write counts are parts of the
 * input: capped by it, reads first.
 */
export const tokenUsd = (price: Prices, usage: Usage, tier: Tier = "standard"): number => {
  const p = pricesOf(price, tier)
  const cached = Math.min(usage.cachedInputTokens ?? 0, usage.inputTokens)
  const written = Math.min(usage.cacheWriteInputTokens ?? 0, usage.inputTokens - cached)
  return (usage.inputTokens - cached - written) * p.input + cached * p.cached + written * p.cacheWrite +
    usage.outputTokens * p.output
}
