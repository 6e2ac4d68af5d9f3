/**
 * The idempotency engine: in-process coalescing (waiters share one upstream fiber, ref-counted), an atomic claim in
 * the store (so another process sees "in-flight"), and encoded outcome records replayed to later callers.
 * The public module (Idempotency.ts) holds the types, docs and Tags.
 */
import { Cause, Clock, Deferred, Duration, Effect, Exit, FiberId, Option, Random, type Scope, Schema, Stream } from "effect"
import { ChatResponse, type ChatChunk, type ChatRequest } from "../Llm.js"
import type { Complete, StreamFn } from "../LlmClient.js"
import { IdempotencyConflict, isLlmError, isRetryable, LlmError } from "../LlmError.js"
import * as LlmMetrics from "../LlmMetrics.js"
import * as Telemetry from "./telemetry.js"
import { idempotencyKeyHash, requestHash, type ScopeFn, scopedKey } from "./requestKey.js"
import { replayChunks, ResponseFields, StreamAssembly } from "./responseCache.js"
import * as SingleFlight from "./singleFlight.js"

/** The namespace of idempotency keys. */
export const NAMESPACE = "llm-idem:v1"

/** A final outcome as stored: the request fingerprint and the encoded Exit (success, or a final LlmError). */
export const RecordSchema = Schema.Struct({
  fingerprint: Schema.String,
  exit: Schema.Exit({ success: ResponseFields, failure: LlmError, defect: Schema.Defect })
})

export type StoredRecord = typeof RecordSchema.Encoded

export type ClaimResult =
  | { readonly _tag: "Claimed" }
  | { readonly _tag: "InFlight" }
  | { readonly _tag: "Completed"; readonly record: StoredRecord }
  | { readonly _tag: "Mismatch" }

export type Entry =
  | { readonly _tag: "InFlight"; readonly fingerprint: string; readonly expiresAt: number }
  | { readonly _tag: "Completed"; readonly record: StoredRecord; readonly expiresAt: number }

/** The store the engine runs on; its contract is documented on `Idempotency.Store`'s methods here. */
export interface Store {
  /**
   * If `key` is free (or its entry expired), claims it for `ttl` ms on behalf of `owner` (a token unique to this
   * claim) and answers `Claimed`; else answers `Mismatch` when the entry's fingerprint differs, `InFlight` for a live
   * claim, `Completed` with the record when settled.
   */
  readonly claim: (
    key: string,
    fingerprint: string,
    now: number,
    ttl: number,
    owner: string
  ) => Effect.Effect<ClaimResult>
  /**
   * Settles `key` with its final record, kept `ttl` ms, if the key is still `owner`'s claim (even past its lease, as
   * long as nobody claimed the key since); answers whether it did. A `ttl` of zero or less just frees the key.
   */
  readonly complete: (
    key: string,
    record: StoredRecord,
    now: number,
    ttl: number,
    owner: string
  ) => Effect.Effect<boolean>
  /**
   * Forgets `key` (a claim given up after a retryable failure or an interruption), so the next caller runs — only if
   * the key is still `owner`'s claim; answers whether it did.
   */
  readonly release: (key: string, owner: string) => Effect.Effect<boolean>
  /**
   * Forgets a settled `key` only if it still holds exactly `record` (as `claim` or `get` answered it): how a record
   * that no longer decodes (another version wrote it) is dropped without erasing a claim or a record another caller
   * wrote since. Answers whether it did.
   */
  readonly discard: (key: string, record: StoredRecord) => Effect.Effect<boolean>
  /** The live entry of `key` at `now`. */
  readonly get: (key: string, now: number) => Effect.Effect<Option.Option<Entry>>
}

export interface Config {
  readonly ttl: Duration.Duration
  readonly lease: Duration.Duration
  readonly pollInterval: Duration.Duration
  readonly onInFlight: "wait" | "reject"
  readonly scope: ScopeFn
  readonly requireKey: boolean
}

export interface Identity {
  readonly key: string
  readonly fingerprint: string
  /** What an IdempotencyConflict names: the caller's own key, or a short hash for a derived key. */
  readonly label: string
}

export interface Engine {
  readonly identify: (request: ChatRequest) => Identity
  readonly complete: (next: Complete) => Complete
  readonly stream: (next: StreamFn) => StreamFn
  readonly inFlight: Effect.Effect<number>
}

/** The key, fingerprint and conflict label of a request. */
export const identityOf = (scope: ScopeFn, request: ChatRequest): Identity => {
  const fingerprint = requestHash(request)
  const scopeName = scope(request)
  return request.idempotencyKey === undefined
    ? { key: scopedKey(NAMESPACE, scopeName, `r:${fingerprint}`), fingerprint, label: `derived:${fingerprint.slice(0, 12)}` }
    : {
      key: scopedKey(NAMESPACE, scopeName, `k:${idempotencyKeyHash(request.idempotencyKey)}`),
      fingerprint,
      label: request.idempotencyKey
    }
}

type Outcome = { readonly exit: Exit.Exit<ChatResponse, LlmError>; readonly replayed: boolean }

const encodeRecord = Schema.encodeEither(RecordSchema)
const decodeRecord = Schema.decodeUnknownOption(RecordSchema)

/**
 * The failures that are an answer to the request itself: the same request gets them again, so they are final and
 * replayed. Every other non-retryable error is a state of the system that passes (an open circuit, a full bulkhead, a
 * spent budget, an exhausted quota, a bad API key, a missing deployment, a concurrent call): replaying it for the whole
 * `ttl` would refuse a request that would now succeed, so it is not stored.
 */
const REQUEST_FINAL: ReadonlySet<string> = new Set(["BadRequest", "ContextTooLong", "ContentFiltered"])

/** True for a failure that is recorded and replayed (see {@link REQUEST_FINAL}). */
export const isFinalFailure = (error: LlmError): boolean => !isRetryable(error) && REQUEST_FINAL.has(error._tag)

/**
 * The record to store for an outcome, or None when it must not be stored (a retryable or transient failure, a
 * defect, an interruption).
 */
export const recordOf = (fingerprint: string, exit: Exit.Exit<ChatResponse, LlmError>): Option.Option<StoredRecord> => {
  if (Exit.isFailure(exit)) {
    const failure = Cause.failureOption(exit.cause)
    const final = Option.isSome(failure) && isLlmError(failure.value) && isFinalFailure(failure.value) &&
      !Cause.isDie(exit.cause) && !Cause.isInterrupted(exit.cause)
    if (!final) return Option.none()
    return Option.getRight(encodeRecord({ fingerprint, exit: Exit.fail(failure.value) }))
  }
  return Option.getRight(encodeRecord({ fingerprint, exit: Exit.succeed(exit.value) }))
}

const asReplay = (response: ChatResponse): ChatResponse =>
  new ChatResponse({ ...response, servedFrom: "idempotency" }, true)

const isConflict = (exit: Exit.Exit<unknown, LlmError>): boolean =>
  Exit.isFailure(exit) && Option.exists(Cause.failureOption(exit.cause), (e) => e._tag === "IdempotencyConflict")

export const make = (store: Store, config: Config): Engine => {
  const ttlMillis = Duration.toMillis(config.ttl)
  const leaseMillis = Duration.toMillis(config.lease)
  const flights = SingleFlight.make<Outcome, string>()
  // Claims held by this process, so a local duplicate stream waits for the settlement instead of a poll tick.
  const held = new Map<string, Deferred.Deferred<void>>()

  const identify = (request: ChatRequest): Identity => identityOf(config.scope, request)

  // A fresh token per claim, so that a release or a complete acts only on this call's own claim.
  let claims = 0
  const newOwner: Effect.Effect<string> = Effect.map(
    Effect.zip(Random.nextInt, Random.nextInt),
    ([a, b]) => `${a.toString(36)}.${b.toString(36)}.${(++claims).toString(36)}`
  )

  const claimLost = (operation: "complete" | "release") => (applied: boolean): Effect.Effect<void> =>
    applied ? Effect.void : Effect.logWarning(
      `Idempotency: the ${operation === "complete" ? "outcome was not stored" : "claim was not released"}: ` +
        "the key was no longer this call's claim (its lease expired and another caller claimed it, or the store failed)"
    ).pipe(Effect.annotateLogs({ policy: "Idempotency", operation }))

  const conflict = (id: Identity, request: ChatRequest, reason: "in-flight" | "payload-mismatch") =>
    new IdempotencyConflict({ key: id.label, reason, model: request.model })

  const hold = (key: string): void => {
    if (!held.has(key)) held.set(key, Deferred.unsafeMake<void>(FiberId.none))
  }
  const unhold = (key: string): Effect.Effect<void> =>
    Effect.suspend(() => {
      const deferred = held.get(key)
      held.delete(key)
      return deferred === undefined ? Effect.void : Deferred.succeed(deferred, undefined)
    })

  /**
   * Stores the final outcome, or releases the claim so a later call runs. Either is done only while the key is still
   * this call's claim: when its lease expired and another caller claimed the key, nothing is touched (a warning is
   * logged, without the key) and the caller keeps its own outcome.
   */
  const settle = (
    id: Identity,
    owner: string,
    exit: Exit.Exit<ChatResponse, LlmError> | undefined
  ): Effect.Effect<void> =>
    Effect.ensuring(
      Option.match(exit === undefined ? Option.none() : recordOf(id.fingerprint, exit), {
        onNone: () => Effect.flatMap(store.release(id.key, owner), claimLost("release")),
        onSome: (record) =>
          Clock.currentTimeMillis.pipe(
            Effect.flatMap((now) => store.complete(id.key, record, now, ttlMillis, owner)),
            Effect.flatMap(claimLost("complete"))
          )
      }),
      unhold(id.key)
    )

  const waitForSettlement = (key: string): Effect.Effect<void> =>
    Effect.suspend(() => {
      const local = held.get(key)
      const tick = Effect.sleep(config.pollInterval)
      return local === undefined ? tick : Effect.race(Deferred.await(local), tick)
    })

  const claim = (id: Identity, owner: string): Effect.Effect<ClaimResult> =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => store.claim(id.key, id.fingerprint, now, leaseMillis, owner))

  /**
   * Claims the key and, once claimed, runs `onClaimed` (uninterruptibly registered, so a claim is never leaked);
   * replays a completed record, refuses a mismatch, and waits or refuses while another caller holds the claim.
   */
  const acquire = <A, R>(
    id: Identity,
    request: ChatRequest,
    onClaimed: (
      restore: <X, Y, Z>(effect: Effect.Effect<X, Y, Z>) => Effect.Effect<X, Y, Z>,
      owner: string
    ) => Effect.Effect<A, never, R>,
    onOutcome: (outcome: Outcome) => A
  ): Effect.Effect<A, never, R> => {
    const attempt: Effect.Effect<A, never, R> = Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(newOwner, (owner) => Effect.flatMap(claim(id, owner), (result): Effect.Effect<A, never, R> => {
        switch (result._tag) {
          case "Claimed":
            hold(id.key)
            return onClaimed(restore, owner)
          case "Completed":
            return Option.match(decodeRecord(result.record), {
              // A record that no longer decodes (another version wrote it) is dropped — only that exact record, so a
              // newer claim or record another process wrote meanwhile stays — and the key is claimed again (after a
              // poll interval when it was not dropped, so a key that keeps changing is never claimed in a busy loop).
              onNone: () =>
                Effect.flatMap(store.discard(id.key, result.record), (dropped) =>
                  restore(dropped ? attempt : Effect.zipRight(Effect.sleep(config.pollInterval), attempt))),
              onSome: (record) => {
                const exit = Exit.map(record.exit, (fields) => new ChatResponse(fields, true))
                return Effect.succeed(onOutcome({ exit, replayed: true }))
              }
            })
          case "Mismatch":
            return Effect.succeed(onOutcome({ exit: Exit.fail(conflict(id, request, "payload-mismatch")), replayed: false }))
          case "InFlight":
            return config.onInFlight === "reject"
              ? Effect.succeed(onOutcome({ exit: Exit.fail(conflict(id, request, "in-flight")), replayed: false }))
              : restore(Effect.zipRight(waitForSettlement(id.key), attempt))
        }
      }))
    )
    return attempt
  }

  const lead = (id: Identity, request: ChatRequest, next: Complete): Effect.Effect<Outcome> =>
    acquire(
      id,
      request,
      (restore, owner) =>
        Effect.map(
          Effect.onExit(restore(Effect.exit(next(request))), (exit) =>
            settle(id, owner, Exit.isSuccess(exit) ? exit.value : undefined)),
          (exit): Outcome => ({ exit, replayed: false })
        ),
      (outcome) => outcome
    )

  const countReplay = (exit: Exit.Exit<ChatResponse, LlmError>): Effect.Effect<void> =>
    isConflict(exit)
      ? Effect.void
      : Effect.zipRight(LlmMetrics.count(LlmMetrics.idempotencyReplays, {}), Telemetry.idempotentReplay)

  /** What a caller gets: its own outcome as is; a shared or recorded one marked `servedFrom: "idempotency"`. */
  const deliver = (outcome: Outcome, leader: boolean): Effect.Effect<ChatResponse, LlmError> =>
    leader && !outcome.replayed
      ? outcome.exit
      : Effect.zipRight(countReplay(outcome.exit), Exit.map(outcome.exit, asReplay))

  const guard = (id: Identity, request: ChatRequest) => (running: string) =>
    running !== id.fingerprint
      ? Effect.fail(conflict(id, request, "payload-mismatch"))
      : config.onInFlight === "reject"
      ? Effect.fail(conflict(id, request, "in-flight"))
      : undefined

  const bypass = (request: ChatRequest): boolean => config.requireKey && request.idempotencyKey === undefined

  const complete = (next: Complete): Complete => (request) => {
    if (bypass(request)) return next(request)
    return Effect.suspend(() => {
      const id = identify(request)
      return Effect.flatMap(
        flights.run(id.key, id.fingerprint, lead(id, request, next), guard(id, request)),
        ({ leader, value }) => deliver(value, leader)
      )
    })
  }

  const replayStream = (outcome: Outcome): Stream.Stream<ChatChunk, LlmError> =>
    Stream.unwrap(
      Effect.as(
        countReplay(outcome.exit),
        Exit.isSuccess(outcome.exit)
          ? replayChunks(outcome.exit.value, "idempotency")
          : Stream.failCause(outcome.exit.cause)
      )
    )

  /** Streams through and settles the claim when the stream's scope closes: a finished stream is recorded. */
  const streamAndRecord = (
    id: Identity,
    owner: string,
    request: ChatRequest,
    next: StreamFn
  ): Effect.Effect<Stream.Stream<ChatChunk, LlmError>, never, Scope.Scope> => {
    const assembly = new StreamAssembly(request, `idem-${id.fingerprint.slice(0, 24)}`)
    let failure: Exit.Exit<ChatResponse, LlmError> | undefined
    return Effect.as(
      Effect.addFinalizer(() =>
        settle(id, owner, failure ?? Option.getOrUndefined(Option.map(assembly.response(), Exit.succeed)))
      ),
      next(request).pipe(
        Stream.tap((chunk) => Effect.sync(() => assembly.add(chunk))),
        Stream.tapErrorCause((cause) => Effect.sync(() => (failure = Exit.failCause(cause))))
      )
    )
  }

  const claimStream = (
    id: Identity,
    request: ChatRequest,
    next: StreamFn
  ): Effect.Effect<Stream.Stream<ChatChunk, LlmError>, never, Scope.Scope> =>
    acquire(
      id,
      request,
      (_, owner) => streamAndRecord(id, owner, request, next),
      (outcome) =>
        outcome.replayed || Exit.isSuccess(outcome.exit) ? replayStream(outcome) : Stream.failCause(outcome.exit.cause)
    )

  const stream = (next: StreamFn): StreamFn => (request) => {
    if (bypass(request)) return next(request)
    return Stream.unwrapScoped(Effect.suspend(() => {
      const id = identify(request)
      const running = flights.meta(id.key)
      if (running !== undefined) {
        const refusal = guard(id, request)(running)
        if (refusal !== undefined) return Effect.map(Effect.flip(refusal), (error) => Stream.fail(error))
        return Effect.flatMap(flights.joinIfRunning(id.key), (shared) =>
          Option.isSome(shared) ? Effect.succeed(replayStream(shared.value)) : claimStream(id, request, next))
      }
      return claimStream(id, request, next)
    }))
  }

  return { identify, complete, stream, inFlight: Effect.sync(() => flights.size()) }
}

/** The memory store: one Map; claims and records expire at their deadline; beyond `capacity` the oldest entry that is
 * not a live claim is evicted. A claim keeps its owner's token: only that owner completes or releases it. */
/** The capacity of a memory store when none is given. */
export const DEFAULT_CAPACITY = 10_000

export const makeMemoryStore = (capacity: number): Store => {
  const entries = new Map<string, { readonly entry: Entry; readonly owner: string | undefined }>()
  const live = (key: string, now: number): Entry | undefined => {
    const slot = entries.get(key)
    if (slot !== undefined && slot.entry.expiresAt <= now) {
      entries.delete(key)
      return undefined
    }
    return slot?.entry
  }
  const evict = (now: number): void => {
    if (entries.size <= capacity) return
    for (const [key, { entry }] of entries) {
      if (entries.size <= capacity) break
      if (entry._tag === "Completed" || entry.expiresAt <= now) entries.delete(key)
    }
  }
  // Still the owner's claim: not taken over by another caller (past its lease is fine while nobody took it).
  const ownedBy = (key: string, owner: string): boolean => {
    const slot = entries.get(key)
    return slot !== undefined && slot.entry._tag === "InFlight" && slot.owner === owner
  }
  return {
    claim: (key, fingerprint, now, ttl, owner) =>
      Effect.sync((): ClaimResult => {
        const entry = live(key, now)
        if (entry === undefined) {
          entries.set(key, { entry: { _tag: "InFlight", fingerprint, expiresAt: now + ttl }, owner })
          evict(now)
          return { _tag: "Claimed" }
        }
        const stored = entry._tag === "InFlight" ? entry.fingerprint : entry.record.fingerprint
        if (stored !== fingerprint) return { _tag: "Mismatch" }
        return entry._tag === "InFlight" ? { _tag: "InFlight" } : { _tag: "Completed", record: entry.record }
      }),
    complete: (key, record, now, ttl, owner) =>
      Effect.sync(() => {
        if (!ownedBy(key, owner)) return false
        entries.delete(key)
        if (ttl <= 0) return true
        entries.set(key, { entry: { _tag: "Completed", record, expiresAt: now + ttl }, owner: undefined })
        evict(now)
        return true
      }),
    release: (key, owner) => Effect.sync(() => ownedBy(key, owner) && entries.delete(key)),
    discard: (key, record) =>
      Effect.sync(() => {
        const slot = entries.get(key)
        const same = slot !== undefined && slot.entry._tag === "Completed" &&
          (slot.entry.record === record || JSON.stringify(slot.entry.record) === JSON.stringify(record))
        return same && entries.delete(key)
      }),
    get: (key, now) => Effect.sync(() => Option.fromNullable(live(key, now)))
  }
}
