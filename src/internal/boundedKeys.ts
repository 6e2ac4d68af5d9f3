/**
 * Bounded per-key state for the in-memory stores (budget ledgers, breakers, bulkhead compartments, rate limits, …).
 *
 * Two rules keep memory bounded however many distinct keys (users, tenants) a process sees:
 * 1. a key whose state is back to the fresh state is dropped at once (`release`): nothing is lost, the next use
 *    starts from the fresh state anyway;
 * 2. the rest is capped by a least-recently-used bound: past `capacity` keys, the key used longest ago goes. That one
 *    holds live state (usage, an open breaker): its eviction is counted in `llm_state_evictions_total{store}`, so an
 *    operator sees that the bound is too small for the traffic (and that the Redis stores are the right tool).
 *
 * Access moves a key to the most-recent end (a delete and a set on a `Map`, which keeps insertion order).
 */
import { MetricLabel, Schema } from "effect"
import * as LlmMetrics from "../LlmMetrics.js"
import { strict } from "./optionSchemas.js"

/** The default cap of every in-memory store's keys. */
export const DEFAULT_MAX_KEYS = 100_000

/** The options every bounded memory store takes (`{ maxKeys? }`), misspelt keys refused. */
export const StoreMemoryOptions = Schema.Struct({ maxKeys: Schema.optional(Schema.Int.pipe(Schema.positive())) })
  .annotations(strict)

export class BoundedKeys<S> {
  private readonly map = new Map<string, S>()
  private readonly labels: ReadonlyArray<MetricLabel.MetricLabel>

  constructor(readonly store: string, readonly capacity: number = DEFAULT_MAX_KEYS) {
    this.labels = [MetricLabel.make("store", store)]
  }

  get size(): number {
    return this.map.size
  }

  /** The key's state, marked as most recently used. */
  get(key: string): S | undefined {
    const state = this.map.get(key)
    if (state !== undefined) {
      this.map.delete(key)
      this.map.set(key, state)
    }
    return state
  }

  /** The key's state without touching its recency. */
  peek(key: string): S | undefined {
    return this.map.get(key)
  }

  /** Stores a key's state as most recently used, evicting the least recently used key past the capacity. */
  set(key: string, state: S): void {
    if (this.map.has(key)) this.map.delete(key)
    this.map.set(key, state)
    if (this.map.size > this.capacity) this.evictOldest()
  }

  /** Drops a key (its state is fresh again). */
  release(key: string): void {
    this.map.delete(key)
  }

  /** Drops every key whose state `isGone` says can go (a sweep of expired state). */
  sweep(isGone: (state: S) => boolean): void {
    for (const [key, state] of this.map) if (isGone(state)) this.map.delete(key)
  }

  values(): IterableIterator<S> {
    return this.map.values()
  }

  clear(): void {
    this.map.clear()
  }

  private evictOldest(): void {
    const oldest = this.map.keys().next()
    if (oldest.done === true) return
    this.map.delete(oldest.value)
    LlmMetrics.stateEvictions.unsafeUpdate(1, this.labels)
  }
}
