import { describe, expect, it } from "@effect/vitest"
import { Chunk, Duration, Effect, Exit, Fiber, Logger, Option, Ref, Stream, TestClock } from "effect"
import * as FakeLlm from "../src/FakeLlm.js"
import * as Idempotency from "../src/Idempotency.js"
import { ChatRequest, ChatResponse } from "../src/Llm.js"
import * as LlmClient from "../src/LlmClient.js"
import {
  AllModelsFailed,
  AuthError,
  BadRequest,
  BudgetExceeded,
  BulkheadRejected,
  CircuitOpen,
  ContentFiltered,
  ContextTooLong,
  ModelNotFound,
  QuotaExhausted,
  ServerError
} from "../src/LlmError.js"
import * as LlmMetrics from "../src/LlmMetrics.js"

const request = (extra: Partial<ConstructorParameters<typeof ChatRequest>[0]> = {}) =>
  new ChatRequest({
    model: "gpt-4o",
    messages: [{ role: "user", content: "Refund order 42" }],
    user: "u1",
    idempotencyKey: "order-42",
    ...extra
  })

/** A decorated client over a scripted fake and a given store ("a process"), with a count of provider calls. */
const processOn = (store: Idempotency.Store, options: Idempotency.Options, script: FakeLlm.Script) =>
  Effect.gen(function* () {
    const { client, recorder } = yield* FakeLlm.make(script)
    const policy = yield* Idempotency.policy(options).pipe(Effect.provideService(Idempotency.IdempotencyStore, store))
    return {
      client: LlmClient.decorate(client, policy),
      policy,
      providerCalls: Effect.map(recorder.calls, (calls) => calls.length)
    }
  })

const setup = (options: Idempotency.Options, script: FakeLlm.Script) =>
  Effect.flatMap(Idempotency.makeStoreMemory(), (store) => processOn(store, options, script))

/** An upstream that counts starts and interruptions. */
const countingUpstream = Effect.gen(function* () {
  const started = yield* Ref.make(0)
  const interrupted = yield* Ref.make(0)
  const service: LlmClient.Service = {
    complete: (r) =>
      Ref.update(started, (n) => n + 1).pipe(
        Effect.zipRight(Effect.sleep("1 second")),
        Effect.as(new ChatResponse({
          id: "up-1",
          model: r.model,
          content: "refunded",
          finishReason: "stop",
          usage: { inputTokens: 5, outputTokens: 1 },
          servedFrom: "provider"
        })),
        Effect.onInterrupt(() => Ref.update(interrupted, (n) => n + 1))
      ),
    stream: () => Stream.empty
  }
  return { service, started: Ref.get(started), interrupted: Ref.get(interrupted) }
})

describe("Idempotency.policy", () => {
  it.effect("100 concurrent calls with one key make exactly 1 provider call; duplicates share its answer", () =>
    Effect.gen(function* () {
      const { client, providerCalls } = yield* setup({}, FakeLlm.delay("1 second", FakeLlm.reply("refunded")))
      const before = yield* LlmMetrics.snapshot
      const fiber = yield* Effect.fork(
        Effect.all(Array.from({ length: 100 }, () => client.complete(request())), { concurrency: "unbounded" })
      )
      yield* TestClock.adjust("1 second")
      const responses = yield* Fiber.join(fiber)
      expect(yield* providerCalls).toBe(1)
      expect(responses.every((r) => r.content === "refunded" && r.id === responses[0].id)).toBe(true)
      expect(responses.filter((r) => r.servedFrom === "provider")).toHaveLength(1)
      expect(responses.filter((r) => r.servedFrom === "idempotency")).toHaveLength(99)
      const after = yield* LlmMetrics.snapshot
      expect(after.idempotencyReplays - before.idempotencyReplays).toBe(99)
    }))

  it.effect("a success is replayed to later calls with the same key until ttl", () =>
    Effect.gen(function* () {
      const { client, providerCalls } = yield* setup({ ttl: "1 hour" }, FakeLlm.reply("refunded"))
      const first = yield* client.complete(request())
      const replay = yield* client.complete(request())
      expect(first.servedFrom).toBe("provider")
      expect(replay).toMatchObject({ id: first.id, content: "refunded", servedFrom: "idempotency" })
      expect(yield* providerCalls).toBe(1)
      yield* TestClock.adjust("1 hour")
      expect((yield* client.complete(request())).servedFrom).toBe("provider")
      expect(yield* providerCalls).toBe(2)
    }))

  it.effect("a final (non-retryable) failure is stored and replayed", () =>
    Effect.gen(function* () {
      const { client, providerCalls } = yield* setup({}, [
        FakeLlm.fail(new BadRequest({ status: 400, param: "messages" })),
        FakeLlm.reply("should not be reached")
      ])
      const first = yield* Effect.flip(client.complete(request()))
      const replay = yield* Effect.flip(client.complete(request()))
      expect(first._tag).toBe("BadRequest")
      expect(replay).toMatchObject({ _tag: "BadRequest", status: 400, param: "messages" })
      expect(replay).toBeInstanceOf(BadRequest)
      expect(yield* providerCalls).toBe(1)
    }))

  it.effect("a retryable failure is not stored: the claim is released and a later retry runs", () =>
    Effect.gen(function* () {
      const { client, providerCalls } = yield* setup({}, [
        FakeLlm.fail(new ServerError({ status: 503 })),
        FakeLlm.reply("refunded")
      ])
      expect((yield* Effect.flip(client.complete(request())))._tag).toBe("ServerError")
      const retried = yield* client.complete(request())
      expect(retried).toMatchObject({ content: "refunded", servedFrom: "provider" })
      expect((yield* client.complete(request())).servedFrom).toBe("idempotency")
      expect(yield* providerCalls).toBe(2)
    }))

  it.effect("a non-retryable but passing state (open circuit, bulkhead, budget, quota, auth, missing model) is not stored", () =>
    Effect.gen(function* () {
      const passing = [
        new CircuitOpen({ key: "gpt-4o", retryAfter: Duration.seconds(30) }),
        new BulkheadRejected({ key: "gpt-4o", maxConcurrent: 1, maxQueue: 0 }),
        new BudgetExceeded({ scope: "user", requested: 100, remaining: 0 }),
        new QuotaExhausted({}),
        new AuthError({}),
        new ModelNotFound({}),
        new AllModelsFailed({ failures: [] })
      ]
      const { client, providerCalls } = yield* setup({}, [...passing.map(FakeLlm.fail), FakeLlm.reply("refunded")])
      for (const error of passing) expect((yield* Effect.flip(client.complete(request())))._tag).toBe(error._tag)
      expect((yield* client.complete(request())).servedFrom).toBe("provider")
      expect((yield* client.complete(request())).servedFrom).toBe("idempotency")
      expect(yield* providerCalls).toBe(passing.length + 1)
    }))

  it.effect("ContextTooLong and ContentFiltered are answers to the request: recorded and replayed", () =>
    Effect.gen(function* () {
      const { client, providerCalls } = yield* setup({}, [
        FakeLlm.fail(new ContextTooLong({ contextWindow: 8192 })),
        FakeLlm.fail(new ContentFiltered({}))
      ])
      expect((yield* Effect.flip(client.complete(request())))._tag).toBe("ContextTooLong")
      expect((yield* Effect.flip(client.complete(request())))._tag).toBe("ContextTooLong")
      const other = request({ idempotencyKey: "order-43" })
      expect((yield* Effect.flip(client.complete(other)))._tag).toBe("ContentFiltered")
      expect((yield* Effect.flip(client.complete(other)))._tag).toBe("ContentFiltered")
      expect(yield* providerCalls).toBe(2)
    }))

  it.effect("the same key with a different payload → IdempotencyConflict payload-mismatch (settled or in flight)", () =>
    Effect.gen(function* () {
      const { client, providerCalls } = yield* setup({}, FakeLlm.delay("1 second", FakeLlm.reply("refunded")))
      const other = request({ messages: [{ role: "user", content: "Refund order 43" }] })
      const first = yield* Effect.fork(client.complete(request()))
      yield* TestClock.adjust("10 millis")
      const whileRunning = yield* Effect.flip(client.complete(other))
      expect(whileRunning).toMatchObject({ _tag: "IdempotencyConflict", reason: "payload-mismatch", key: "order-42" })
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(first)
      const afterwards = yield* Effect.flip(client.complete(other))
      expect(afterwards).toMatchObject({ _tag: "IdempotencyConflict", reason: "payload-mismatch" })
      expect(yield* Effect.flip(Stream.runCollect(client.stream(other)))).toMatchObject({ reason: "payload-mismatch" })
      // Metadata is not part of the payload.
      expect((yield* client.complete(request({ metadata: { attempt: "2" } }))).servedFrom).toBe("idempotency")
      expect(yield* providerCalls).toBe(1)
    }))

  it.effect("onInFlight: reject refuses a concurrent duplicate with IdempotencyConflict in-flight", () =>
    Effect.gen(function* () {
      const { client, providerCalls } = yield* setup(
        { onInFlight: "reject" },
        FakeLlm.delay("1 second", FakeLlm.reply("refunded"))
      )
      const first = yield* Effect.fork(client.complete(request()))
      yield* TestClock.adjust("10 millis")
      const duplicate = yield* Effect.flip(client.complete(request()))
      expect(duplicate).toMatchObject({ _tag: "IdempotencyConflict", reason: "in-flight", key: "order-42" })
      yield* TestClock.adjust("1 second")
      expect((yield* Fiber.join(first)).servedFrom).toBe("provider")
      expect((yield* client.complete(request())).servedFrom).toBe("idempotency")
      expect(yield* providerCalls).toBe(1)
    }))

  it.effect("interrupting 1 of 3 waiters: the upstream call continues and the others get the answer", () =>
    Effect.gen(function* () {
      const upstream = yield* countingUpstream
      const policy = yield* Idempotency.policy().pipe(Effect.provide(Idempotency.layerStoreMemory))
      const client = LlmClient.decorate(upstream.service, policy)
      const waiters = yield* Effect.all(Array.from({ length: 3 }, () => Effect.fork(client.complete(request()))))
      yield* TestClock.adjust("100 millis")
      yield* Fiber.interrupt(waiters[0])
      yield* TestClock.adjust("1 second")
      const answers = yield* Effect.all([Fiber.join(waiters[1]), Fiber.join(waiters[2])])
      expect(answers.map((a) => a.content)).toEqual(["refunded", "refunded"])
      expect(answers.map((a) => a.servedFrom)).toEqual(["idempotency", "idempotency"])
      expect(yield* upstream.started).toBe(1)
      expect(yield* upstream.interrupted).toBe(0)
      expect((yield* client.complete(request())).servedFrom).toBe("idempotency")
    }))

  it.effect("interrupting every waiter interrupts the upstream call and releases the claim", () =>
    Effect.gen(function* () {
      const upstream = yield* countingUpstream
      const policy = yield* Idempotency.policy().pipe(Effect.provide(Idempotency.layerStoreMemory))
      const client = LlmClient.decorate(upstream.service, policy)
      const waiters = yield* Effect.all(Array.from({ length: 3 }, () => Effect.fork(client.complete(request()))))
      yield* TestClock.adjust("100 millis")
      expect(yield* policy.inFlight).toBe(1)
      yield* Fiber.interrupt(waiters[0])
      yield* Fiber.interrupt(waiters[1])
      expect(yield* upstream.interrupted).toBe(0)
      yield* Fiber.interrupt(waiters[2])
      expect(yield* upstream.interrupted).toBe(1)
      expect(yield* policy.inFlight).toBe(0)
      // The claim was released: the next call runs upstream.
      const retry = yield* Effect.fork(client.complete(request()))
      yield* TestClock.adjust("1 second")
      expect((yield* Fiber.join(retry)).servedFrom).toBe("provider")
      expect(yield* upstream.started).toBe(2)
    }))

  it.effect("keys are scoped by user: the same idempotency key of two users runs twice", () =>
    Effect.gen(function* () {
      const { client, policy, providerCalls } = yield* setup({}, ({ request: r }) => FakeLlm.reply(`done for ${r.user}`))
      expect((yield* client.complete(request({ user: "alice" }))).content).toBe("done for alice")
      expect((yield* client.complete(request({ user: "bob" }))).content).toBe("done for bob")
      expect((yield* client.complete(request({ user: undefined }))).content).toBe("done for undefined")
      expect(yield* providerCalls).toBe(3)
      const key = policy.keyOf(request({ user: "alice" })).key
      expect(key).toMatch(/^llm-idem:v1:[0-9a-f]{32}:k:[0-9a-f]{64}$/)
      expect(key).not.toContain("alice")
      expect(key).not.toContain("order-42")
      expect(Idempotency.keyOf(request({ user: "alice" }))).toEqual(policy.keyOf(request({ user: "alice" })))
    }))

  it.effect("without an idempotencyKey the key is derived from the request; requireKey passes such calls through", () =>
    Effect.gen(function* () {
      const derived = yield* setup({}, FakeLlm.reply("x"))
      const keyless = request({ idempotencyKey: undefined })
      yield* derived.client.complete(keyless)
      expect((yield* derived.client.complete(keyless)).servedFrom).toBe("idempotency")
      yield* derived.client.complete(request({ idempotencyKey: undefined, maxTokens: 10 }))
      expect(yield* derived.providerCalls).toBe(2)
      expect(derived.policy.keyOf(keyless).key).toContain(":r:")

      const explicitOnly = yield* setup({ requireKey: true }, FakeLlm.reply("x"))
      yield* explicitOnly.client.complete(keyless)
      expect((yield* explicitOnly.client.complete(keyless)).servedFrom).toBe("provider")
      yield* explicitOnly.client.complete(request())
      expect((yield* explicitOnly.client.complete(request())).servedFrom).toBe("idempotency")
      expect(yield* explicitOnly.providerCalls).toBe(3)
    }))

  it.effect("across processes: a duplicate sees the claim in the store and polls until the outcome is recorded", () =>
    Effect.gen(function* () {
      const store = yield* Idempotency.makeStoreMemory()
      const a = yield* processOn(store, { pollInterval: "200 millis" }, FakeLlm.delay("1 second", FakeLlm.reply("from A")))
      const b = yield* processOn(store, { pollInterval: "200 millis" }, FakeLlm.reply("from B"))
      const first = yield* Effect.fork(a.client.complete(request()))
      yield* TestClock.adjust("10 millis")
      const duplicate = yield* Effect.fork(b.client.complete(request()))
      yield* TestClock.adjust("500 millis")
      expect(Option.isNone(yield* Fiber.poll(duplicate))).toBe(true)
      yield* TestClock.adjust("700 millis")
      expect((yield* Fiber.join(first)).content).toBe("from A")
      expect(yield* Fiber.join(duplicate)).toMatchObject({ content: "from A", servedFrom: "idempotency" })
      expect(yield* b.providerCalls).toBe(0)

      const rejecting = yield* processOn(store, { onInFlight: "reject" }, FakeLlm.reply("from C"))
      const other = request({ idempotencyKey: "order-43" })
      const running = yield* Effect.fork(a.client.complete(other))
      yield* TestClock.adjust("10 millis")
      expect(yield* Effect.flip(rejecting.client.complete(other))).toMatchObject({ reason: "in-flight" })
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(running)
    }))

  it.effect("a claim left by a dead process blocks duplicates only until its lease expires", () =>
    Effect.gen(function* () {
      const store = yield* Idempotency.makeStoreMemory()
      const { client, policy, providerCalls } = yield* processOn(
        store,
        { lease: "1 minute", pollInterval: "10 seconds" },
        FakeLlm.reply("finally")
      )
      const { key, fingerprint } = policy.keyOf(request())
      yield* store.claim(key, fingerprint, 0, 60_000, "dead") // the "dead" holder
      const waiting = yield* Effect.fork(client.complete(request()))
      yield* TestClock.adjust("50 seconds")
      expect(Option.isNone(yield* Fiber.poll(waiting))).toBe(true)
      yield* TestClock.adjust("10 seconds")
      expect(yield* Fiber.join(waiting)).toMatchObject({ content: "finally", servedFrom: "provider" })
      expect(yield* providerCalls).toBe(1)
    }))

  it.effect("a holder whose lease expired and whose key another process claimed neither overwrites nor releases it", () =>
    Effect.gen(function* () {
      const store = yield* Idempotency.makeStoreMemory()
      const options: Idempotency.Options = { lease: "1 minute", pollInterval: "10 seconds" }
      // Process A's call outlives its lease; B's duplicate then claims the key and runs the call itself.
      const a = yield* processOn(store, options, FakeLlm.delay("90 seconds", FakeLlm.reply("from A")))
      const b = yield* processOn(store, options, FakeLlm.delay("90 seconds", FakeLlm.reply("from B")))
      const { key } = a.policy.keyOf(request())
      const logs: Array<string> = []
      const capture = Logger.make(({ logLevel, message }) => {
        logs.push(`${logLevel.label} ${JSON.stringify(message)}`)
      })
      const runA = yield* Effect.fork(a.client.complete(request()).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, capture))))
      yield* TestClock.adjust("1 second")
      const runB = yield* Effect.fork(b.client.complete(request()))
      yield* TestClock.adjust("60 seconds") // A's lease is over: B claims at its next poll and starts its call
      expect(yield* b.providerCalls).toBe(1)
      yield* TestClock.adjust("30 seconds") // A finishes: its claim is B's now
      expect(yield* Fiber.join(runA)).toMatchObject({ content: "from A", servedFrom: "provider" })
      expect(yield* store.get(key, 91_000)).toMatchObject(Option.some({ _tag: "InFlight" }))
      expect(logs.filter((l) => l.startsWith("WARN"))).toHaveLength(1)
      expect(logs[0]).toContain("not stored")
      expect(logs.some((l) => l.includes(key) || l.includes("order-42"))).toBe(false)
      yield* TestClock.adjust("90 seconds")
      expect(yield* Fiber.join(runB)).toMatchObject({ content: "from B", servedFrom: "provider" })
      // B's own record is the one stored and replayed.
      expect(yield* a.client.complete(request())).toMatchObject({ content: "from B", servedFrom: "idempotency" })
      expect(logs.filter((l) => l.startsWith("WARN"))).toHaveLength(1)
    }))

  it.effect("streams: a finished stream is recorded and replayed as chunks; a cut stream is not", () =>
    Effect.gen(function* () {
      const { client, providerCalls } = yield* setup({}, [
        FakeLlm.cut(["par", "tial"]),
        FakeLlm.stream(["Refund ", "issued."])
      ])
      const cut = yield* Effect.flip(Stream.runCollect(client.stream(request())))
      expect(cut._tag).toBe("StreamTruncated")
      const first = Chunk.toReadonlyArray(yield* Stream.runCollect(client.stream(request())))
      expect(first.map((c) => c.content).join("")).toBe("Refund issued.")
      const replay = Chunk.toReadonlyArray(yield* Stream.runCollect(client.stream(request())))
      expect(replay.map((c) => c.content).join("")).toBe("Refund issued.")
      expect(replay.every((c) => c.servedFrom === "idempotency")).toBe(true)
      expect(replay[replay.length - 1].finishReason).toBe("stop")
      expect((yield* client.complete(request())).content).toBe("Refund issued.")
      expect(yield* providerCalls).toBe(2)
    }))

  it.effect("streams: a duplicate stream in the same process waits for the first and replays it", () =>
    Effect.gen(function* () {
      const { client, providerCalls } = yield* setup(
        { pollInterval: "1 hour" },
        FakeLlm.stream(["a ", "b"], { interval: "1 second" })
      )
      const first = yield* Effect.fork(Stream.runCollect(client.stream(request())))
      yield* TestClock.adjust("10 millis")
      const second = yield* Effect.fork(Stream.runCollect(client.stream(request())))
      yield* TestClock.adjust("2 seconds")
      const [a, b] = [yield* Fiber.join(first), yield* Fiber.join(second)]
      expect(Chunk.toReadonlyArray(a).map((c) => c.content).join("")).toBe("a b")
      expect(Chunk.toReadonlyArray(b).map((c) => c.content).join("")).toBe("a b")
      expect(Chunk.toReadonlyArray(b).every((c) => c.servedFrom === "idempotency")).toBe(true)
      expect(yield* providerCalls).toBe(1)
    }))

  it.effect("streams: a tool-call answer is not recorded (its calls are not in the chunks); the claim is released", () =>
    Effect.gen(function* () {
      const { client, providerCalls } = yield* setup({}, [
        FakeLlm.stream([""], { finishReason: "tool_calls" }),
        FakeLlm.reply("", { finishReason: "tool_calls" })
      ])
      yield* Stream.runCollect(client.stream(request()))
      expect((yield* client.complete(request())).servedFrom).toBe("provider")
      expect(yield* providerCalls).toBe(2)
    }))

  it.effect("streams: a consumer that stops early releases the claim", () =>
    Effect.gen(function* () {
      const { client, providerCalls } = yield* setup({}, FakeLlm.stream(["a ", "b ", "c"]))
      yield* Stream.runCollect(Stream.take(client.stream(request()), 1))
      const full = yield* Stream.runCollect(client.stream(request()))
      expect(Chunk.toReadonlyArray(full).map((c) => c.content).join("")).toBe("a b c")
      expect(yield* providerCalls).toBe(2)
    }))

  it.effect("streams: interrupting the consumer mid-stream releases the claim; a waiting duplicate then runs", () =>
    Effect.gen(function* () {
      const { client, providerCalls } = yield* setup(
        { pollInterval: "1 hour" },
        FakeLlm.stream(["a ", "b ", "c"], { interval: "1 second" })
      )
      const first = yield* Effect.fork(Stream.runCollect(client.stream(request())))
      yield* TestClock.adjust("1500 millis")
      const duplicate = yield* Effect.fork(Stream.runCollect(client.stream(request())))
      yield* TestClock.adjust("10 millis")
      yield* Fiber.interrupt(first)
      // The duplicate is woken by the release (not by its one-hour poll), claims the key and streams it itself.
      yield* TestClock.adjust("3 seconds")
      const chunks = Chunk.toReadonlyArray(yield* Fiber.join(duplicate))
      expect(chunks.map((c) => c.content).join("")).toBe("a b c")
      expect(chunks.every((c) => c.servedFrom === undefined)).toBe(true)
      expect(yield* providerCalls).toBe(2)
    }))

  it.effect("a defect is not stored and reaches every waiter", () =>
    Effect.gen(function* () {
      let calls = 0
      const upstream: LlmClient.Service = {
        complete: () => Effect.zipRight(Effect.sleep("1 second"), Effect.suspend(() => (++calls === 1 ? Effect.die("boom") : Effect.fail(new BadRequest({}))))),
        stream: () => Stream.empty
      }
      const policy = yield* Idempotency.policy().pipe(Effect.provide(Idempotency.layerStoreMemory))
      const client = LlmClient.decorate(upstream, policy)
      const fiber = yield* Effect.fork(Effect.all([Effect.exit(client.complete(request())), Effect.exit(client.complete(request()))], { concurrency: "unbounded" }))
      yield* TestClock.adjust("1 second")
      const exits = yield* Fiber.join(fiber)
      expect(exits.every((e) => Exit.isFailure(e) && e.cause._tag === "Die")).toBe(true)
      const next = yield* Effect.fork(Effect.flip(client.complete(request())))
      yield* TestClock.adjust("1 second")
      expect((yield* Fiber.join(next))._tag).toBe("BadRequest")
      expect(calls).toBe(2)
    }))

  it.effect("invalid options fail with InvalidOptions listing every failing path", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        Idempotency.policy({ ttl: { hours: "x" } as never, onInFlight: "queue" as never, lease: "forever" as never }).pipe(
          Effect.provide(Idempotency.layerStoreMemory)
        )
      )
      expect(error._tag).toBe("InvalidOptions")
      expect(error.issues.map((i) => i.path).sort()).toEqual(["lease", "onInFlight", "ttl"])
    }))

  it.effect("a misspelt option, a zero or infinite duration is refused; so is a bad store capacity", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        Idempotency.policy({ tll: "1 hour", pollInterval: 0, lease: Duration.infinity, ttl: "0 millis" } as never).pipe(
          Effect.provide(Idempotency.layerStoreMemory)
        )
      )
      expect(error.issues.map((i) => i.path).sort()).toEqual(["lease", "pollInterval", "tll", "ttl"])
      for (const capacity of [0, Number.NaN]) {
        const invalid = yield* Effect.flip(Idempotency.makeStoreMemory({ capacity }))
        expect(invalid.issues.map((i) => i.path)).toEqual(["capacity"])
      }
      const misspelt = yield* Effect.flip(Idempotency.makeStoreMemory({ capasity: 5 } as never))
      expect(misspelt.issues.map((i) => i.path)).toEqual(["capasity"])
    }))
})
