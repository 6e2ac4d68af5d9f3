import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Exit, Fiber, Metric, Schema, TestClock } from "effect"
import fc from "fast-check"
import * as Batching from "../src/Batching.js"
import * as FakeLlm from "../src/FakeLlm.js"
import { InvalidOptions } from "../src/InvalidOptions.js"
import type { ChatRequest } from "../src/Llm.js"
import { MalformedResponse, ServerError } from "../src/LlmError.js"
import * as LlmMetrics from "../src/LlmMetrics.js"

const Item = Schema.Struct({ n: Schema.Int })
const Result = Schema.Struct({ double: Schema.Int })
type Entry = { readonly id: unknown; readonly result?: unknown }

/** The `[{ id, item }]` array a batch request carries. */
const itemsOf = (request: ChatRequest): ReadonlyArray<{ readonly id: number; readonly item: { readonly n: number } }> =>
  JSON.parse(request.messages[1].content)

/** A model that answers every item correctly, then lets `mutate` damage the entries. */
const model = (
  mutate: (entries: Array<Entry>, request: ChatRequest) => Array<Entry> = (e) => e
): (context: FakeLlm.CallContext) => FakeLlm.Step =>
({ request }) =>
  FakeLlm.reply(JSON.stringify({
    results: mutate(itemsOf(request).map(({ id, item }) => ({ id, result: { double: item.n * 2 } })), request)
  }))

const make = (options: Partial<Batching.Options<{ readonly n: number }, { readonly n: number }, { readonly double: number }, { readonly double: number }>> = {}) =>
  Batching.make({ model: "m", instruction: "Double each number.", item: Item, result: Result, ...options })

const range = (n: number) => Array.from({ length: n }, (_, i) => i)

/** Starts `ns.length` independent callers, lets the window pass, and returns each caller's Exit. */
const runAll = (classify: Batching.Batched<{ readonly n: number }, { readonly double: number }>, ns: ReadonlyArray<number>) =>
  Effect.gen(function* () {
    const fiber = yield* Effect.fork(
      Effect.forEach(ns, (n) => Effect.exit(classify({ n })), { concurrency: "unbounded" })
    )
    yield* TestClock.adjust("10 millis")
    return yield* Fiber.join(fiber)
  })

const sentIds = (calls: ReadonlyArray<FakeLlm.Call>) => calls.map((c) => itemsOf(c.request).map((e) => e.id))
const sentNs = (calls: ReadonlyArray<FakeLlm.Call>) => calls.map((c) => itemsOf(c.request).map((e) => e.item.n))

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) ? (exit.cause._tag === "Fail" ? exit.cause.error : undefined) : undefined

const counter = (metric: Metric.Metric.Counter<number>, labels: Record<string, string>) =>
  Effect.map(
    Metric.value(Object.entries(labels).reduce((m, [k, v]) => Metric.tagged(m, k, v), metric)),
    (state) => state.count
  )

describe("Batching.make", () => {
  it.effect("50 concurrent callers make ceil(50/20) = 3 provider calls, each caller gets its own result", () =>
    Effect.gen(function* () {
      const classify = yield* make({ maxTokensPerItem: 5 })
      const fiber = yield* Effect.fork(
        Effect.forEach(range(50), (n) => classify({ n }), { concurrency: "unbounded" })
      )
      // The two full batches leave at once; the last one waits for its window.
      yield* TestClock.adjust("9 millis")
      expect((yield* FakeLlm.calls).length).toBe(2)
      yield* TestClock.adjust("1 millis")
      const results = yield* Fiber.join(fiber)
      expect(results).toEqual(range(50).map((n) => ({ double: n * 2 })))
      const calls = yield* FakeLlm.calls
      expect(calls).toHaveLength(3)
      expect(sentIds(calls)).toEqual([range(20), range(20), range(10)])
      expect(sentNs(calls).flat().sort((a, b) => a - b)).toEqual(range(50))
      expect(calls.map((c) => c.request.maxTokens)).toEqual([100, 100, 50])
      expect(calls.map((c) => c.at)).toEqual([0, 0, 10])
    }).pipe(Effect.provide(FakeLlm.layer(model()))))

  it.effect("calls from one fiber with `batching: true` are batched too", () =>
    Effect.gen(function* () {
      const classify = yield* make()
      const fiber = yield* Effect.fork(Effect.forEach(range(5), (n) => classify({ n }), { batching: true }))
      yield* TestClock.adjust("10 millis")
      expect((yield* Fiber.join(fiber)).map((r) => r.double)).toEqual([0, 2, 4, 6, 8])
      expect(sentNs(yield* FakeLlm.calls)).toEqual([range(5)])
    }).pipe(Effect.provide(FakeLlm.layer(model()))))

  it.effect("the request: system instruction + contract + result schema, user JSON array, json_object, options", () =>
    Effect.gen(function* () {
      const classify = yield* make({ temperature: 0, user: "tenant-7" })
      yield* runAll(classify, [3, 4])
      const [call] = yield* FakeLlm.calls
      const { messages, responseFormat, temperature, user, maxTokens, model: sentModel } = call.request
      expect(sentModel).toBe("m")
      expect(messages.map((m) => m.role)).toEqual(["system", "user"])
      expect(messages[0].content.startsWith("Double each number.\n")).toBe(true)
      expect(messages[0].content).toContain(`{"results": [{"id": <the id of the item>, "result": <the result for that item>}, ...]}`)
      expect(messages[0].content).toContain(`"required":["double"]`)
      expect(messages[1].content).toBe(`[{"id":0,"item":{"n":3}},{"id":1,"item":{"n":4}}]`)
      expect(responseFormat).toEqual({ type: "json_object" })
      expect({ temperature, user, maxTokens }).toEqual({ temperature: 0, user: "tenant-7", maxTokens: undefined })
    }).pipe(Effect.provide(FakeLlm.layer(model()))))

  it.effect("describeResult: false leaves the result schema out of the system message", () =>
    Effect.gen(function* () {
      const classify = yield* make({ describeResult: false })
      yield* runAll(classify, [1])
      const [call] = yield* FakeLlm.calls
      expect(call.request.messages[0].content).not.toContain("JSON Schema")
    }).pipe(Effect.provide(FakeLlm.layer(model()))))

  it.effect("results are mapped by id even when the model returns them shuffled", () =>
    Effect.gen(function* () {
      const classify = yield* make()
      const exits = yield* runAll(classify, range(8).map((n) => n + 100))
      expect(exits.map((e) => Exit.isSuccess(e) && e.value.double)).toEqual(range(8).map((n) => (n + 100) * 2))
    }).pipe(Effect.provide(FakeLlm.layer(model((entries) => [5, 2, 7, 0, 3, 6, 1, 4].map((i) => entries[i]))))))

  it.effect("a missing id fails only that caller with BatchItemFailed", () =>
    Effect.gen(function* () {
      const classify = yield* make()
      const exits = yield* runAll(classify, [10, 11, 12])
      expect(Exit.isSuccess(exits[0]) && exits[0].value).toEqual({ double: 20 })
      expect(Exit.isSuccess(exits[2]) && exits[2].value).toEqual({ double: 24 })
      const error = failureOf(exits[1])
      expect(error).toBeInstanceOf(Batching.BatchItemFailed)
      expect(error).toMatchObject({ _tag: "BatchItemFailed", id: 1, reason: "missing", model: "m" })
      expect((yield* FakeLlm.calls).length).toBe(1)
    }).pipe(Effect.provide(FakeLlm.layer(model((entries) => entries.filter((e) => e.id !== 1))))))

  it.effect("a result that fails its Schema fails only that caller; the detail names the path, not the value", () =>
    Effect.gen(function* () {
      const classify = yield* make()
      const exits = yield* runAll(classify, [1, 2, 3])
      expect(exits.filter(Exit.isSuccess)).toHaveLength(2)
      const error = failureOf(exits[2]) as Batching.BatchItemFailed
      expect(error).toMatchObject({ _tag: "BatchItemFailed", id: 2, reason: "invalid-result" })
      expect(error.detail).toContain("double")
      expect(error.message).not.toContain("secret")
    }).pipe(Effect.provide(FakeLlm.layer(model((entries) =>
      entries.map((e) => (e.id === 2 ? { id: 2, result: { double: "secret completion text" } } : e))
    )))))

  it.effect("an entry without a result fails only its caller", () =>
    Effect.gen(function* () {
      const classify = yield* make()
      const exits = yield* runAll(classify, [1, 2])
      expect(Exit.isSuccess(exits[1])).toBe(true)
      expect(failureOf(exits[0])).toMatchObject({ id: 0, reason: "invalid-result" })
    }).pipe(Effect.provide(FakeLlm.layer(model((entries) => entries.map((e) => (e.id === 0 ? { id: 0 } : e)))))))

  it.effect("a duplicated id fails that caller, even when both answers are the same (never guess)", () =>
    Effect.gen(function* () {
      const classify = yield* make()
      const exits = yield* runAll(classify, [1, 2, 3])
      expect(failureOf(exits[0])).toMatchObject({ _tag: "BatchItemFailed", id: 0, reason: "duplicate" })
      expect(failureOf(exits[1])).toMatchObject({ _tag: "BatchItemFailed", id: 1, reason: "duplicate" })
      expect(Exit.isSuccess(exits[2]) && exits[2].value).toEqual({ double: 6 })
    }).pipe(Effect.provide(FakeLlm.layer(model((entries) => [
      entries[0],
      entries[0],
      { id: 1, result: { double: 4 } },
      { id: 1, result: { double: 999 } },
      entries[2]
    ])))))

  it.effect("unknown extra ids are ignored and counted", () =>
    Effect.gen(function* () {
      const classify = yield* Batching.make({ model: "m-unknown", instruction: "x", item: Item, result: Result })
      const exits = yield* runAll(classify, [1, 2])
      expect(exits.map((e) => Exit.isSuccess(e) && e.value.double)).toEqual([2, 4])
      expect(yield* counter(LlmMetrics.batchUnknownIds, { model: "m-unknown" })).toBe(3)
      expect(yield* counter(LlmMetrics.batches, { model: "m-unknown", kind: "batch" })).toBe(1)
      expect(yield* counter(LlmMetrics.batchItems, { model: "m-unknown", outcome: "ok" })).toBe(2)
    }).pipe(Effect.provide(FakeLlm.layer(model((entries) => [
      ...entries,
      { id: 2, result: { double: 0 } },
      { id: -1, result: { double: 0 } },
      { id: 99, result: "anything" }
    ])))))

  it.effect("metrics: batch and re-send calls, item outcomes, failed batches", () =>
    Effect.gen(function* () {
      const classify = yield* Batching.make({
        model: "m-metrics", instruction: "x", item: Item, result: Result, maxBatchSize: 3, retryMissingIndividually: true
      })
      yield* runAll(classify, [1, 2, 3, 4, 5])
      const read = (metric: Metric.Metric.Counter<number>, labels: Record<string, string>) =>
        counter(metric, { model: "m-metrics", ...labels })
      expect(yield* read(LlmMetrics.batches, { kind: "batch" })).toBe(2)
      expect(yield* read(LlmMetrics.batches, { kind: "resend" })).toBe(1)
      expect(yield* read(LlmMetrics.batchItems, { outcome: "missing" })).toBe(1)
      expect(yield* read(LlmMetrics.batchItems, { outcome: "ok" })).toBe(3)
      expect(yield* read(LlmMetrics.batchItems, { outcome: "failed" })).toBe(2)
    }).pipe(Effect.provide(FakeLlm.layer(({ request, call }) =>
      itemsOf(request)[0].item.n === 4
        ? FakeLlm.fail(new ServerError({ status: 502 }))
        : model((entries) => entries.length === 3 ? entries.slice(1) : entries)({ request, call, attempt: 1 })
    ))))

  it.effect("malformed JSON fails every caller of that batch with MalformedResponse", () =>
    Effect.gen(function* () {
      const classify = yield* make()
      const exits = yield* runAll(classify, [1, 2, 3])
      for (const exit of exits) {
        expect(failureOf(exit)).toBeInstanceOf(MalformedResponse)
        expect(failureOf(exit)).toMatchObject({ reason: "the batch answer is not valid JSON", model: "m" })
      }
    }).pipe(Effect.provide(FakeLlm.layer(FakeLlm.reply(`{"results": [{"id": 0, "result": {"double": 2}}`)))))

  it.effect("an answer cut at maxTokens says so", () =>
    Effect.gen(function* () {
      const classify = yield* make({ maxTokensPerItem: 1 })
      const [exit] = yield* runAll(classify, [1])
      expect((failureOf(exit) as MalformedResponse).reason).toContain("cut off at maxTokens")
    }).pipe(Effect.provide(FakeLlm.layer(FakeLlm.reply(`{"results": [`, { finishReason: "length" })))))

  it.effect("a body that is not the contract (positional list, string ids, no results) fails the whole batch", () =>
    Effect.gen(function* () {
      for (const body of [`["a", "b"]`, `{"results": ["x", "y"]}`, `{"results": [{"id": "0", "result": {"double": 2}}]}`, `{}`]) {
        const exits = yield* Effect.gen(function* () {
          return yield* runAll(yield* make(), [1, 2])
        }).pipe(Effect.provide(FakeLlm.layer(FakeLlm.reply(body))))
        for (const exit of exits) expect(failureOf(exit)).toBeInstanceOf(MalformedResponse)
      }
    }))

  it.effect("the provider's error goes to every caller of that batch, and only that batch", () =>
    Effect.gen(function* () {
      const classify = yield* make({ maxBatchSize: 2 })
      const exits = yield* runAll(classify, [1, 2, 3, 4])
      expect(failureOf(exits[0])).toBeInstanceOf(ServerError)
      expect(failureOf(exits[1])).toBeInstanceOf(ServerError)
      expect(exits.slice(2).map((e) => Exit.isSuccess(e) && e.value.double)).toEqual([6, 8])
      expect(sentNs(yield* FakeLlm.calls)).toEqual([[1, 2], [3, 4]])
    }).pipe(Effect.provide(FakeLlm.layer(({ request, call }) =>
      call === 1 ? FakeLlm.fail(new ServerError({ status: 503, model: "m" })) : model()({ request, call, attempt: 1 })
    ))))

  describe("retryMissingIndividually", () => {
    it.effect("re-sends a missing, duplicated or undecodable item alone once, and it succeeds", () =>
      Effect.gen(function* () {
        const classify = yield* make({ retryMissingIndividually: true, maxTokensPerItem: 7 })
        const exits = yield* runAll(classify, [10, 11, 12, 13])
        expect(exits.map((e) => Exit.isSuccess(e) && e.value.double)).toEqual([20, 22, 24, 26])
        const calls = yield* FakeLlm.calls
        expect(sentNs(calls)[0]).toEqual([10, 11, 12, 13])
        expect(sentNs(calls).slice(1).sort()).toEqual([[11], [12], [13]])
        expect(sentIds(calls).slice(1)).toEqual([[0], [0], [0]])
        expect(calls.slice(1).map((c) => c.request.maxTokens)).toEqual([7, 7, 7])
      }).pipe(Effect.provide(FakeLlm.layer(model((entries) =>
        entries.length === 1 ? entries : [
          entries[0],
          entries[2],
          entries[2],
          { id: 3, result: { double: "nope" } }
        ]
      )))))

    it.effect("an item that fails again alone gets BatchItemFailed with its batch id", () =>
      Effect.gen(function* () {
        const classify = yield* make({ retryMissingIndividually: true })
        const exits = yield* runAll(classify, [1, 2])
        expect(Exit.isSuccess(exits[0])).toBe(true)
        const error = failureOf(exits[1]) as Batching.BatchItemFailed
        expect(error).toMatchObject({ id: 1, reason: "missing" })
        expect(error.detail).toContain("re-sent alone")
        expect((yield* FakeLlm.calls).length).toBe(2)
      }).pipe(Effect.provide(FakeLlm.layer(model((entries, request) =>
        entries.filter((e) => itemsOf(request)[e.id as number].item.n !== 2)
      )))))

    it.effect("the re-send's own provider error goes to that caller only", () =>
      Effect.gen(function* () {
        const classify = yield* make({ retryMissingIndividually: true })
        const exits = yield* runAll(classify, [1, 2])
        expect(Exit.isSuccess(exits[0])).toBe(true)
        expect(failureOf(exits[1])).toBeInstanceOf(ServerError)
      }).pipe(Effect.provide(FakeLlm.layer(({ request, call }) =>
        call === 1
          ? model((entries) => entries.slice(0, 1))({ request, call, attempt: 1 })
          : FakeLlm.fail(new ServerError({ status: 500 }))
      ))))

    it.effect("a malformed batch is not re-sent item by item", () =>
      Effect.gen(function* () {
        const classify = yield* make({ retryMissingIndividually: true })
        const exits = yield* runAll(classify, [1, 2])
        expect(exits.every((e) => failureOf(e) instanceof MalformedResponse)).toBe(true)
        expect((yield* FakeLlm.calls).length).toBe(1)
      }).pipe(Effect.provide(FakeLlm.layer(FakeLlm.reply("not json")))))
  })

  describe("window", () => {
    it.effect("calls 11 ms apart land in different batches with window 10 ms", () =>
      Effect.gen(function* () {
        const classify = yield* make({ window: "10 millis" })
        const a = yield* Effect.fork(classify({ n: 1 }))
        yield* TestClock.adjust("11 millis")
        const b = yield* Effect.fork(classify({ n: 2 }))
        yield* TestClock.adjust("10 millis")
        expect(yield* Fiber.join(a)).toEqual({ double: 2 })
        expect(yield* Fiber.join(b)).toEqual({ double: 4 })
        const calls = yield* FakeLlm.calls
        expect(sentNs(calls)).toEqual([[1], [2]])
        expect(calls.map((c) => c.at)).toEqual([10, 21])
      }).pipe(Effect.provide(FakeLlm.layer(model()))))

    it.effect("calls 9 ms apart share one batch, sent 10 ms after the first", () =>
      Effect.gen(function* () {
        const classify = yield* make({ window: "10 millis" })
        const a = yield* Effect.fork(classify({ n: 1 }))
        yield* TestClock.adjust("9 millis")
        const b = yield* Effect.fork(classify({ n: 2 }))
        yield* TestClock.adjust("1 millis")
        expect([yield* Fiber.join(a), yield* Fiber.join(b)]).toEqual([{ double: 2 }, { double: 4 }])
        const calls = yield* FakeLlm.calls
        expect(sentNs(calls)).toEqual([[1, 2]])
        expect(calls[0].at).toBe(10)
      }).pipe(Effect.provide(FakeLlm.layer(model()))))

    it.effect("nothing is sent before the window ends; the default window is 10 ms", () =>
      Effect.gen(function* () {
        const classify = yield* make()
        const fiber = yield* Effect.fork(classify({ n: 5 }))
        yield* TestClock.adjust("9 millis")
        expect((yield* FakeLlm.calls).length).toBe(0)
        yield* TestClock.adjust("1 millis")
        expect(yield* Fiber.join(fiber)).toEqual({ double: 10 })
      }).pipe(Effect.provide(FakeLlm.layer(model()))))
  })

  describe("interruption", () => {
    it.effect("a caller interrupted before its batch is sent leaves it: its item is not sent", () =>
      Effect.gen(function* () {
        const classify = yield* make()
        const fibers = yield* Effect.forEach([1, 2, 3], (n) => Effect.fork(classify({ n })))
        yield* TestClock.adjust("5 millis")
        yield* Fiber.interrupt(fibers[1])
        yield* TestClock.adjust("5 millis")
        expect(yield* Fiber.join(fibers[0])).toEqual({ double: 2 })
        expect(yield* Fiber.join(fibers[2])).toEqual({ double: 6 })
        const calls = yield* FakeLlm.calls
        expect(sentNs(calls)).toEqual([[1, 3]])
        expect(sentIds(calls)).toEqual([[0, 1]])
      }).pipe(Effect.provide(FakeLlm.layer(model()))))

    it.effect("a batch whose every caller left is not sent", () =>
      Effect.gen(function* () {
        const classify = yield* make()
        const fiber = yield* Effect.fork(classify({ n: 1 }))
        yield* Effect.yieldNow()
        yield* Fiber.interrupt(fiber)
        yield* TestClock.adjust("1 second")
        expect((yield* FakeLlm.calls).length).toBe(0)
      }).pipe(Effect.provide(FakeLlm.layer(model()))))

    it.effect("a caller interrupted after its batch was sent: the others still get their results", () =>
      Effect.gen(function* () {
        const classify = yield* make()
        const fibers = yield* Effect.forEach([1, 2, 3], (n) => Effect.fork(classify({ n })))
        yield* TestClock.adjust("10 millis")
        expect((yield* FakeLlm.calls).length).toBe(1)
        yield* Fiber.interrupt(fibers[1])
        yield* TestClock.adjust("1 second")
        expect(yield* Fiber.join(fibers[0])).toEqual({ double: 2 })
        expect(yield* Fiber.join(fibers[2])).toEqual({ double: 6 })
        expect(sentNs(yield* FakeLlm.calls)).toEqual([[1, 2, 3]])
      }).pipe(Effect.provide(FakeLlm.layer(({ request, call }) =>
        FakeLlm.delay("1 second", model()({ request, call, attempt: 1 }))
      ))))
  })

  it.effect("an item that does not encode fails at once with invalid-item and is never sent", () =>
    Effect.gen(function* () {
      const classify = yield* make()
      const error = yield* Effect.flip(classify({ n: 1.5 }))
      expect(error).toBeInstanceOf(Batching.BatchItemFailed)
      const failed = error as Batching.BatchItemFailed
      expect(failed).toMatchObject({ _tag: "BatchItemFailed", reason: "invalid-item" })
      expect(failed.id).toBeUndefined()
      expect(failed.detail).toBe("the item does not encode with the item schema (at n)")
      const bigints = yield* Batching.make({ model: "m", instruction: "x", item: Schema.BigIntFromSelf, result: Result })
      expect(yield* Effect.flip(bigints(1n))).toMatchObject({ reason: "invalid-item" })
      yield* TestClock.adjust("1 second")
      expect((yield* FakeLlm.calls).length).toBe(0)
    }).pipe(Effect.provide(FakeLlm.layer(model()))))

  it.effect("callers can catch BatchItemFailed by tag", () =>
    Effect.gen(function* () {
      const classify = yield* make()
      const fiber = yield* Effect.fork(
        Effect.forEach([1, 2], (n) =>
          classify({ n }).pipe(
            Effect.map((r) => r.double),
            Effect.catchTag("BatchItemFailed", () => Effect.succeed(-1))
          ), { concurrency: "unbounded" })
      )
      yield* TestClock.adjust("10 millis")
      expect(yield* Fiber.join(fiber)).toEqual([2, -1])
    }).pipe(Effect.provide(FakeLlm.layer(model((entries) => entries.slice(0, 1))))))

  it.effect("never attributes a result to the wrong item, whatever the model does to its answer", () =>
    Effect.gen(function* () {
      // Each case: a permutation of the answer, ids dropped, duplicated, out of range, or results corrupted.
      const mutation = fc.record({
        order: fc.array(fc.nat(), { minLength: 6, maxLength: 6 }),
        drop: fc.array(fc.boolean(), { minLength: 6, maxLength: 6 }),
        duplicate: fc.array(fc.boolean(), { minLength: 6, maxLength: 6 }),
        corrupt: fc.array(fc.boolean(), { minLength: 6, maxLength: 6 }),
        extra: fc.array(fc.integer({ min: -3, max: 12 }), { maxLength: 3 })
      })
      for (const m of fc.sample(mutation, { numRuns: 60, seed: 7 })) {
        const mutate = (entries: Array<Entry>): Array<Entry> => {
          const out: Array<Entry> = []
          entries.forEach((e, i) => {
            if (m.drop[i]) return
            const entry = m.corrupt[i] ? { id: e.id, result: { double: 1_000_001 } } : e
            out.push(entry)
            if (m.duplicate[i]) out.push(entry)
          })
          for (const id of m.extra) if (id < 0 || id >= entries.length) out.push({ id, result: { double: 1_000_003 } })
          return out.map((e, i) => ({ e, k: m.order[i % m.order.length] * 31 + i })).sort((a, b) => a.k - b.k).map((x) => x.e)
        }
        const exits = yield* Effect.gen(function* () {
          return yield* runAll(yield* make(), range(6).map((n) => n + 1))
        }).pipe(Effect.provide(FakeLlm.layer(model(mutate))))
        exits.forEach((exit, i) => {
          const expected = !m.drop[i] && !m.duplicate[i] && !m.corrupt[i]
          if (expected) expect(Exit.isSuccess(exit) && exit.value).toEqual({ double: (i + 1) * 2 })
          else if (Exit.isSuccess(exit)) expect(exit.value).toEqual({ double: 1_000_001 }) // a corrupt but valid value of its own id
          else expect(failureOf(exit)).toBeInstanceOf(Batching.BatchItemFailed)
        })
      }
    }))

  describe("invalid options", () => {
    it.effect("lists every failing path", () =>
      Effect.gen(function* () {
        const bad = {
          model: "",
          instruction: "   ",
          item: 1,
          result: "x",
          maxBatchSize: 0,
          window: "0 millis",
          maxTokensPerItem: 1.5,
          temperature: 3,
          retryMissingIndividually: "yes",
          describeResult: 1,
          user: 5,
          extra: true
        } as unknown as Batching.Options<number, number, number, number>
        const error = yield* Effect.flip(Batching.make(bad))
        expect(error).toBeInstanceOf(InvalidOptions)
        expect(error.target).toBe("Batching")
        expect(error.issues.map((i) => i.path).sort()).toEqual([
          "describeResult",
          "extra",
          "instruction",
          "item",
          "maxBatchSize",
          "maxTokensPerItem",
          "model",
          "result",
          "retryMissingIndividually",
          "temperature",
          "user",
          "window"
        ])
        expect((yield* FakeLlm.calls).length).toBe(0)
      }).pipe(Effect.provide(FakeLlm.layer(model()))))

    it.effect("missing required options and bad windows are reported", () =>
      Effect.gen(function* () {
        const missing = yield* Effect.flip(Batching.make({} as unknown as Batching.Options<number, number, number, number>))
        expect(missing.issues.map((i) => i.path).sort()).toEqual(["instruction", "item", "model", "result"])
        for (const window of [Duration.infinity, "1 banana", -5, "-1 millis"]) {
          const error = yield* Effect.flip(make({ window: window as Duration.DurationInput }))
          expect(error.issues.map((i) => i.path)).toEqual(["window"])
        }
        // the smallest valid values build a batcher that works: each item is sent alone, at once
        const alone = yield* make({ window: "1 nanos", maxBatchSize: 1 })
        const results = yield* Effect.forEach([3, 4], (n) => alone({ n }), { concurrency: "unbounded" })
        expect(results).toEqual([{ double: 6 }, { double: 8 }])
        expect(sentNs(yield* FakeLlm.calls)).toEqual([[3], [4]])
      }).pipe(Effect.provide(FakeLlm.layer(model()))))
  })
})
