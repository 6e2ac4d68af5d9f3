/**
 * The response cache engine: key → in-flight coalescing → store, plus the LRU memory store.
 * The public module (ResponseCache.ts) holds the types, docs and Tags.
 */
import { Clock, Duration, Effect, Exit, FiberRef, Metric, Option, Schema, Stream } from "effect"
import { ChatChunk, ChatResponse, type ChatRequest, type Usage } from "../Llm.js"
import type { Complete, StreamFn } from "../LlmClient.js"
import type { LlmError } from "../LlmError.js"
import * as LlmMetrics from "../LlmMetrics.js"
import * as Telemetry from "./telemetry.js"
import { answeredByRequestedModel, defaultScope, requestHash, type ScopeFn, scopedKey } from "./requestKey.js"
import * as SingleFlight from "./singleFlight.js"

/** The namespace of response cache keys. */
export const NAMESPACE = "llm-cache:v1"

/** What a store holds: a ChatResponse encoded by its Schema (plain JSON). */
export type Stored = typeof ChatResponse.Encoded

/** The narrow store contract (documented as `ResponseCache.Store`). */
export interface Store {
  /** The live entry of `key` (an entry with `expiresAt <= now` is gone). A hit counts as a use for LRU. */
  readonly get: (key: string, now: number) => Effect.Effect<Option.Option<Stored>>
  /** Writes `key`, replacing any entry; it expires at `expiresAt`. May evict the least recently used entry. */
  readonly set: (key: string, value: Stored, expiresAt: number, now: number) => Effect.Effect<void>
  /** Deletes `key`; true when an entry was there. */
  readonly delete: (key: string) => Effect.Effect<boolean>
  /** Deletes every entry. */
  readonly clear: Effect.Effect<void>
  /** The number of live entries at `now`. */
  readonly size: (now: number) => Effect.Effect<number>
}

export interface Config {
  readonly ttl: Duration.Duration
  readonly capacity: number
  readonly scope: ScopeFn
  readonly cacheable: (request: ChatRequest) => boolean
  /** How long an answer another model gave (a fallback) lives under the requested model's key; none: not stored. */
  readonly fallbackTtl: Duration.Duration | undefined
}

export interface Stats {
  readonly hits: number
  readonly misses: number
  readonly size: number
  readonly inFlight: number
}

export interface Engine {
  readonly keyOf: (request: ChatRequest) => string
  readonly complete: (next: Complete) => Complete
  readonly stream: (next: StreamFn) => StreamFn
  readonly invalidate: (target: ChatRequest | string) => Effect.Effect<void>
  readonly stats: Effect.Effect<Stats>
}

/** A flight's outcome: where the answer came from, as a value (a flight never fails). */
interface Outcome {
  readonly exit: Exit.Exit<ChatResponse, LlmError>
  readonly fromStore: boolean
}

/** The fields of a ChatResponse as a plain Struct: encodes class instances and structurally equal objects alike. */
export const ResponseFields = Schema.Struct(ChatResponse.fields)

/** Encodes a response for a store; None when it does not encode (it is then not stored). */
export const encodeResponse = (response: ChatResponse): Option.Option<Stored> =>
  response instanceof ChatResponse ? Option.some(plainResponse(response)) : encodeFields(response)

const encodeFields = Schema.encodeUnknownOption(ResponseFields)

// A ChatResponse instance holds decoded values already and every field encodes to itself (strings, numbers, plain
// structs): copying its known fields is its encoding, without a Schema walk on every cache write.
const plainResponse = (r: ChatResponse): Stored => {
  const u = r.usage
  const usage: Record<string, unknown> = { inputTokens: u.inputTokens, outputTokens: u.outputTokens }
  if (u.estimated !== undefined) usage.estimated = u.estimated
  if (u.cachedInputTokens !== undefined) usage.cachedInputTokens = u.cachedInputTokens
  if (u.reasoningTokens !== undefined) usage.reasoningTokens = u.reasoningTokens
  if (u.cacheWriteInputTokens !== undefined) usage.cacheWriteInputTokens = u.cacheWriteInputTokens
  const out: Record<string, unknown> = {
    id: r.id,
    model: r.model,
    content: r.content,
    finishReason: r.finishReason,
    usage,
    servedFrom: r.servedFrom
  }
  if (r.toolCalls !== undefined) {
    out.toolCalls = r.toolCalls.map((c) => ({ id: c.id, name: c.name, arguments: c.arguments }))
  }
  if (r.deployment !== undefined) out.deployment = r.deployment
  return out as unknown as Stored
}

const decode = Schema.decodeUnknownOption(ChatResponse)

// Hits of one entry share one decoded response: with an in-memory store a hit then costs no Schema work.
const cacheCopies = new WeakMap<object, ChatResponse>()
const servedFromCache = (response: ChatResponse): ChatResponse => {
  if (response.servedFrom === "cache") return response
  let copy = cacheCopies.get(response)
  if (copy === undefined) {
    copy = new ChatResponse({ ...response, servedFrom: "cache" }, true)
    cacheCopies.set(response, copy)
  }
  return copy
}
const decodedEntries = new WeakMap<object, ChatResponse>()
const decodeStored = (stored: Stored): Option.Option<ChatResponse> => {
  const known = decodedEntries.get(stored)
  if (known !== undefined) return Option.some(known)
  return Option.map(decode({ ...stored, servedFrom: "cache" }), (response) => {
    decodedEntries.set(stored, response)
    return response
  })
}

// The hit and miss counters of each model, tagged once (tagging hashes a key: too slow for every call).
const hitCounters = new Map<string, Metric.Metric.Counter<number>>()
const missCounters = new Map<string, Metric.Metric.Counter<number>>()
const counterFor = (hit: boolean, model: string): Metric.Metric.Counter<number> => {
  const counters = hit ? hitCounters : missCounters
  let counter = counters.get(model)
  if (counter === undefined) {
    counter = Metric.tagged(hit ? LlmMetrics.cacheHits : LlmMetrics.cacheMisses, "model", model)
    if (counters.size < 10_000) counters.set(model, counter)
  }
  return counter
}

const wordsOf = (content: string): ReadonlyArray<string> => content.match(/\S+\s*|\s+/g) ?? []

/** A cached response replayed as a stream: word chunks, then an empty chunk with finish reason and usage. */
export const replayChunks = (response: ChatResponse, servedFrom: "cache" | "idempotency"): Stream.Stream<ChatChunk> =>
  Stream.fromIterable([
    ...wordsOf(response.content).map((content) => new ChatChunk({ content, model: response.model, servedFrom }, true)),
    new ChatChunk({
      content: "",
      model: response.model,
      finishReason: response.finishReason,
      usage: response.usage,
      servedFrom,
      ...(response.toolCalls === undefined ? {} : { toolCalls: response.toolCalls })
    }, true)
  ])

const TOOL_CALL_FINISH: ReadonlySet<string> = new Set(["tool_calls", "function_call"])

/** Accumulates a stream's chunks into the response they add up to (when it finished). */
export class StreamAssembly {
  content = ""
  model: string
  finishReason: string | undefined = undefined
  usage: Usage | undefined = undefined
  toolCalls: ChatChunk["toolCalls"] = undefined
  constructor(readonly request: ChatRequest, readonly id: string) {
    this.model = request.model
  }
  add(chunk: ChatChunk): void {
    this.content += chunk.content
    this.model = chunk.model
    if (chunk.finishReason !== undefined) this.finishReason = chunk.finishReason
    if (chunk.usage !== undefined) this.usage = chunk.usage
    if (chunk.toolCalls !== undefined) this.toolCalls = chunk.toolCalls
  }
  /**
   * The assembled response, or None when no finish reason arrived (a truncated or abandoned stream). Tool calls
   * come whole on the last chunk, so a `tool_calls` answer is assembled with its calls.
   */
  response(): Option.Option<ChatResponse> {
    if (this.finishReason === undefined) return Option.none()
    // a provider that says "tool_calls" without sending the calls would make an answer that cannot be replayed
    if (TOOL_CALL_FINISH.has(this.finishReason) && (this.toolCalls ?? []).length === 0) return Option.none()
    return Option.some(
      new ChatResponse({
        id: this.id,
        model: this.model,
        content: this.content,
        finishReason: this.finishReason,
        usage: this.usage ?? { inputTokens: 0, outputTokens: 0 },
        servedFrom: "provider",
        ...(this.toolCalls === undefined ? {} : { toolCalls: this.toolCalls })
      }, true)
    )
  }
}

/** Builds the engine over a store. */
export const make = (store: Store, config: Config): Engine => {
  const ttlMillis = Duration.toMillis(config.ttl)
  const fallbackTtlMillis = config.fallbackTtl === undefined ? undefined : Duration.toMillis(config.fallbackTtl)
  const flights = SingleFlight.make<Outcome, true>()
  // This policy's own LRU index: beyond `capacity`, the least recently used entry it wrote is deleted. Only a write
  // adds a key (and trims the index), so it never holds more than `capacity` keys, and a hit on an entry another
  // process or policy wrote never makes this policy delete that entry.
  const owned = new Map<string, true>()
  let hits = 0
  let misses = 0

  // A request is immutable, and so is its key under the default scope (its `user`): built once per request object. A
  // scope function of the user's may read more than the request, so its key is built on every call.
  const keys = new WeakMap<ChatRequest, string>()
  const keyOf = config.scope === defaultScope
    ? (request: ChatRequest): string => {
      let key = keys.get(request)
      if (key === undefined) {
        key = scopedKey(NAMESPACE, defaultScope(request), requestHash(request))
        keys.set(request, key)
      }
      return key
    }
    : (request: ChatRequest): string => scopedKey(NAMESPACE, config.scope(request), requestHash(request))

  const touch = (key: string): void => {
    owned.delete(key)
    owned.set(key, true)
  }
  const touchIfOwned = (key: string): void => {
    if (owned.has(key)) touch(key)
  }

  const evictBeyondCapacity: Effect.Effect<void> = Effect.suspend(() => {
    if (owned.size <= config.capacity) return Effect.void
    const victims: Array<string> = []
    for (const key of owned.keys()) {
      if (owned.size - victims.length <= config.capacity) break
      victims.push(key)
    }
    for (const key of victims) owned.delete(key)
    return Effect.forEach(victims, (key) => store.delete(key), { discard: true })
  })

  const read = (key: string): Effect.Effect<Option.Option<ChatResponse>> =>
    Effect.clockWith((clock) =>
      Effect.flatMap(store.get(key, clock.unsafeCurrentTimeMillis()), (stored) => {
        if (Option.isNone(stored)) return Effect.succeed(Option.none())
        const decoded = decodeStored(stored.value)
        // An entry that no longer decodes (written by another version) is a miss, and is dropped.
        if (Option.isNone(decoded)) {
          owned.delete(key)
          return Effect.as(store.delete(key), Option.none())
        }
        touchIfOwned(key)
        return Effect.succeed(decoded)
      }))

  /** How long `response` may live under the key of `request`, or undefined when it must not be stored. */
  const lifetimeOf = (request: ChatRequest, response: ChatResponse): number | undefined =>
    answeredByRequestedModel(request.model, response.model) ? ttlMillis : fallbackTtlMillis

  const write = (key: string, request: ChatRequest, response: ChatResponse): Effect.Effect<void> => {
    const lifetime = lifetimeOf(request, response)
    return lifetime === undefined
      ? Effect.void
      : Option.match(encodeResponse(response), {
        onNone: () => Effect.void,
        onSome: (encoded) =>
          Effect.clockWith((clock) => {
            const now = clock.unsafeCurrentTimeMillis()
            return Effect.zipRight(
              store.set(key, encoded, now + lifetime, now),
              Effect.suspend(() => {
                touch(key)
                return evictBeyondCapacity
              })
            )
          })
      })
  }

  const fill = (key: string, request: ChatRequest, next: Complete): Effect.Effect<Outcome> =>
    Effect.flatMap(read(key), (cached) =>
      Option.isSome(cached)
        ? Effect.succeed<Outcome>({ exit: Exit.succeed(cached.value), fromStore: true })
        : Effect.map(
          Effect.exit(Effect.tap(next(request), (response) => write(key, request, response))),
          (exit): Outcome => ({ exit, fromStore: false })
        ))

  // One step: the counter is updated with the fiber's metric labels, as Metric.increment does.
  const record = (model: string, hit: boolean): Effect.Effect<void> =>
    Effect.withFiberRuntime((fiber) => {
      counterFor(hit, model).unsafeUpdate(1, fiber.getFiberRef(FiberRef.currentMetricLabels))
      if (!hit) {
        misses++
        return Effect.void
      }
      hits++
      return Telemetry.cacheHit(model)
    })

  /** Joins or starts the flight for `key`; joiners that get an answer count as hits (they cost no call). */
  const viaFlight = (key: string, request: ChatRequest, next: Complete): Effect.Effect<ChatResponse, LlmError> =>
    Effect.flatMap(flights.run(key, true, fill(key, request, next)), ({ leader, value }) => {
      const hit = Exit.isSuccess(value.exit) && (value.fromStore || !leader)
      return Effect.zipRight(
        record(request.model, hit),
        hit ? Effect.map(value.exit, servedFromCache) : value.exit
      )
    })

  const complete = (next: Complete): Complete => (request) => {
    if (!config.cacheable(request)) return next(request)
    return Effect.suspend(() => {
      const key = keyOf(request)
      // A call for this key is running: join it (the store cannot have the answer yet).
      if (flights.meta(key) === true) return viaFlight(key, request, next)
      // Fast path: a hit needs no fiber. A miss re-reads inside the flight, which closes the race.
      return Effect.flatMap(read(key), (cached) =>
        Option.isSome(cached)
          ? Effect.as(record(request.model, true), cached.value)
          : viaFlight(key, request, next))
    })
  }

  const streamThrough = (key: string, request: ChatRequest, next: StreamFn): Stream.Stream<ChatChunk, LlmError> =>
    Stream.suspend(() => {
      const assembly = new StreamAssembly(request, `cached-${key.slice(-24)}`)
      return next(request).pipe(
        Stream.tap((chunk) => Effect.sync(() => assembly.add(chunk))),
        Stream.ensuringWith((exit) =>
          Exit.isSuccess(exit)
            ? Option.match(assembly.response(), { onNone: () => Effect.void, onSome: (r) => write(key, request, r) })
            : Effect.void
        )
      )
    })

  const stream = (next: StreamFn): StreamFn => (request) => {
    if (!config.cacheable(request)) return next(request)
    return Stream.unwrap(Effect.suspend(() => {
      const key = keyOf(request)
      // A completion of the same request is running: share its answer instead of calling again.
      const joined = Effect.flatMap(flights.joinIfRunning(key), (shared) => {
        if (Option.isNone(shared)) return Effect.succeed(Option.none<Stream.Stream<ChatChunk, LlmError>>())
        const exit = shared.value.exit
        return Effect.as(
          record(request.model, Exit.isSuccess(exit)),
          Option.some(Exit.isSuccess(exit) ? replayChunks(exit.value, "cache") : Stream.failCause(exit.cause))
        )
      })
      const fromStore = Effect.flatMap(read(key), (cached) =>
        Effect.as(
          record(request.model, Option.isSome(cached)),
          Option.isSome(cached) ? replayChunks(cached.value, "cache") : streamThrough(key, request, next)
        ))
      return Effect.flatMap(joined, (shared) => Option.isSome(shared) ? Effect.succeed(shared.value) : fromStore)
    }))
  }

  const invalidate = (target: ChatRequest | string): Effect.Effect<void> =>
    Effect.suspend(() => {
      const key = typeof target === "string" ? target : keyOf(target)
      owned.delete(key)
      return Effect.asVoid(store.delete(key))
    })

  const stats: Effect.Effect<Stats> = Effect.flatMap(Clock.currentTimeMillis, (now) =>
    Effect.map(store.size(now), (size) => ({ hits, misses, size, inFlight: flights.size() })))

  return { keyOf, complete, stream, invalidate, stats }
}

/** The memory store: a Map in LRU order (a read moves the entry to the end), with per-entry expiry. */
/** The capacity of a memory store when none is given. */
export const DEFAULT_CAPACITY = 10_000

export const makeMemoryStore = (capacity: number): Store => {
  const entries = new Map<string, { readonly value: Stored; readonly expiresAt: number }>()
  return {
    get: (key, now) =>
      Effect.sync(() => {
        const entry = entries.get(key)
        if (entry === undefined) return Option.none()
        entries.delete(key)
        if (entry.expiresAt <= now) return Option.none()
        entries.set(key, entry)
        return Option.some(entry.value)
      }),
    set: (key, value, expiresAt, now) =>
      Effect.sync(() => {
        entries.delete(key)
        if (expiresAt <= now) return
        entries.set(key, { value, expiresAt })
        if (entries.size <= capacity) return
        // Expired entries go before a live one is evicted: look at the 64 least recently used (bounded work a set).
        let looked = 0
        for (const [candidate, entry] of entries) {
          if (entries.size <= capacity || looked++ >= 64) break
          if (entry.expiresAt <= now) entries.delete(candidate)
        }
        while (entries.size > capacity) entries.delete(entries.keys().next().value as string)
      }),
    delete: (key) => Effect.sync(() => entries.delete(key)),
    clear: Effect.sync(() => entries.clear()),
    size: (now) =>
      Effect.sync(() => {
        for (const [key, entry] of entries) if (entry.expiresAt <= now) entries.delete(key)
        return entries.size
      })
  }
}
