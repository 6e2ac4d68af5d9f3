import { expect, it } from "@effect/vitest"
import { Cause, Context, Effect, Exit, HashMap, Layer, List, Logger, Option, Schema } from "effect"
import { Redis as IORedis } from "ioredis"
import * as FakeLlm from "../../src/FakeLlm.js"
import * as Idempotency from "../../src/Idempotency.js"
import { ChatRequest, ChatResponse } from "../../src/Llm.js"
import * as LlmClient from "../../src/LlmClient.js"
import * as Redis from "../../src/Redis.js"
import { describeRedis, keysUnder, redisUrl, testPrefix } from "../support/redis.js"
import { idempotencyStoreContract } from "./IdempotencyStore.contract.js"

const newPrefix = testPrefix
const connection = (prefix: string) => Redis.layer({ url: redisUrl, prefix })

/** A store over a connection of its own ("a process"), open for the test's scope. */
const storeOn = (prefix: string) =>
  Effect.map(
    Layer.build(Redis.layerIdempotencyStore.pipe(Layer.provide(connection(prefix)))),
    (context) => Context.get(context, Idempotency.IdempotencyStore)
  )

const request = new ChatRequest({
  model: "gpt-4o",
  messages: [{ role: "user", content: "Write the refund letter for order 42" }],
  user: "alice@example.com",
  idempotencyKey: "refund-order-42"
})

const record = Schema.encodeSync(Idempotency.StoredRecord)({
  fingerprint: "fp",
  exit: Exit.succeed(new ChatResponse({
    id: "r1", model: "gpt-4o", content: "done", finishReason: "stop", usage: { inputTokens: 1, outputTokens: 1 }, servedFrom: "provider"
  }))
})

const T0 = 1_700_000_000_000
const MINUTE = 60_000

describeRedis("IdempotencyStore (Redis)", () => {
  idempotencyStoreContract("redis", Redis.layerIdempotencyStore.pipe(Layer.provide(connection(newPrefix())), Layer.orDie))

  it.live("across processes: 100 concurrent identical calls split over two connections make exactly 1 provider call", () =>
    Effect.gen(function* () {
      const prefix = newPrefix()
      const fake = yield* FakeLlm.make(FakeLlm.delay("150 millis", FakeLlm.reply("Refund issued.")))
      const options: Idempotency.Options = { pollInterval: "20 millis" }
      const policyA = yield* Idempotency.policy(options).pipe(
        Effect.provideService(Idempotency.IdempotencyStore, yield* storeOn(prefix))
      )
      const policyB = yield* Idempotency.policy(options).pipe(
        Effect.provideService(Idempotency.IdempotencyStore, yield* storeOn(prefix))
      )
      const processes = [LlmClient.decorate(fake.client, policyA), LlmClient.decorate(fake.client, policyB)]
      const responses = yield* Effect.all(
        Array.from({ length: 100 }, (_, i) => processes[i % 2].complete(request)),
        { concurrency: "unbounded" }
      )
      expect((yield* fake.recorder.calls).length).toBe(1)
      expect(responses.every((r) => r.content === "Refund issued.")).toBe(true)
      expect(responses.filter((r) => r.servedFrom === "provider")).toHaveLength(1)
      expect(responses.filter((r) => r.servedFrom === "idempotency")).toHaveLength(99)

      // A later call through either process replays the record.
      expect((yield* processes[1].complete(request)).servedFrom).toBe("idempotency")
      expect((yield* fake.recorder.calls).length).toBe(1)

      // One key, under the prefix, with the ttl (24 hours) plus the margin, holding neither the key nor the user id.
      const keys = yield* Effect.promise(() => keysUnder(prefix))
      expect(keys.map((k) => k.key)).toEqual([`${prefix}${policyA.keyOf(request).key}`])
      expect(keys[0].pttl).toBeGreaterThan(24 * 60 * MINUTE)
      expect(keys[0].pttl).toBeLessThanOrEqual(24 * 60 * MINUTE + MINUTE)
      expect(keys[0].key).not.toContain("refund-order-42")
      expect(keys[0].key).not.toContain("alice")
    }).pipe(Effect.scoped))

  it.live("across processes with \"reject\": a duplicate on the other connection fails in-flight while the call runs", () =>
    Effect.gen(function* () {
      const prefix = newPrefix()
      const fake = yield* FakeLlm.make(FakeLlm.delay("150 millis", FakeLlm.reply("Refund issued.")))
      const a = LlmClient.decorate(
        fake.client,
        yield* Idempotency.policy().pipe(Effect.provideService(Idempotency.IdempotencyStore, yield* storeOn(prefix)))
      )
      const b = LlmClient.decorate(
        fake.client,
        yield* Idempotency.policy({ onInFlight: "reject" }).pipe(
          Effect.provideService(Idempotency.IdempotencyStore, yield* storeOn(prefix))
        )
      )
      const running = yield* Effect.fork(a.complete(request))
      yield* Effect.sleep("50 millis")
      expect(yield* Effect.flip(b.complete(request))).toMatchObject({ _tag: "IdempotencyConflict", reason: "in-flight" })
      yield* running.await
      expect((yield* b.complete(request)).servedFrom).toBe("idempotency")
      expect((yield* fake.recorder.calls).length).toBe(1)
    }).pipe(Effect.scoped))

  it.scoped("a claim by one connection is seen by the other; the lease is the key's TTL plus a margin", () =>
    Effect.gen(function* () {
      const prefix = newPrefix()
      const a = yield* storeOn(prefix)
      const b = yield* storeOn(prefix)
      expect(yield* a.claim("k", "fp", T0, MINUTE, "a")).toEqual({ _tag: "Claimed" })
      expect(yield* b.claim("k", "fp", T0 + 1, MINUTE, "b")).toEqual({ _tag: "InFlight" })
      expect(yield* b.claim("k", "other", T0 + 1, MINUTE, "b")).toEqual({ _tag: "Mismatch" })
      expect(yield* b.get("k", T0 + 1)).toEqual(Option.some({ _tag: "InFlight", fingerprint: "fp", expiresAt: T0 + MINUTE }))
      const [claimKey] = yield* Effect.promise(() => keysUnder(prefix))
      expect(claimKey.pttl).toBeGreaterThan(MINUTE)
      expect(claimKey.pttl).toBeLessThanOrEqual(2 * MINUTE)
      // Only the owner settles its claim, from whichever connection.
      expect(yield* b.release("k", "b")).toBe(false)
      expect(yield* b.complete("k", record, T0 + 5, 10 * MINUTE, "b")).toBe(false)
      expect(yield* a.complete("k", record, T0 + 10, 10 * MINUTE, "a")).toBe(true)
      const seen = yield* b.claim("k", "fp", T0 + 20, MINUTE, "b")
      expect(seen).toEqual({ _tag: "Completed", record })
      if (seen._tag !== "Completed") return
      expect(yield* a.discard("k", seen.record)).toBe(true)
      expect(yield* a.claim("k", "fp", T0 + 30, MINUTE, "a2")).toEqual({ _tag: "Claimed" })
    }))

  it.scoped("a record that no longer decodes (another version wrote it) is dropped and the call runs again", () =>
    Effect.gen(function* () {
      const prefix = newPrefix()
      const store = yield* storeOn(prefix)
      const fake = yield* FakeLlm.make(FakeLlm.reply("fresh"))
      const policy = yield* Idempotency.policy().pipe(Effect.provideService(Idempotency.IdempotencyStore, store))
      const { fingerprint, key } = policy.keyOf(request)
      const raw = new IORedis(redisUrl)
      yield* Effect.addFinalizer(() => Effect.sync(() => raw.disconnect()))
      yield* Effect.promise(() =>
        raw.hset(`${prefix}${key}`, { s: "c", f: fingerprint, x: String(Number.MAX_SAFE_INTEGER), r: "{not json" })
      )
      expect(yield* LlmClient.decorate(fake.client, policy).complete(request)).toMatchObject({
        content: "fresh",
        servedFrom: "provider"
      })
      expect((yield* fake.recorder.calls).length).toBe(1)
    }))

  it.scoped("two processes see the same record that no longer parses: the late discard leaves the newer record", () =>
    Effect.gen(function* () {
      const prefix = newPrefix()
      const a = yield* storeOn(prefix)
      const b = yield* storeOn(prefix)
      const raw = new IORedis(redisUrl)
      yield* Effect.addFinalizer(() => Effect.sync(() => raw.disconnect()))
      for (const stale of ["{not json", "\"a string\"", "null"]) {
        const key = `stale:${stale.length}`
        yield* Effect.promise(() =>
          raw.hset(`${prefix}${key}`, { s: "c", f: "fp", x: String(Number.MAX_SAFE_INTEGER), r: stale })
        )
        const seenByA = yield* a.claim(key, "fp", T0, MINUTE, "a")
        const seenByB = yield* b.claim(key, "fp", T0, MINUTE, "b")
        if (seenByA._tag !== "Completed" || seenByB._tag !== "Completed") throw new Error("expected the stale record")
        expect(yield* a.discard(key, seenByA.record)).toBe(true)
        expect(yield* a.claim(key, "fp", T0 + 1, MINUTE, "a")).toEqual({ _tag: "Claimed" })
        expect(yield* b.discard(key, seenByB.record)).toBe(false)
        expect(yield* a.complete(key, record, T0 + 2, MINUTE, "a")).toBe(true)
        expect(yield* b.discard(key, seenByB.record)).toBe(false)
        expect(yield* b.claim(key, "fp", T0 + 3, MINUTE, "b")).toEqual({ _tag: "Completed", record })
      }
      // A settled entry without its record is dropped as well.
      yield* Effect.promise(() => raw.hset(`${prefix}bare`, { s: "c", f: "fp", x: String(Number.MAX_SAFE_INTEGER) }))
      const bare = yield* a.claim("bare", "fp", T0, MINUTE, "a")
      if (bare._tag !== "Completed") throw new Error("expected the stale record")
      expect(yield* a.discard("bare", bare.record)).toBe(true)
    }))

  it.live("fails closed: a Redis failure in claim fails the call with a defect and never calls the provider", () =>
    Effect.gen(function* () {
      const down = new IORedis({
        port: 1,
        lazyConnect: true,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null
      })
      const store = yield* Idempotency.IdempotencyStore.pipe(
        Effect.provide(
          Redis.layerIdempotencyStore.pipe(Layer.provide(Layer.succeed(Redis.RedisClient, Redis.fromClient(down, "x:"))))
        )
      )
      const logs: Array<{ readonly level: string; readonly text: string }> = []
      const capture = Logger.make(({ annotations, logLevel, message }) => {
        logs.push({
          level: logLevel.label,
          text: `${JSON.stringify(List.isList(message) ? List.toArray(message) : message)} ${JSON.stringify([...HashMap.toEntries(annotations)])}`
        })
      })
      const fake = yield* FakeLlm.make(FakeLlm.reply("must not run"))
      const policy = yield* Idempotency.policy().pipe(Effect.provideService(Idempotency.IdempotencyStore, store))
      const exit = yield* Effect.exit(LlmClient.decorate(fake.client, policy).complete(request)).pipe(
        Effect.provide(Logger.replace(Logger.defaultLogger, capture))
      )
      expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
      expect(Exit.isFailure(exit) && Option.getOrThrow(Cause.dieOption(exit.cause))).toMatchObject({ _tag: "RedisError" })
      expect((yield* fake.recorder.calls).length).toBe(0)
      expect(logs).toHaveLength(1)
      expect(logs[0]).toMatchObject({ level: "ERROR" })
      expect(logs[0].text).toContain("claim failed")

      // After the call, failures are warnings: the outcome is kept and the claim expires at its lease.
      const after = yield* Effect.all([
        store.complete("llm-idem:v1:secret", record, T0, MINUTE, "owner"),
        store.release("llm-idem:v1:secret", "owner")
      ]).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, capture)))
      expect(after).toEqual([false, false])
      expect(logs.slice(1).map((l) => l.level)).toEqual(["WARN", "WARN"])
      const read = yield* Effect.exit(store.get("llm-idem:v1:secret", T0)).pipe(
        Effect.provide(Logger.replace(Logger.defaultLogger, capture))
      )
      expect(Exit.isFailure(read) && Cause.isDie(read.cause)).toBe(true)
      expect(logs.slice(3).map((l) => l.level)).toEqual(["ERROR"])
      expect(logs.some((l) => l.text.includes("secret") || l.text.includes("refund"))).toBe(false)
      down.disconnect()
    }))
})
