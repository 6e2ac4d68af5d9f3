import { describe, expect, it } from "@effect/vitest"
import { Effect, type Layer, Option, Schema } from "effect"
import { ChatResponse } from "../../src/Llm.js"
import { ResponseCacheStore, type StoredResponse } from "../../src/ResponseCache.js"

const response = (content: string): StoredResponse =>
  Schema.encodeSync(ChatResponse)(
    new ChatResponse({
      id: `id-${content}`,
      model: "gpt-4o",
      content,
      finishReason: "stop",
      usage: { inputTokens: 3, outputTokens: 5 },
      servedFrom: "provider",
      toolCalls: [{ id: "c1", name: "lookup", arguments: "{\"q\":1}" }]
    })
  )

let counter = 0
const uniqueKey = (label: string) => `contract:${label}:${Date.now().toString(36)}:${++counter}`

const T0 = 1_700_000_000_000

/**
 * The contract every ResponseCacheStore backend passes. `bounded` is the same backend built with a capacity, for the
 * least-recently-used eviction cases (skipped by backends without a capacity).
 */
export const responseCacheStoreContract = (
  name: string,
  layer: Layer.Layer<ResponseCacheStore>,
  bounded?: { readonly capacity: number; readonly layer: Layer.Layer<ResponseCacheStore> }
) =>
  describe(`ResponseCacheStore contract: ${name}`, () => {
    it.effect("a missing key is None", () =>
      Effect.gen(function* () {
        const store = yield* ResponseCacheStore
        expect(Option.isNone(yield* store.get(uniqueKey("missing"), T0))).toBe(true)
      }).pipe(Effect.provide(layer)))

    it.effect("set then get returns the encoded response unchanged (and it survives JSON)", () =>
      Effect.gen(function* () {
        const store = yield* ResponseCacheStore
        const key = uniqueKey("roundtrip")
        const value = response("hello")
        yield* store.set(key, value, T0 + 60_000, T0)
        const got = yield* store.get(key, T0 + 1)
        expect(Option.getOrThrow(got)).toEqual(value)
        expect(JSON.parse(JSON.stringify(Option.getOrThrow(got)))).toEqual(value)
        expect(Schema.decodeUnknownSync(ChatResponse)(Option.getOrThrow(got)).content).toBe("hello")
      }).pipe(Effect.provide(layer)))

    it.effect("an entry is gone at its expiresAt, not before", () =>
      Effect.gen(function* () {
        const store = yield* ResponseCacheStore
        const key = uniqueKey("ttl")
        yield* store.set(key, response("x"), T0 + 1000, T0)
        expect(Option.isSome(yield* store.get(key, T0 + 999))).toBe(true)
        expect(Option.isNone(yield* store.get(key, T0 + 1000))).toBe(true)
        expect(Option.isNone(yield* store.get(key, T0 + 999))).toBe(true)
      }).pipe(Effect.provide(layer)))

    it.effect("set replaces an entry and its expiry", () =>
      Effect.gen(function* () {
        const store = yield* ResponseCacheStore
        const key = uniqueKey("replace")
        yield* store.set(key, response("old"), T0 + 1000, T0)
        yield* store.set(key, response("new"), T0 + 5000, T0 + 10)
        const got = Option.getOrThrow(yield* store.get(key, T0 + 2000))
        expect(got.content).toBe("new")
      }).pipe(Effect.provide(layer)))

    it.effect("delete answers whether an entry was there", () =>
      Effect.gen(function* () {
        const store = yield* ResponseCacheStore
        const key = uniqueKey("delete")
        yield* store.set(key, response("x"), T0 + 1000, T0)
        expect(yield* store.delete(key)).toBe(true)
        expect(yield* store.delete(key)).toBe(false)
        expect(Option.isNone(yield* store.get(key, T0))).toBe(true)
      }).pipe(Effect.provide(layer)))

    it.effect("size counts live entries only; clear empties the store", () =>
      Effect.gen(function* () {
        const store = yield* ResponseCacheStore
        yield* store.clear
        yield* store.set(uniqueKey("a"), response("a"), T0 + 1000, T0)
        yield* store.set(uniqueKey("b"), response("b"), T0 + 5000, T0)
        expect(yield* store.size(T0)).toBe(2)
        expect(yield* store.size(T0 + 2000)).toBe(1)
        yield* store.clear
        expect(yield* store.size(T0)).toBe(0)
      }).pipe(Effect.provide(layer)))

    it.effect("a set that expires at or before now stores nothing and removes the entry it replaces", () =>
      Effect.gen(function* () {
        const store = yield* ResponseCacheStore
        const key = uniqueKey("stillborn")
        yield* store.set(key, response("live"), T0 + 60_000, T0)
        yield* store.set(key, response("dead"), T0 + 10, T0 + 10)
        expect(Option.isNone(yield* store.get(key, T0 + 11))).toBe(true)
        expect(Option.isNone(yield* store.get(key, T0 + 1))).toBe(true)
        expect(yield* store.delete(key)).toBe(false)
      }).pipe(Effect.provide(layer)))

    it.effect("after clear the store works as new", () =>
      Effect.gen(function* () {
        const store = yield* ResponseCacheStore
        yield* store.clear
        const key = uniqueKey("after-clear")
        yield* store.set(key, response("again"), T0 + 60_000, T0)
        expect(Option.getOrThrow(yield* store.get(key, T0 + 1)).content).toBe("again")
        expect(yield* store.size(T0 + 1)).toBe(1)
        yield* store.clear
      }).pipe(Effect.provide(layer)))

    if (bounded !== undefined) {
      it.effect("replacing an entry counts as a use: the least recently written or read goes first", () =>
        Effect.gen(function* () {
          const store = yield* ResponseCacheStore
          yield* store.clear
          const keys = Array.from({ length: bounded.capacity }, (_, i) => uniqueKey(`replace-lru${i}`))
          for (const key of keys) yield* store.set(key, response(key), T0 + 60_000, T0)
          yield* store.set(keys[0], response("rewritten"), T0 + 60_000, T0 + 1) // keys[1] is now the oldest use
          yield* store.set(uniqueKey("newcomer"), response("n"), T0 + 60_000, T0 + 2)
          expect(Option.getOrThrow(yield* store.get(keys[0], T0 + 3)).content).toBe("rewritten")
          expect(Option.isNone(yield* store.get(keys[1], T0 + 3))).toBe(true)
          expect(yield* store.size(T0 + 3)).toBe(bounded.capacity)
        }).pipe(Effect.provide(bounded.layer)))

      it.effect("at capacity the least recently used entry is evicted (a read counts as a use)", () =>
        Effect.gen(function* () {
          const store = yield* ResponseCacheStore
          const keys = Array.from({ length: bounded.capacity }, (_, i) => uniqueKey(`lru${i}`))
          for (const key of keys) yield* store.set(key, response(key), T0 + 60_000, T0)
          // Touch the oldest, so the second oldest becomes the least recently used.
          expect(Option.isSome(yield* store.get(keys[0], T0 + 1))).toBe(true)
          const extra = uniqueKey("extra")
          yield* store.set(extra, response("extra"), T0 + 60_000, T0 + 2)
          expect(Option.isSome(yield* store.get(keys[0], T0 + 3))).toBe(true)
          expect(Option.isNone(yield* store.get(keys[1], T0 + 3))).toBe(true)
          expect(Option.isSome(yield* store.get(extra, T0 + 3))).toBe(true)
          expect(yield* store.size(T0 + 3)).toBe(bounded.capacity)
        }).pipe(Effect.provide(bounded.layer)))

      it.effect("at capacity an expired entry goes before a live one, however recently it was used", () =>
        Effect.gen(function* () {
          const store = yield* ResponseCacheStore
          yield* store.clear
          const keys = Array.from({ length: bounded.capacity }, (_, i) => uniqueKey(`expired-first${i}`))
          // keys[0] is the least recently used but lives long; the last one is the newest but expires first
          for (const [i, key] of keys.entries()) {
            const expiresAt = i === keys.length - 1 ? T0 + 10 : T0 + 60_000
            yield* store.set(key, response(key), expiresAt, T0 + i)
          }
          const extra = uniqueKey("after-expiry")
          yield* store.set(extra, response("extra"), T0 + 60_000, T0 + 100)
          expect(Option.isSome(yield* store.get(keys[0], T0 + 101))).toBe(true)
          expect(Option.isSome(yield* store.get(extra, T0 + 101))).toBe(true)
          expect(yield* store.size(T0 + 101)).toBe(bounded.capacity)
        }).pipe(Effect.provide(bounded.layer)))
    }
  })
