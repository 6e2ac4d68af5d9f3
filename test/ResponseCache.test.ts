import { describe, expect, it } from "@effect/vitest"
import { Chunk, Duration, Effect, Fiber, Layer, Option, Ref, Stream, TestClock } from "effect"
import * as Fallback from "../src/Fallback.js"
import * as FakeLlm from "../src/FakeLlm.js"
import { ChatRequest, type ChatResponse } from "../src/Llm.js"
import * as LlmClient from "../src/LlmClient.js"
import { BadRequest, ServerError } from "../src/LlmError.js"
import * as LlmMetrics from "../src/LlmMetrics.js"
import * as ResponseCache from "../src/ResponseCache.js"

const request = (extra: Partial<ConstructorParameters<typeof ChatRequest>[0]> = {}) =>
  new ChatRequest({
    model: "gpt-4o",
    messages: [{ role: "user", content: "What is the capital of France?" }],
    temperature: 0,
    ...extra
  })

/** A decorated client over a scripted fake, with the cache and a count of provider calls. */
const setup = (options: ResponseCache.Options, script: FakeLlm.Script) =>
  Effect.gen(function* () {
    const { client, recorder } = yield* FakeLlm.make(script)
    const cache = yield* ResponseCache.policy(options)
    return {
      client: LlmClient.decorate(client, cache),
      cache,
      providerCalls: Effect.map(recorder.calls, (calls) => calls.length)
    }
  }).pipe(Effect.provide(ResponseCache.layerStoreMemory))

const content = (chunks: Chunk.Chunk<{ readonly content: string }>) => Chunk.toReadonlyArray(chunks).map((c) => c.content).join("")

describe("ResponseCache.policy", () => {
  it.effect("100 concurrent identical requests make exactly 1 provider call", () =>
    Effect.gen(function* () {
      const { cache, client, providerCalls } = yield* setup({}, FakeLlm.delay("1 second", FakeLlm.reply("Paris")))
      const before = yield* LlmMetrics.snapshot
      const fiber = yield* Effect.fork(
        Effect.all(Array.from({ length: 100 }, () => client.complete(request())), { concurrency: "unbounded" })
      )
      yield* TestClock.adjust("1 second")
      const responses = yield* Fiber.join(fiber)
      expect(yield* providerCalls).toBe(1)
      expect(responses.every((r) => r.content === "Paris")).toBe(true)
      expect(responses.filter((r) => r.servedFrom === "provider")).toHaveLength(1)
      expect(responses.filter((r) => r.servedFrom === "cache")).toHaveLength(99)
      expect(yield* cache.stats).toEqual({ hits: 99, misses: 1, size: 1, inFlight: 0 })
      const after = yield* LlmMetrics.snapshot
      expect(after.cacheHits - before.cacheHits).toBe(99)
      expect(after.cacheMisses - before.cacheMisses).toBe(1)
    }))

  it.effect("a later identical request is a hit: servedFrom cache, no provider call", () =>
    Effect.gen(function* () {
      const { client, providerCalls } = yield* setup({}, FakeLlm.reply("Paris"))
      const first = yield* client.complete(request())
      const second = yield* client.complete(request())
      expect(first.servedFrom).toBe("provider")
      expect(second.servedFrom).toBe("cache")
      expect(second.content).toBe("Paris")
      expect(second.id).toBe(first.id)
      expect(yield* providerCalls).toBe(1)
    }))

  it.effect("user A's cached answer is never served to user B nor to an anonymous caller", () =>
    Effect.gen(function* () {
      const { client, providerCalls } = yield* setup(
        {},
        ({ request: r }) => FakeLlm.reply(`answer for ${r.user ?? "nobody"}`)
      )
      expect((yield* client.complete(request({ user: "alice" }))).content).toBe("answer for alice")
      expect((yield* client.complete(request({ user: "bob" }))).content).toBe("answer for bob")
      expect((yield* client.complete(request())).content).toBe("answer for nobody")
      expect((yield* client.complete(request({ user: "anonymous" }))).content).toBe("answer for anonymous")
      expect(yield* providerCalls).toBe(4)
      const again = yield* client.complete(request({ user: "alice" }))
      expect(again).toMatchObject({ content: "answer for alice", servedFrom: "cache" })
      expect(yield* providerCalls).toBe(4)
    }))

  it.effect("concurrent identical requests of different users are not coalesced", () =>
    Effect.gen(function* () {
      const { client, providerCalls } = yield* setup(
        {},
        ({ request: r }) => FakeLlm.delay("1 second", FakeLlm.reply(`for ${r.user}`))
      )
      const fiber = yield* Effect.fork(Effect.all(
        ["a", "b", "a", "b"].map((user) => client.complete(request({ user }))),
        { concurrency: "unbounded" }
      ))
      yield* TestClock.adjust("1 second")
      const responses = yield* Fiber.join(fiber)
      expect(responses.map((r) => r.content)).toEqual(["for a", "for b", "for a", "for b"])
      expect(yield* providerCalls).toBe(2)
    }))

  it.effect("a scope function can widen or narrow the scope", () =>
    Effect.gen(function* () {
      const { client, providerCalls } = yield* setup(
        { scope: (r) => r.metadata?.team ?? "none" },
        FakeLlm.reply("shared by the team")
      )
      yield* client.complete(request({ user: "alice", metadata: { team: "red" } }))
      const bob = yield* client.complete(request({ user: "bob", metadata: { team: "red" } }))
      yield* client.complete(request({ user: "carol", metadata: { team: "blue" } }))
      expect(bob.servedFrom).toBe("cache")
      expect(yield* providerCalls).toBe(2)
    }))

  it.effect("only deterministic requests are cached by default; cacheable overrides", () =>
    Effect.gen(function* () {
      const { client, providerCalls } = yield* setup({}, FakeLlm.reply("x"))
      yield* client.complete(request({ temperature: 0.7 }))
      yield* client.complete(request({ temperature: 0.7 }))
      yield* client.complete(request({ temperature: undefined }))
      yield* client.complete(request({ temperature: undefined }))
      expect(yield* providerCalls).toBe(4)
      yield* client.complete(request({ temperature: 0.7, seed: 42 }))
      expect((yield* client.complete(request({ temperature: 0.7, seed: 42 }))).servedFrom).toBe("cache")
      expect(yield* providerCalls).toBe(5)

      const custom = yield* setup({ cacheable: (r) => r.model === "gpt-4o" }, FakeLlm.reply("x"))
      yield* custom.client.complete(request({ temperature: 1 }))
      expect((yield* custom.client.complete(request({ temperature: 1 }))).servedFrom).toBe("cache")
      yield* custom.client.complete(request({ model: "gpt-4o-mini" }))
      yield* custom.client.complete(request({ model: "gpt-4o-mini" }))
      expect(yield* custom.providerCalls).toBe(3)
    }))

  it.effect("an output-affecting field changes the key; metadata and idempotencyKey do not", () =>
    Effect.gen(function* () {
      const { client, providerCalls } = yield* setup({}, FakeLlm.reply("x"))
      yield* client.complete(request())
      yield* client.complete(request({ maxTokens: 5 }))
      yield* client.complete(request({ stop: ["."] }))
      expect(yield* providerCalls).toBe(3)
      const hit = yield* client.complete(request({ metadata: { trace: "t1" }, idempotencyKey: "k1" }))
      expect(hit.servedFrom).toBe("cache")
    }))

  it.effect("errors are never cached, and a coalesced failure reaches every waiter", () =>
    Effect.gen(function* () {
      const { client, providerCalls } = yield* setup({}, [
        FakeLlm.delay("1 second", FakeLlm.fail(new ServerError({ status: 503 }))),
        FakeLlm.fail(new BadRequest({ status: 400 })),
        FakeLlm.reply("ok")
      ])
      const fiber = yield* Effect.fork(
        Effect.all(Array.from({ length: 3 }, () => Effect.flip(client.complete(request()))), { concurrency: "unbounded" })
      )
      yield* TestClock.adjust("1 second")
      const errors = yield* Fiber.join(fiber)
      expect(errors.map((e) => e._tag)).toEqual(["ServerError", "ServerError", "ServerError"])
      expect((yield* Effect.flip(client.complete(request())))._tag).toBe("BadRequest")
      expect((yield* client.complete(request())).servedFrom).toBe("provider")
      expect((yield* client.complete(request())).servedFrom).toBe("cache")
      expect(yield* providerCalls).toBe(3)
    }))

  describe("answers a fallback model gave (cacheFallbackAnswers)", () => {
    const fallback = FakeLlm.reply("from the backup", { model: "gpt-4o-mini" })
    /** The first of some instants (ms after the answer) at which the fallback's entry is no longer served. */
    const lifetime = (options: ResponseCache.Options) =>
      Effect.gen(function* () {
        const { client } = yield* setup(options, fallback)
        yield* client.complete(request())
        let now = 0
        for (const at of [0, 999, 1_000, 59_999, 60_000, 3_599_999, 3_600_000]) {
          yield* TestClock.adjust(at - now)
          now = at
          const answer = yield* client.complete(request())
          if (answer.servedFrom !== "cache") return at
          expect(answer.model).toBe("gpt-4o-mini") // a hit says which model answered
        }
        return Infinity
      })

    it.effect("by default they live 1 minute under the requested model's key, then the requested model is asked again", () =>
      Effect.gen(function* () {
        const { client, providerCalls } = yield* setup({ ttl: "1 hour" }, fallback)
        yield* client.complete(request())
        yield* TestClock.adjust(60_000 - 1)
        expect((yield* client.complete(request())).servedFrom).toBe("cache")
        yield* TestClock.adjust(1)
        expect((yield* client.complete(request())).servedFrom).toBe("provider")
        expect(yield* providerCalls).toBe(2)
        expect(yield* lifetime({ ttl: "1 hour" })).toBe(60_000)
      }))

    it.effect("{ ttl } sets that lifetime (never beyond ttl), true the full ttl, false never stores them", () =>
      Effect.gen(function* () {
        expect(yield* lifetime({ ttl: "1 hour", cacheFallbackAnswers: { ttl: "1 second" } })).toBe(1_000)
        expect(yield* lifetime({ ttl: "1 second", cacheFallbackAnswers: { ttl: "2 hours" } })).toBe(1_000)
        expect(yield* lifetime({ ttl: "1 hour", cacheFallbackAnswers: true })).toBe(3_600_000)
        expect(yield* lifetime({ ttl: "1 hour", cacheFallbackAnswers: false })).toBe(0)
      }))

    it.effect("a dated snapshot of the requested model is the same model: stored for the full ttl", () =>
      Effect.gen(function* () {
        const snapshot = yield* setup({ ttl: "1 hour" }, FakeLlm.reply("dated", { model: "gpt-4o-2024-08-06" }))
        yield* snapshot.client.complete(request())
        yield* TestClock.adjust("59 minutes")
        expect((yield* snapshot.client.complete(request())).servedFrom).toBe("cache")
      }))

    it.effect("during an outage of the primary, the duplicates of a Fallback below the cache are served from the cache", () =>
      Effect.gen(function* () {
        const { client: provider, recorder } = yield* FakeLlm.make(({ request: r }) =>
          r.model === "gpt-4o"
            ? FakeLlm.fail(new ServerError({ status: 503, model: r.model }))
            : FakeLlm.reply("backup answer")
        )
        const cache = yield* ResponseCache.policy({ ttl: "1 hour" })
        const client = LlmClient.decorate(provider, cache, Fallback.policy({ models: ["gpt-4o", "gpt-4o-mini"] }))
        const answers = yield* Effect.forEach(Array.from({ length: 5 }, () => request()), client.complete)
        expect(answers.map((a) => [a.model, a.servedFrom])).toEqual([
          ["gpt-4o-mini", "provider"],
          ...Array.from({ length: 4 }, () => ["gpt-4o-mini", "cache"])
        ])
        expect((yield* recorder.calls).map((c) => c.request.model)).toEqual(["gpt-4o", "gpt-4o-mini"])
        expect(yield* cache.stats).toMatchObject({ hits: 4, misses: 1, size: 1 })
      }).pipe(Effect.provide(ResponseCache.layerStoreMemory)))

    it.effect("a bad lifetime is InvalidOptions at cacheFallbackAnswers", () =>
      Effect.gen(function* () {
        for (const cacheFallbackAnswers of [{ ttl: 0 }, { ttl: "soon" }, { tll: "1 minute" }, "yes"]) {
          const error = yield* Effect.flip(
            ResponseCache.policy({ cacheFallbackAnswers } as never).pipe(Effect.provide(ResponseCache.layerStoreMemory))
          )
          expect(error._tag).toBe("InvalidOptions")
          expect(error.issues.every((i) => i.path.startsWith("cacheFallbackAnswers")), JSON.stringify(error.issues)).toBe(true)
        }
      }))
  })

  it.effect("entries expire after ttl on the Effect clock", () =>
    Effect.gen(function* () {
      const { cache, client, providerCalls } = yield* setup({ ttl: "10 minutes" }, FakeLlm.reply("x"))
      yield* client.complete(request())
      yield* TestClock.adjust(10 * 60_000 - 1)
      expect((yield* client.complete(request())).servedFrom).toBe("cache")
      yield* TestClock.adjust(1)
      expect((yield* client.complete(request())).servedFrom).toBe("provider")
      expect(yield* providerCalls).toBe(2)
      expect((yield* cache.stats).size).toBe(1)
    }))

  it.effect("beyond capacity the least recently used entry is evicted", () =>
    Effect.gen(function* () {
      const { client, providerCalls } = yield* setup({ capacity: 2 }, ({ request: r }) => FakeLlm.reply(r.messages[0].content))
      const ask = (q: string) => client.complete(request({ messages: [{ role: "user", content: q }] }))
      yield* ask("a")
      yield* ask("b")
      yield* ask("a") // a is now more recent than b
      yield* ask("c") // evicts b
      expect(yield* providerCalls).toBe(3)
      expect((yield* ask("a")).servedFrom).toBe("cache")
      expect((yield* ask("c")).servedFrom).toBe("cache")
      expect((yield* ask("b")).servedFrom).toBe("provider")
      expect(yield* providerCalls).toBe(4)
    }))

  it.effect("capacity bounds only the entries a policy wrote: hits on another policy's entries never evict them", () =>
    Effect.gen(function* () {
      const store = yield* ResponseCache.makeStoreMemory()
      const onStore = <A, E>(effect: Effect.Effect<A, E, ResponseCache.ResponseCacheStore>) =>
        Effect.provideService(effect, ResponseCache.ResponseCacheStore, store)
      const writer = yield* FakeLlm.make(({ request: r }) => FakeLlm.reply(r.messages[0].content))
      const reader = yield* FakeLlm.make(({ request: r }) => FakeLlm.reply(r.messages[0].content))
      const a = LlmClient.decorate(writer.client, yield* onStore(ResponseCache.policy({ capacity: 10 })))
      const b = LlmClient.decorate(reader.client, yield* onStore(ResponseCache.policy({ capacity: 1 })))
      const ask = (client: LlmClient.Service, q: string) =>
        client.complete(request({ messages: [{ role: "user", content: q }] }))
      for (const q of ["q1", "q2", "q3"]) yield* ask(a, q)
      for (const q of ["q1", "q2", "q3"]) expect((yield* ask(b, q)).servedFrom).toBe("cache")
      yield* ask(b, "q4") // b's own write: within b's capacity of 1, nothing of a's is deleted
      expect(yield* store.size(0)).toBe(4)
      for (const q of ["q1", "q2", "q3"]) expect((yield* ask(a, q)).servedFrom).toBe("cache")
      yield* ask(b, "q5") // b evicts its own least recently used entry, q4
      expect((yield* ask(a, "q4")).servedFrom).toBe("provider")
      expect((yield* writer.recorder.calls).length).toBe(4)
      expect((yield* reader.recorder.calls).length).toBe(2)
    }))

  it.effect("a stream miss streams through and is stored; a hit replays it as chunks (no provider call)", () =>
    Effect.gen(function* () {
      const { client, providerCalls } = yield* setup({}, FakeLlm.stream(["The capital ", "is ", "Paris."]))
      const first = yield* Stream.runCollect(client.stream(request()))
      expect(content(first)).toBe("The capital is Paris.")
      expect(Chunk.toReadonlyArray(first).every((c) => c.servedFrom === undefined)).toBe(true)
      const replay = Chunk.toReadonlyArray(yield* Stream.runCollect(client.stream(request())))
      expect(replay.map((c) => c.content).join("")).toBe("The capital is Paris.")
      expect(replay.length).toBeGreaterThan(1)
      expect(replay.every((c) => c.servedFrom === "cache")).toBe(true)
      const last = replay[replay.length - 1]
      expect(last.finishReason).toBe("stop")
      expect(last.usage).toEqual(Chunk.toReadonlyArray(first)[3].usage)
      expect(replay.slice(0, -1).every((c) => c.finishReason === undefined)).toBe(true)
      // The stored stream also answers a plain completion.
      expect((yield* client.complete(request())).content).toBe("The capital is Paris.")
      expect(yield* providerCalls).toBe(1)
    }))

  it.effect("a cut stream or one abandoned before its finish reason is not stored", () =>
    Effect.gen(function* () {
      const { client, providerCalls } = yield* setup({}, [
        FakeLlm.cut(["partial ", "answer"]),
        FakeLlm.stream(["a ", "b ", "c"]),
        FakeLlm.stream(["whole"])
      ])
      const cut = yield* Effect.flip(Stream.runCollect(client.stream(request())))
      expect(cut._tag).toBe("StreamTruncated")
      yield* Stream.runCollect(Stream.take(client.stream(request()), 1))
      const whole = yield* Stream.runCollect(client.stream(request()))
      expect(content(whole)).toBe("whole")
      expect(yield* providerCalls).toBe(3)
      expect((yield* client.complete(request())).servedFrom).toBe("cache")
    }))

  it.effect("a streamed tool-call answer is stored with its calls and replayed with them", () =>
    Effect.gen(function* () {
      const toolCalls = [{ id: "call_1", name: "lookup", arguments: "{\"q\":\"Paris\"}" }]
      const { client, providerCalls } = yield* setup({}, FakeLlm.reply("", { toolCalls }))
      const streamed = Chunk.toReadonlyArray(yield* Stream.runCollect(client.stream(request())))
      expect(streamed[streamed.length - 1].toolCalls).toEqual(toolCalls)
      const hit = yield* client.complete(request())
      expect(hit.servedFrom).toBe("cache")
      expect(hit.finishReason).toBe("tool_calls")
      expect(hit.toolCalls).toEqual(toolCalls)
      const replay = Chunk.toReadonlyArray(yield* Stream.runCollect(client.stream(request())))
      expect(replay[replay.length - 1]).toMatchObject({ servedFrom: "cache", finishReason: "tool_calls", toolCalls })
      expect(yield* providerCalls).toBe(1)
    }))

  it.effect("a streamed tool-call answer without its calls is not stored (it could not be replayed)", () =>
    Effect.gen(function* () {
      const { client, providerCalls } = yield* setup({}, [
        FakeLlm.stream([""], { finishReason: "tool_calls" }),
        FakeLlm.reply("", { finishReason: "tool_calls" })
      ])
      yield* Stream.runCollect(client.stream(request()))
      expect((yield* client.complete(request())).servedFrom).toBe("provider")
      expect(yield* providerCalls).toBe(2)
    }))

  it.effect("a completion answer is replayed to a stream of the same request", () =>
    Effect.gen(function* () {
      const { client, providerCalls } = yield* setup({}, FakeLlm.reply("one two three"))
      yield* client.complete(request())
      const replay = yield* Stream.runCollect(client.stream(request()))
      expect(content(replay)).toBe("one two three")
      expect(yield* providerCalls).toBe(1)
    }))

  it.effect("a stream started while the same completion is in flight shares its answer", () =>
    Effect.gen(function* () {
      const { client, providerCalls } = yield* setup({}, FakeLlm.delay("1 second", FakeLlm.reply("shared answer")))
      const completion = yield* Effect.fork(client.complete(request()))
      yield* TestClock.adjust("10 millis")
      const streamed = yield* Effect.fork(Stream.runCollect(client.stream(request())))
      yield* TestClock.adjust("1 second")
      expect((yield* Fiber.join(completion)).content).toBe("shared answer")
      expect(content(yield* Fiber.join(streamed))).toBe("shared answer")
      expect(yield* providerCalls).toBe(1)
    }))

  it.effect("interrupting one of three waiters does not cancel the upstream call; interrupting all does", () =>
    Effect.gen(function* () {
      const interrupted = yield* Ref.make(0)
      const upstream: LlmClient.Service = {
        complete: (r) =>
          Effect.onInterrupt(
            Effect.as(Effect.sleep("1 second"), fakeResponse(r.model)),
            () => Ref.update(interrupted, (n) => n + 1)
          ),
        stream: () => Stream.empty
      }
      const cache = yield* ResponseCache.policy({}).pipe(Effect.provide(ResponseCache.layerStoreMemory))
      const client = LlmClient.decorate(upstream, cache)
      const waiters = yield* Effect.all(Array.from({ length: 3 }, () => Effect.fork(client.complete(request()))))
      yield* TestClock.adjust("100 millis")
      yield* Fiber.interrupt(waiters[0])
      yield* TestClock.adjust("1 second")
      const answers = yield* Effect.all([Fiber.join(waiters[1]), Fiber.join(waiters[2])])
      expect(answers.map((a) => a.content)).toEqual(["ok", "ok"])
      expect(yield* Ref.get(interrupted)).toBe(0)

      const other = request({ messages: [{ role: "user", content: "another question" }] })
      const all = yield* Effect.all(Array.from({ length: 3 }, () => Effect.fork(client.complete(other))))
      yield* TestClock.adjust("100 millis")
      expect((yield* cache.stats).inFlight).toBe(1)
      for (const fiber of all) yield* Fiber.interrupt(fiber)
      expect(yield* Ref.get(interrupted)).toBe(1)
      expect((yield* cache.stats).inFlight).toBe(0)
    }))

  it.effect("invalidate(request | key) drops an entry; stats count hits, misses, size", () =>
    Effect.gen(function* () {
      const { cache, client, providerCalls } = yield* setup({}, FakeLlm.reply("x"))
      yield* client.complete(request({ user: "u1" }))
      yield* client.complete(request({ user: "u2" }))
      yield* cache.invalidate(request({ user: "u1" }))
      expect((yield* client.complete(request({ user: "u1" }))).servedFrom).toBe("provider")
      yield* cache.invalidate(cache.keyOf(request({ user: "u2" })))
      expect((yield* client.complete(request({ user: "u2" }))).servedFrom).toBe("provider")
      expect((yield* client.complete(request({ user: "u2" }))).servedFrom).toBe("cache")
      expect(yield* providerCalls).toBe(4)
      expect(yield* cache.stats).toEqual({ hits: 1, misses: 4, size: 2, inFlight: 0 })
      expect(cache.keyOf(request({ user: "u1" }))).toBe(ResponseCache.keyOf(request({ user: "u1" })))
    }))

  it.effect("as a service layer: LlmClient.layerWith(ResponseCache.current) + invalidate/stats accessors", () =>
    Effect.gen(function* () {
      const first = yield* LlmClient.complete(request())
      const second = yield* LlmClient.complete(request())
      expect([first.servedFrom, second.servedFrom]).toEqual(["provider", "cache"])
      yield* ResponseCache.invalidate(request())
      expect((yield* LlmClient.complete(request())).servedFrom).toBe("provider")
      const stats = yield* ResponseCache.stats
      expect(stats).toMatchObject({ hits: 1, misses: 2, size: 1 })
    }).pipe(
      Effect.provide(
        LlmClient.layerWith(ResponseCache.current).pipe(
          Layer.provide(FakeLlm.layer(FakeLlm.reply("x"))),
          Layer.provideMerge(ResponseCache.layer({ ttl: "1 hour" })),
          Layer.provide(ResponseCache.layerStoreMemory)
        )
      )
    ))

  it.effect("invalid options fail with InvalidOptions listing every failing path", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        ResponseCache.policy({ ttl: "soon" as never, capacity: 0, cacheable: "yes" as never }).pipe(
          Effect.provide(ResponseCache.layerStoreMemory)
        )
      )
      expect(error._tag).toBe("InvalidOptions")
      expect(error.issues.map((i) => i.path).sort()).toEqual(["cacheable", "capacity", "ttl"])
    }))

  it.effect("a misspelt option, a zero or infinite ttl is refused; so is a bad store capacity", () =>
    Effect.gen(function* () {
      const misspelt = yield* Effect.flip(
        ResponseCache.policy({ tll: "1 hour", cacheFallbackAnswer: true } as never).pipe(
          Effect.provide(ResponseCache.layerStoreMemory)
        )
      )
      expect(misspelt.issues.map((i) => i.path).sort()).toEqual(["cacheFallbackAnswer", "tll"])
      for (const ttl of [0, Duration.infinity]) {
        const error = yield* Effect.flip(
          ResponseCache.policy({ ttl }).pipe(Effect.provide(ResponseCache.layerStoreMemory))
        )
        expect(error.issues.map((i) => i.path)).toEqual(["ttl"])
      }
      const zero = yield* Effect.flip(Effect.scoped(Layer.build(ResponseCache.layerStoreMemoryWith({ capacity: 0 }))))
      expect(zero.issues.map((i) => i.path)).toEqual(["capacity"])
      const fraction = yield* Effect.flip(ResponseCache.makeStoreMemory({ capacity: 1.5 }))
      expect(fraction.issues.map((i) => i.path)).toEqual(["capacity"])
      const misspeltStore = yield* Effect.flip(ResponseCache.makeStoreMemory({ capasity: 5 } as never))
      expect(misspeltStore.issues.map((i) => i.path)).toEqual(["capasity"])
    }))

  it.effect("a store entry that no longer decodes is a miss and is replaced", () =>
    Effect.gen(function* () {
      const store = yield* ResponseCache.makeStoreMemory()
      const { client, recorder } = yield* FakeLlm.make(FakeLlm.reply("fresh"))
      const cache = yield* ResponseCache.policy({}).pipe(Effect.provideService(ResponseCache.ResponseCacheStore, store))
      const decorated = LlmClient.decorate(client, cache)
      yield* store.set(cache.keyOf(request()), { bogus: true } as never, Number.MAX_SAFE_INTEGER, 0)
      expect((yield* decorated.complete(request())).content).toBe("fresh")
      expect((yield* decorated.complete(request())).servedFrom).toBe("cache")
      expect((yield* recorder.calls).length).toBe(1)
      expect(Option.isSome(yield* store.get(cache.keyOf(request()), 0))).toBe(true)
    }))
})

const fakeResponse = (model: string): ChatResponse =>
  ({
    id: "x",
    model,
    content: "ok",
    finishReason: "stop",
    usage: { inputTokens: 1, outputTokens: 1 },
    servedFrom: "provider"
  }) as ChatResponse
