/**
 * Exactly-once upstream calls per idempotency key. The first call with a key runs; its final outcome (a success, or a
 * failure that answers the request itself: `BadRequest`, `ContextTooLong`, `ContentFiltered`) is stored and replayed
 * to every later call with that key (`servedFrom: "idempotency"`). Retryable failures, defects, interruptions and
 * passing states (an open circuit, a spent budget, …) release the key instead. A concurrent duplicate waits for the running call (or is refused with `onInFlight: "reject"`); the
 * same explicit key with a different request fails with `IdempotencyConflict { reason: "payload-mismatch" }`.
 *
 * The key is `request.idempotencyKey` when given, else derived from the request's canonical hash; both are scoped by
 * the request's `user` (tenant) and hashed, so neither a key nor a user id appears in clear in the store.
 *
 * ```ts
 * const Live = LlmClient.layerWith(Idempotency.policy({ ttl: "24 hours" })).pipe(
 *   Layer.provide(OpenAi.layerConfig()),
 *   Layer.provide(Idempotency.layerStoreMemory)
 * )
 * ```
 *
 * @since 0.1.0
 */
import { Context, Duration, Effect, Layer, Schema } from "effect"
import * as internal from "./internal/idempotency.js"
import { defaultScope } from "./internal/requestKey.js"
import { FiniteDuration, strict } from "./internal/optionSchemas.js"
import { decode, type InvalidOptions } from "./InvalidOptions.js"
import type { ChatRequest } from "./Llm.js"
import type { Policy } from "./LlmClient.js"

/**
 * Options of {@link policy}.
 *
 * @example
 * ```ts
 * import { Idempotency } from "effect-llm-resilience"
 * const options: Idempotency.Options = { ttl: "24 hours", onInFlight: "reject", requireKey: true }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Options {
  /** How long a final outcome is replayed (positive and finite). Defaults to "24 hours". */
  readonly ttl?: Duration.DurationInput | undefined
  /**
   * What a duplicate does while the first call runs: "wait" shares its outcome, "reject" fails at once with
   * `IdempotencyConflict { reason: "in-flight" }`. Defaults to "wait".
   */
  readonly onInFlight?: "wait" | "reject" | undefined
  /**
   * How long a claim blocks duplicates when its holder never settles it (the process died); positive and finite.
   * Defaults to "10 minutes"; keep it above your longest call.
   */
  readonly lease?: Duration.DurationInput | undefined
  /**
   * With "wait", how often a duplicate re-checks a claim held by another process (a claim held in this process
   * wakes it at once); positive and finite. Defaults to "500 millis".
   */
  readonly pollInterval?: Duration.DurationInput | undefined
  /**
   * Names the tenant of a request; it is hashed into every key. Defaults to `user:<request.user>`, or
   * `"anonymous"` when the request has no `user`.
   */
  readonly scope?: ((request: ChatRequest) => string) | undefined
  /**
   * Only deduplicate requests that carry an `idempotencyKey` (others pass through). Defaults to false: a request
   * without a key gets one derived from its scope and canonical hash, so an identical request within `ttl` replays.
   */
  readonly requireKey?: boolean | undefined
}

// Every store entry expires (a shared store keeps nothing forever), and a zero poll interval would spin.
const PositiveFiniteDuration = FiniteDuration.pipe(
  Schema.filter((d) => Duration.greaterThan(d, Duration.zero) || "Expected a positive, finite duration")
)

const OptionsSchema = Schema.Struct({
  ttl: Schema.optionalWith(PositiveFiniteDuration, { default: () => Duration.hours(24) }),
  onInFlight: Schema.optionalWith(Schema.Literal("wait", "reject"), { default: () => "wait" as const }),
  lease: Schema.optionalWith(PositiveFiniteDuration, { default: () => Duration.minutes(10) }),
  pollInterval: Schema.optionalWith(PositiveFiniteDuration, { default: () => Duration.millis(500) }),
  scope: Schema.optional(
    Schema.declare((u: unknown): u is (request: ChatRequest) => string => typeof u === "function", {
      identifier: "ScopeFunction",
      description: "a function"
    })
  ),
  requireKey: Schema.optionalWith(Schema.Boolean, { default: () => false })
}).annotations(strict)

const StoreOptionsSchema = Schema.Struct({
  capacity: Schema.optionalWith(Schema.Int.pipe(Schema.greaterThanOrEqualTo(1)), { default: () => internal.DEFAULT_CAPACITY })
}).annotations(strict)

/**
 * What a store holds for a settled key: the request fingerprint and the outcome as an encoded `Exit` (plain JSON,
 * so another process can decode it).
 *
 * @example
 * ```ts
 * import { Idempotency } from "effect-llm-resilience"
 * const isSuccess = (record: Idempotency.StoredRecord) => record.exit._tag === "Success"
 * ```
 * @since 0.1.0
 * @category Models
 */
export type StoredRecord = internal.StoredRecord

/**
 * The schema of a {@link StoredRecord}: `{ fingerprint, exit: Exit<ChatResponse fields, LlmError> }`.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { Idempotency } from "effect-llm-resilience"
 * const decodeRecord = Schema.decodeUnknownSync(Idempotency.StoredRecord)
 * ```
 * @since 0.1.0
 * @category Models
 */
export const StoredRecord = internal.RecordSchema

/**
 * The answer of an atomic {@link Store.claim}: the caller now holds the key (`Claimed`), another caller does
 * (`InFlight`), the key is settled (`Completed` with its record), or it was claimed with another fingerprint
 * (`Mismatch`).
 *
 * @example
 * ```ts
 * import { Idempotency } from "effect-llm-resilience"
 * const describe = (r: Idempotency.ClaimResult) => r._tag
 * ```
 * @since 0.1.0
 * @category Models
 */
export type ClaimResult = internal.ClaimResult

/**
 * The state of a key as {@link Store.get} reads it.
 *
 * @example
 * ```ts
 * import { Idempotency } from "effect-llm-resilience"
 * const settled = (e: Idempotency.Entry) => e._tag === "Completed"
 * ```
 * @since 0.1.0
 * @category Models
 */
export type Entry = internal.Entry

/**
 * The narrow, atomic contract an idempotency store implements; one method is one atomic operation. Times and TTLs
 * are milliseconds from the Effect clock, passed in so a shared store (Redis) uses the caller's clock.
 *
 * Every claim carries its caller's `owner` token (the policy makes a fresh random one per claim): `complete` and
 * `release` act only while the key is still that owner's claim, so a caller whose lease expired and whose key another
 * caller has claimed since can neither erase nor overwrite that caller's claim or record; they then do nothing and
 * answer `false`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Idempotency } from "effect-llm-resilience"
 * const peek = (key: string) => Effect.flatMap(Idempotency.IdempotencyStore, (store) => store.get(key, 0))
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Store extends internal.Store {}

/**
 * The store Tag the idempotency policy requires: provide {@link layerStoreMemory}, or a shared (Redis) store.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Idempotency } from "effect-llm-resilience"
 * const forget = (key: string, owner: string) =>
 *   Effect.flatMap(Idempotency.IdempotencyStore, (store) => store.release(key, owner))
 * ```
 * @since 0.1.0
 * @category Tags
 */
export class IdempotencyStore extends Context.Tag("effect-llm-resilience/IdempotencyStore")<
  IdempotencyStore,
  Store
>() {}

/**
 * A fresh in-memory store. Beyond `capacity` entries (an integer ≥ 1, defaults to 10,000) the oldest settled or
 * expired entry is evicted; a live claim never is. A bad or misspelt option fails the Effect with `InvalidOptions`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Idempotency } from "effect-llm-resilience"
 * const program = Effect.flatMap(Idempotency.makeStoreMemory(), (store) => store.claim("k", "fp", 0, 60_000, "owner-1"))
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const makeStoreMemory = (
  options?: { readonly capacity?: number | undefined }
): Effect.Effect<Store, InvalidOptions> =>
  Effect.map(decode(StoreOptionsSchema, "Idempotency.makeStoreMemory", options ?? {}), ({ capacity }) =>
    internal.makeMemoryStore(capacity))

/**
 * The in-memory store as a layer (one store per layer build, capacity 10,000; for another capacity use
 * `Layer.effect(IdempotencyStore, makeStoreMemory({ capacity }))`).
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { FakeLlm, Idempotency, LlmClient } from "effect-llm-resilience"
 * const Live = LlmClient.layerWith(Idempotency.policy()).pipe(
 *   Layer.provide(FakeLlm.layer(FakeLlm.reply("ok"))),
 *   Layer.provide(Idempotency.layerStoreMemory)
 * )
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layerStoreMemory: Layer.Layer<IdempotencyStore> = Layer.sync(
  IdempotencyStore,
  () => internal.makeMemoryStore(internal.DEFAULT_CAPACITY)
)

/**
 * A built idempotency policy, with its key function and the number of upstream calls it is running.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Idempotency } from "effect-llm-resilience"
 * const program = Effect.gen(function* () {
 *   const idempotency = yield* Idempotency.policy()
 *   return yield* idempotency.inFlight
 * }).pipe(Effect.provide(Idempotency.layerStoreMemory))
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface IdempotencyPolicy extends Policy {
  /** The store key and fingerprint of a request under this policy's scope function. */
  readonly keyOf: (request: ChatRequest) => { readonly key: string; readonly fingerprint: string }
  readonly inFlight: Effect.Effect<number>
}

/**
 * The store key and fingerprint of a request: `llm-idem:v1:<scope hash>:k:<key hash>` for an explicit
 * `idempotencyKey`, `llm-idem:v1:<scope hash>:r:<request hash>` otherwise; the fingerprint is the request hash.
 *
 * @example
 * ```ts
 * import { Idempotency, Llm } from "effect-llm-resilience"
 * const request = new Llm.ChatRequest({
 *   model: "gpt-4o", messages: [{ role: "user", content: "refund order 42" }], user: "u1", idempotencyKey: "order-42"
 * })
 * Idempotency.keyOf(request).key // "llm-idem:v1:…:k:…"
 * ```
 * @since 0.1.0
 * @category Accessors
 */
export const keyOf = (
  request: ChatRequest,
  options?: { readonly scope?: ((request: ChatRequest) => string) | undefined }
): { readonly key: string; readonly fingerprint: string } => {
  const { key, fingerprint } = internal.identityOf(options?.scope ?? defaultScope, request)
  return { key, fingerprint }
}

/**
 * The idempotency policy over the `IdempotencyStore` in context. Fails with `InvalidOptions` listing every bad
 * option.
 *
 * Across processes, the claim lives in the store: a duplicate in another process sees it as in flight and, with
 * "wait", polls the store every `pollInterval` until the outcome is recorded (or the claim is released or its lease
 * expires, and it runs the call itself); with "reject" it fails at once.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { FakeLlm, Idempotency, LlmClient } from "effect-llm-resilience"
 * const Live = LlmClient.layerWith(Idempotency.policy({ ttl: "24 hours", onInFlight: "wait" })).pipe(
 *   Layer.provide(FakeLlm.layer(FakeLlm.reply("done"))),
 *   Layer.provide(Idempotency.layerStoreMemory)
 * )
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const policy = (options: Options = {}): Effect.Effect<IdempotencyPolicy, InvalidOptions, IdempotencyStore> =>
  Effect.gen(function* () {
    const decoded = yield* decode(OptionsSchema, "Idempotency", options)
    const store = yield* IdempotencyStore
    const engine = internal.make(store, { ...decoded, scope: decoded.scope ?? defaultScope })
    return {
      name: "Idempotency",
      complete: engine.complete,
      stream: engine.stream,
      keyOf: (request) => {
        const { key, fingerprint } = engine.identify(request)
        return { key, fingerprint }
      },
      inFlight: engine.inFlight
    }
  })
