/**
 * What the overhead and throughput benchmarks both measure, defined once: the answer every provider gives, cockatiel's
 * three-policy stack, and the full Pipeline's options (so the two benchmarks compare the same stacks).
 */
import { ConsecutiveBreaker, ExponentialBackoff, circuitBreaker, handleAll, retry, timeout, TimeoutStrategy, wrap } from "cockatiel"
import { Llm, type Pipeline } from "../src/index.js"

/** The answer of every benchmark provider. */
export const response = new Llm.ChatResponse({
  id: "1",
  model: "gpt-4o-mini",
  content: "ok",
  finishReason: "stop",
  usage: { inputTokens: 1, outputTokens: 1 },
  servedFrom: "provider"
})

/** For the `stream` of a provider the benchmarks never stream from. */
export const notUsed = (): never => {
  throw new Error("not used")
}

/** cockatiel's `wrap(retry, breaker, timeout)`, configured to do the work of Retry + CircuitBreaker + Timeout. */
export const cockatielStack = () =>
  wrap(
    retry(handleAll, { maxAttempts: 3, backoff: new ExponentialBackoff() }),
    circuitBreaker(handleAll, { halfOpenAfter: 30_000, breaker: new ConsecutiveBreaker(5) }),
    timeout(30_000, TimeoutStrategy.Cooperative)
  )

/**
 * The full Pipeline, every pattern that applies to one completion in memory: a response cache, a per-user daily token
 * budget, a fallback model, retries, a breaker and an attempt timeout.
 */
export const pipelineOptions = {
  cache: { ttl: "1 hour" },
  budgets: [{ scope: "user", limit: { tokens: 1e12 }, period: "day" }],
  fallback: { models: [{ model: "gpt-4o" }] },
  retry: { maxRetries: 3 },
  breaker: { per: "model" },
  timeout: { attempt: "30 seconds" }
} as const satisfies Pipeline.Options
