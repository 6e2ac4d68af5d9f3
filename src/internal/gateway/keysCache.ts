/**
 * A short in-process cache in front of any `KeyStore` for authentication: each replica asks its store (Redis, say)
 * about a key at most once per `ttl`, so a revocation made anywhere takes effect everywhere within `ttl` (at once in
 * the replica that revoked). Unknown keys are remembered too, for the shorter `missTtl`, so a client retrying a bad
 * key does not reach the store on every request.
 *
 * Hits and misses are two separate least-recently-used maps of `capacity` entries each: a flood of distinct unknown
 * keys only evicts other misses, never the keys in use. Concurrent lookups of one key share one store call. A failed
 * lookup is not cached. Expiry and revocation times are still checked against `now` on every request (by
 * `authenticate`), so a cached key stops working at its `expiresAt` exactly. Time is the Effect clock.
 */
import { Clock, Duration, Effect, Either, Exit, Layer, Option, Schema } from "effect"
import { decode, type InvalidOptions } from "../../InvalidOptions.js"
import { DurationInput } from "../durationInput.js"
import { strict } from "../optionSchemas.js"
import * as SingleFlight from "../singleFlight.js"
import { type KeyRecord, KeyStore, type KeyStoreError, type KeyStoreService } from "./keys.js"

/** Options of {@link cached}. */
export interface CacheOptions {
  /** How long a known key (revoked or not) is served from the cache. Defaults to "5 seconds"; 0 switches it off. */
  readonly ttl?: Duration.DurationInput | undefined
  /** How long an unknown key is remembered as unknown. Defaults to "1 second"; 0 switches it off. */
  readonly missTtl?: Duration.DurationInput | undefined
  /** Entries of each map (known keys, unknown keys). Defaults to 10,000. */
  readonly capacity?: number | undefined
}

/** The defaults of {@link CacheOptions}. */
export const defaults = { ttl: Duration.seconds(5), missTtl: Duration.seconds(1), capacity: 10_000 } as const

const Finite = DurationInput.pipe(Schema.filter((d) => Duration.isFinite(d) || "Expected a finite duration"))

const OptionsSchema = Schema.Struct({
  ttl: Schema.optional(Finite),
  missTtl: Schema.optional(Finite),
  capacity: Schema.optional(Schema.Int.pipe(Schema.filter((n) => n >= 1 || `Expected an integer ≥ 1, actual ${n}`)))
}).annotations(strict)

/** A least-recently-used map of at most `capacity` entries, each with its expiry (epoch ms). */
const lru = <A>(capacity: number) => {
  const entries = new Map<string, { readonly value: A; readonly expiresAt: number }>()
  return {
    get: (key: string, now: number): Option.Option<A> => {
      const entry = entries.get(key)
      if (entry === undefined) return Option.none()
      entries.delete(key)
      if (entry.expiresAt <= now) return Option.none()
      entries.set(key, entry)
      return Option.some(entry.value)
    },
    set: (key: string, value: A, expiresAt: number): void => {
      entries.delete(key)
      entries.set(key, { value, expiresAt })
      while (entries.size > capacity) entries.delete(entries.keys().next().value as string)
    },
    delete: (key: string): void => void entries.delete(key),
    deleteWhere: (f: (value: A) => boolean): void => {
      for (const [key, entry] of entries) if (f(entry.value)) entries.delete(key)
    }
  }
}

/**
 * `store` with a cache in front of `get` (see the module's doc). `put` and `revoke` go to the store and drop what the
 * cache held for that key; `list` goes to the store. Bad options fail with `InvalidOptions`, every bad path listed.
 */
export const cached = (
  store: KeyStoreService,
  options: CacheOptions = {}
): Effect.Effect<KeyStoreService, InvalidOptions> =>
  Either.match(decode(OptionsSchema, "Gateway key cache", options), {
    onLeft: Effect.fail,
    onRight: (o) => Effect.sync(() => make(store, {
      ttlMs: Duration.toMillis(o.ttl ?? defaults.ttl),
      missTtlMs: Duration.toMillis(o.missTtl ?? defaults.missTtl),
      capacity: o.capacity ?? defaults.capacity
    }))
  })

const make = (
  store: KeyStoreService,
  { capacity, missTtlMs, ttlMs }: { readonly ttlMs: number; readonly missTtlMs: number; readonly capacity: number }
): KeyStoreService => {
  const hits = lru<KeyRecord>(capacity)
  const misses = lru<true>(capacity)
  const flights = SingleFlight.make<Exit.Exit<Option.Option<KeyRecord>, KeyStoreError>, undefined>()

  const remember = (hash: string, found: Option.Option<KeyRecord>) =>
    Effect.map(Clock.currentTimeMillis, (now) => {
      if (Option.isSome(found)) {
        misses.delete(hash)
        if (ttlMs > 0) hits.set(hash, found.value, now + ttlMs)
      } else {
        hits.delete(hash)
        if (missTtlMs > 0) misses.set(hash, true, now + missTtlMs)
      }
    })

  const lookup = (hash: string) =>
    Effect.exit(Effect.tap(store.get(hash), (found) => remember(hash, found)))

  const get = (hash: string): Effect.Effect<Option.Option<KeyRecord>, KeyStoreError> =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const hit = hits.get(hash, now)
      if (Option.isSome(hit)) return Effect.succeed(hit)
      if (Option.isSome(misses.get(hash, now))) return Effect.succeed(Option.none())
      return Effect.flatten(Effect.map(flights.run(hash, undefined, lookup(hash)), (joined) => joined.value))
    })

  return {
    get,
    put: (record) =>
      Effect.tap(store.put(record), () => Effect.sync(() => (misses.delete(record.hash), hits.delete(record.hash)))),
    list: store.list,
    revoke: (id, now) => Effect.tap(store.revoke(id, now), () => Effect.sync(() => hits.deleteWhere((r) => r.id === id)))
  }
}

/**
 * The `KeyStore` in context with the cache in front (see {@link cached}): `layerCached(options).pipe(Layer.provide(
 * store))`.
 */
export const layerCached = (options: CacheOptions = {}): Layer.Layer<KeyStore, InvalidOptions, KeyStore> =>
  Layer.effect(KeyStore, Effect.flatMap(KeyStore, (store) => cached(store, options)))
