import { expect, it } from "@effect/vitest"
import { Chunk, Context, Effect, HashMap, Layer, List, Logger, Option, Schema, Stream } from "effect"
import { Redis as IORedis } from "ioredis"
import * as FakeLlm from "../../src/FakeLlm.js"
import { ChatRequest, ChatResponse } from "../../src/Llm.js"
import * as LlmClient from "../../src/LlmClient.js"
import * as Redis from "../../src/Redis.js"
import * as ResponseCache from "../../src/ResponseCache.js"
import { describeRedis, keysUnder, redisUrl, testPrefix } from "../support/redis.js"
import { responseCacheStoreContract } from "./ResponseCacheStore.contract.js"

const newPrefix = testPrefix
const connection = (prefix: string) => Redis.layer({ url: redisUrl, prefix })

/** A store over a connection of its own ("a process"), open for the test's scope. */
const storeOn = (prefix: string, capacity = 10_000) =>
  Effect.map(
    Layer.build(Redis.layerResponseCacheStoreWith({ capacity }).pipe(Layer.provide(connection(prefix)))),
    (context) => Context.get(context, ResponseCache.ResponseCacheStore)
  )

const stored = (content: string): ResponseCache.StoredResponse =>
  Schema.encodeSync(ChatResponse)(
    new ChatResponse({
      id: `id-${content}`,
      model: "gpt-4o",
      content,
      finishReason: "stop",
      usage: { inputTokens: 1, outputTokens: 1 },
      servedFrom: "provider"
    })
  )

const request = new ChatRequest({
  model: "gpt-4o",
  messages: [{ role: "user", content: "What is the capital of France?" }],
  temperature: 0,
  user: "alice@example.com"
})

const T0 = 1_700_000_000_000

describeRedis("ResponseCacheStore (Redis)", () => {
  responseCacheStoreContract("redis", Redis.layerResponseCacheStore.pipe(Layer.provide(connection(newPrefix())), Layer.orDie), {
    capacity: 3,
    layer: Redis.layerResponseCacheStoreWith({ capacity: 3 }).pipe(Layer.provide(connection(newPrefix())), Layer.orDie)
  })

  it.scoped("across processes: an answer cached by one is a hit on the other, and an invalidation by one is seen by both", () =>
    Effect.gen(function* () {
      const prefix = newPrefix()
      const processA = yield* FakeLlm.make(FakeLlm.reply("Paris (A)"))
      const processB = yield* FakeLlm.make(FakeLlm.reply("Paris (B)"))
      const cacheA = yield* ResponseCache.policy({ ttl: "1 hour" }).pipe(
        Effect.provideService(ResponseCache.ResponseCacheStore, yield* storeOn(prefix))
      )
      const cacheB = yield* ResponseCache.policy({ ttl: "1 hour" }).pipe(
        Effect.provideService(ResponseCache.ResponseCacheStore, yield* storeOn(prefix))
      )
      const a = LlmClient.decorate(processA.client, cacheA)
      const b = LlmClient.decorate(processB.client, cacheB)

      expect(yield* a.complete(request)).toMatchObject({ content: "Paris (A)", servedFrom: "provider" })
      expect(yield* b.complete(request)).toMatchObject({ content: "Paris (A)", servedFrom: "cache" })
      const replay = Chunk.toReadonlyArray(yield* Stream.runCollect(b.stream(request)))
      expect(replay.map((c) => c.content).join("")).toBe("Paris (A)")
      expect(replay.every((c) => c.servedFrom === "cache")).toBe(true)
      expect((yield* processB.recorder.calls).length).toBe(0)
      expect((yield* cacheB.stats).size).toBe(1)

      yield* cacheB.invalidate(request)
      expect(yield* a.complete(request)).toMatchObject({ content: "Paris (A)", servedFrom: "provider" })
      expect((yield* processA.recorder.calls).length).toBe(2)

      // Keys: under the prefix, each with a TTL, holding neither the prompt nor the user id.
      const keys = yield* Effect.promise(() => keysUnder(prefix))
      expect(keys.map((k) => k.key).sort()).toEqual([
        `${prefix}${cacheA.keyOf(request)}`,
        `${prefix}llm-cache-index:v1:exp`,
        `${prefix}llm-cache-index:v1:lru`
      ].sort())
      for (const { key, pttl } of keys) {
        expect(pttl).toBeGreaterThan(60 * 60_000) // 1 hour + the margin
        expect(pttl).toBeLessThanOrEqual(61 * 60_000)
        expect(key).not.toContain("France")
        expect(key).not.toContain("alice")
      }
    }))

  it.scoped("capacity holds across processes: the least recently used entry goes, whoever wrote or read it", () =>
    Effect.gen(function* () {
      const prefix = newPrefix()
      const a = yield* storeOn(prefix, 3)
      const b = yield* storeOn(prefix, 3)
      yield* a.set("k1", stored("1"), T0 + 60_000, T0)
      yield* b.set("k2", stored("2"), T0 + 60_000, T0)
      yield* a.set("k3", stored("3"), T0 + 60_000, T0)
      expect(Option.isSome(yield* b.get("k1", T0 + 1))).toBe(true) // k2 is now the least recently used
      yield* b.set("k4", stored("4"), T0 + 60_000, T0 + 2)
      yield* a.set("k5", stored("5"), T0 + 60_000, T0 + 3)
      expect(yield* a.size(T0 + 4)).toBe(3)
      const present = yield* Effect.forEach(["k1", "k2", "k3", "k4", "k5"], (key) =>
        Effect.map(b.get(key, T0 + 4), Option.isSome))
      expect(present).toEqual([true, false, false, true, true])
      const keys = yield* Effect.promise(() => keysUnder(prefix))
      expect(keys).toHaveLength(3 + 2) // three entries and the two indexes: evicted entries are deleted
    }))

  it.scoped("an expired entry is purged by the next write and no longer counts toward capacity", () =>
    Effect.gen(function* () {
      const prefix = newPrefix()
      const store = yield* storeOn(prefix, 2)
      yield* store.set("short", stored("short"), T0 + 1000, T0)
      yield* store.set("long", stored("long"), T0 + 60_000, T0)
      yield* store.set("new", stored("new"), T0 + 60_000, T0 + 5000)
      expect(Option.isSome(yield* store.get("long", T0 + 5001))).toBe(true)
      expect(Option.isSome(yield* store.get("new", T0 + 5001))).toBe(true)
      expect(yield* store.size(T0 + 5001)).toBe(2)
    }))

  it.scoped("clear deletes only this store's entries, never other keys under the prefix or other prefixes", () =>
    Effect.gen(function* () {
      const prefix = newPrefix()
      const other = newPrefix()
      const store = yield* storeOn(prefix)
      const neighbour = yield* storeOn(other)
      yield* store.set("mine", stored("mine"), T0 + 60_000, T0)
      yield* neighbour.set("theirs", stored("theirs"), T0 + 60_000, T0)
      const raw = new IORedis(redisUrl)
      yield* Effect.addFinalizer(() => Effect.sync(() => raw.disconnect()))
      yield* Effect.promise(() => raw.set(`${prefix}llm-idem:v1:someone-else`, "x", "PX", 60_000))
      yield* store.clear
      expect(yield* store.size(T0)).toBe(0)
      expect(Option.isNone(yield* store.get("mine", T0))).toBe(true)
      expect(yield* Effect.promise(() => raw.get(`${prefix}llm-idem:v1:someone-else`))).toBe("x")
      expect(Option.isSome(yield* neighbour.get("theirs", T0))).toBe(true)
    }))

  it.scoped("an entry Redis dropped on its own (its key expired) is a miss and leaves the indexes", () =>
    Effect.gen(function* () {
      const prefix = newPrefix()
      const store = yield* storeOn(prefix)
      yield* store.set("gone", stored("gone"), T0 + 60_000, T0)
      const raw = new IORedis(redisUrl)
      yield* Effect.addFinalizer(() => Effect.sync(() => raw.disconnect()))
      yield* Effect.promise(() => raw.del(`${prefix}gone`))
      expect(Option.isNone(yield* store.get("gone", T0 + 1))).toBe(true)
      expect(yield* store.size(T0 + 1)).toBe(0)
    }))

  it.live("a Redis failure never fails a call: a read is a miss, a write is skipped, each logged without the key", () =>
    Effect.gen(function* () {
      const down = new IORedis({
        port: 1,
        lazyConnect: true,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null
      })
      const store = ResponseCache.ResponseCacheStore.pipe(
        Effect.provide(Redis.layerResponseCacheStore.pipe(Layer.provide(Layer.succeed(Redis.RedisClient, Redis.fromClient(down, "x:")))))
      )
      const logs: Array<{ readonly level: string; readonly text: string }> = []
      const capture = Logger.make(({ annotations, logLevel, message }) => {
        logs.push({
          level: logLevel.label,
          text: `${JSON.stringify(List.isList(message) ? List.toArray(message) : message)} ${JSON.stringify([...HashMap.toEntries(annotations)])}`
        })
      })
      const results = yield* Effect.gen(function* () {
        const s = yield* store
        const key = "llm-cache:v1:secret-scope:secret-hash"
        return [
          Option.isNone(yield* s.get(key, T0)),
          yield* s.set(key, stored("value"), T0 + 1000, T0),
          yield* s.delete(key),
          yield* s.size(T0),
          yield* s.clear
        ]
      }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, capture)))
      expect(results).toEqual([true, undefined, false, 0, undefined])
      expect(logs).toHaveLength(5)
      expect(logs.every((l) => l.level === "WARN")).toBe(true)
      expect(logs[0].text).toContain("treated as a miss")
      expect(logs.some((l) => l.text.includes("secret"))).toBe(false)
      down.disconnect()
    }))
})
