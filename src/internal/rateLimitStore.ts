/**
 * An in-memory `RateLimiterStore` with the same algorithms as `@effect/experimental`'s `layerStoreMemory`, but
 * bounded: a key whose token bucket has refilled completely (or whose fixed window has ended) holds no state a fresh
 * key would not, so it is forgotten. Keys keyed by user would otherwise accumulate for the life of the process. Live
 * keys are capped too: past 100,000 (each map) the least recently used key goes, counted in
 * `llm_state_evictions_total{store="rate-limit"}`.
 */
import { RateLimiterStore } from "@effect/experimental/RateLimiter"
import { Duration, Effect } from "effect"
import { BoundedKeys } from "./boundedKeys.js"

interface Bucket {
  tokens: number
  lastRefill: number
  limit: number
  refillRateMillis: number
}

interface Counter {
  count: number
  expiresAt: number
}

/** Sweeps run when the maps have doubled since the last sweep (at least this many keys): amortised O(1). */
const MIN_SWEEP_SIZE = 1024

/** A bounded memory store and, for tests, the number of keys it currently holds. */
export const makeMemoryStore = (): {
  readonly store: RateLimiterStore["Type"]
  readonly size: () => number
} => {
  const buckets = new BoundedKeys<Bucket>("rate-limit")
  const counters = new BoundedKeys<Counter>("rate-limit")
  let sweepAt = MIN_SWEEP_SIZE

  const refill = (bucket: Bucket, now: number): void => {
    const added = Math.floor((now - bucket.lastRefill) / bucket.refillRateMillis)
    if (added > 0) {
      bucket.tokens = Math.min(bucket.limit, bucket.tokens + added)
      bucket.lastRefill += added * bucket.refillRateMillis
    }
  }

  const sweep = (now: number): void => {
    if (buckets.size + counters.size < sweepAt) return
    buckets.sweep((bucket) => {
      refill(bucket, now)
      return bucket.tokens >= bucket.limit
    })
    counters.sweep((counter) => counter.expiresAt <= now)
    sweepAt = Math.max(MIN_SWEEP_SIZE, 2 * (buckets.size + counters.size))
  }

  const store: RateLimiterStore["Type"] = {
    fixedWindow: (options) =>
      Effect.clockWith((clock) =>
        Effect.sync(() => {
          const now = clock.unsafeCurrentTimeMillis()
          sweep(now)
          const refillRateMillis = Duration.toMillis(options.refillRate)
          let counter = counters.get(options.key)
          if (counter === undefined || counter.expiresAt <= now) {
            counter = { count: 0, expiresAt: now }
            counters.set(options.key, counter)
          }
          if (options.limit !== undefined && counter.count + options.tokens > options.limit) {
            return [counter.count + options.tokens, counter.expiresAt - now] as const
          }
          counter.count += options.tokens
          counter.expiresAt += refillRateMillis * options.tokens
          return [counter.count, counter.expiresAt - now] as const
        })
      ),
    tokenBucket: (options) =>
      Effect.clockWith((clock) =>
        Effect.sync(() => {
          const now = clock.unsafeCurrentTimeMillis()
          sweep(now)
          const refillRateMillis = Duration.toMillis(options.refillRate)
          let bucket = buckets.get(options.key)
          if (bucket === undefined) {
            bucket = { tokens: options.limit, lastRefill: now, limit: options.limit, refillRateMillis }
            buckets.set(options.key, bucket)
          } else {
            bucket.limit = options.limit
            bucket.refillRateMillis = refillRateMillis
            refill(bucket, now)
          }
          const after = bucket.tokens - options.tokens
          // Negative `tokens` give tokens back; a bucket never holds more than its limit.
          if (options.allowOverflow || after >= 0) bucket.tokens = Math.min(bucket.limit, after)
          if (bucket.tokens >= bucket.limit) buckets.release(options.key)
          return after
        })
      )
  }
  return { store, size: () => buckets.size + counters.size }
}
