/**
 * The naive baseline: a literal TypeScript rendering of the ten patterns as commonly written (plain retry loop,
 * Promise.race timeout, sequential fallback, a mutable circuit breaker, check-then-increment budget, a cache keyed
 * on model + prompt). The demo and the benchmarks compare the library against it. It is deliberately kept as
 * written: its bugs (no Retry-After, retries on every error, SDK retries nested inside, racy budget, cross-user cache)
 * are what the library fixes.
 */
import OpenAI from "openai"

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Pattern 1: retries with exponential backoff (1 s, 2 s, 4 s, plus 0–1 s jitter), any error but "validation". */
export async function callLlmWithRetry(
  client: OpenAI,
  model: string,
  prompt: string,
  maxRetries = 3,
  baseDelay = 1.0
): Promise<string> {
  for (let attempt = 0; attempt < maxRetries; attempt++) {
    try {
      const response = await client.chat.completions.create({
        model,
        messages: [{ role: "user", content: prompt }]
      })
      return response.choices[0].message.content ?? ""
    } catch (e) {
      if (String(e).toLowerCase().includes("validation")) throw e
      if (attempt === maxRetries - 1) throw e
      let delay = baseDelay * 2 ** attempt
      delay += Math.random()
      await sleep(delay * 1000)
    }
  }
  throw new Error("unreachable")
}

/** Pattern 2: a timeout that races the call (the HTTP request is not aborted). */
export async function callLlmWithTimeout(
  client: OpenAI,
  model: string,
  prompt: string,
  timeoutSeconds = 30.0
): Promise<string> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error("Request timed out")), timeoutSeconds * 1000)
  })
  try {
    const response = await Promise.race([
      client.chat.completions.create({ model, messages: [{ role: "user", content: prompt }] }),
      timeout
    ])
    return response.choices[0].message.content ?? ""
  } finally {
    clearTimeout(timer)
  }
}

/** Pattern 3: fallback models, each retried twice with 1 s, 2 s sleeps. */
export async function callLlmWithFallback(
  client: OpenAI,
  prompt: string,
  primaryModel = "gpt-4",
  fallbackModel = "gpt-3.5-turbo",
  maxRetries = 2,
  sleepScale = 1
): Promise<[string, string]> {
  for (const model of [primaryModel, fallbackModel]) {
    for (let attempt = 0; attempt < maxRetries; attempt++) {
      try {
        const response = await client.chat.completions.create(
          { model, messages: [{ role: "user", content: prompt }] },
          { timeout: 30_000 }
        )
        return [response.choices[0].message.content ?? "", model]
      } catch {
        if (attempt === maxRetries - 1) break
        await sleep(2 ** attempt * 1000 * sleepScale)
      }
    }
  }
  throw new Error("All models failed")
}

/** Pattern 4: a circuit breaker with mutable state (half-open admits every concurrent caller). */
export class NaiveCircuitBreaker {
  state: "closed" | "open" | "half_open" = "closed"
  failureCount = 0
  lastFailureTime = 0
  constructor(readonly failureThreshold = 5, readonly timeoutSeconds = 60) {}

  async call<A>(fn: () => Promise<A>): Promise<A> {
    if (this.state === "open") {
      if (Date.now() > this.lastFailureTime + this.timeoutSeconds * 1000) {
        this.state = "half_open"
        this.failureCount = 0
      } else {
        throw new Error("Circuit breaker is open. Service unavailable.")
      }
    }
    try {
      const result = await fn()
      this.failureCount = 0
      this.state = "closed"
      return result
    } catch (e) {
      this.failureCount += 1
      this.lastFailureTime = Date.now()
      if (this.failureCount >= this.failureThreshold) this.state = "open"
      throw e
    }
  }
}

/** Pattern 6: a token budget that checks, then calls, then records (concurrent calls overshoot it). */
export class NaiveTokenBudget {
  tokensUsed = 0
  constructor(readonly monthlyBudget = 1_000_000) {}
  checkBudget(promptTokens: number, maxOutputTokens: number): boolean {
    return this.tokensUsed + promptTokens + maxOutputTokens <= this.monthlyBudget
  }
  recordUsage(promptTokens: number, completionTokens: number): void {
    this.tokensUsed += promptTokens + completionTokens
  }
}

/** Pattern 8: an LRU cache keyed on model + prompt only (shared across users). */
export function makeCachedLlmCall(client: OpenAI, maxSize = 1000) {
  const cache = new Map<string, string>()
  return async (model: string, prompt: string): Promise<string> => {
    const key = `${model}\u0000${prompt}`
    const hit = cache.get(key)
    if (hit !== undefined) {
      cache.delete(key)
      cache.set(key, hit)
      return hit
    }
    const response = await client.chat.completions.create({ model, messages: [{ role: "user", content: prompt }] })
    const text = response.choices[0].message.content ?? ""
    cache.set(key, text)
    if (cache.size > maxSize) cache.delete(cache.keys().next().value as string)
    return text
  }
}
