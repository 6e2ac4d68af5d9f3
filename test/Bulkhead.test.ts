import { describe, expect, it } from "@effect/vitest"
import { Chunk, Deferred, type Duration, Effect, Either, Exit, Fiber, Layer, Metric, Ref, Stream, TestClock } from "effect"
import * as Bulkhead from "../src/Bulkhead.js"
import { Compartment } from "../src/internal/bulkhead.js"
import * as FakeLlm from "../src/FakeLlm.js"
import { ChatRequest } from "../src/Llm.js"
import * as LlmClient from "../src/LlmClient.js"
import * as LlmError from "../src/LlmError.js"
import * as LlmMetrics from "../src/LlmMetrics.js"

let keys = 0
const uniqueKey = (name: string) => `${name}-${++keys}`

/** Lets forked fibers run up to their next suspension. */
const settle = Effect.repeatN(Effect.yieldNow(), 20)

const stats = (b: Bulkhead.Bulkhead) => Effect.map(b.stats, (s) => ({ running: s.running, queued: s.queued }))

const rejections = (key: string) =>
  Effect.map(Metric.value(Metric.tagged(LlmMetrics.bulkheadRejections, "key", key)), (s) => s.count)

const request = (model: string) => new ChatRequest({ model, messages: [{ role: "user", content: "hi" }] })

describe("Bulkhead.make / withBulkhead", () => {
  it.effect("runs at most maxConcurrent, queues at most maxQueue, rejects the rest at once", () =>
    Effect.gen(function* () {
      const key = uniqueKey("limits")
      const bulkhead = yield* Bulkhead.make({ key, maxConcurrent: 2, maxQueue: 1 })
      const started = yield* Ref.make(0)
      const work = Effect.zipRight(Ref.update(started, (n) => n + 1), Effect.sleep("1 second"))
      const fibers = yield* Effect.forEach([1, 2, 3], () => Effect.fork(Bulkhead.withBulkhead(work, bulkhead)))
      yield* settle
      expect(yield* stats(bulkhead)).toEqual({ running: 2, queued: 1 })
      const error = yield* Effect.flip(work.pipe(Bulkhead.withBulkhead(bulkhead)))
      expect(error).toBeInstanceOf(LlmError.BulkheadRejected)
      expect(error).toMatchObject({ key, maxConcurrent: 2, maxQueue: 1 })
      expect(yield* rejections(key)).toBe(1)
      expect(yield* Ref.get(started)).toBe(2)
      yield* TestClock.adjust("1 second")
      expect(yield* stats(bulkhead)).toEqual({ running: 1, queued: 0 })
      yield* TestClock.adjust("1 second")
      yield* Fiber.joinAll(fibers)
      expect(yield* Ref.get(started)).toBe(3)
      expect(yield* stats(bulkhead)).toEqual({ running: 0, queued: 0 })
    }))

  it.effect("serves the queue first in, first out", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, maxQueue: 10 })
      const order = yield* Ref.make<ReadonlyArray<number>>([])
      const fibers: Array<Fiber.RuntimeFiber<void, LlmError.BulkheadRejected>> = []
      for (let i = 0; i < 6; i++) {
        fibers.push(yield* Effect.fork(bulkhead.execute(
          Effect.zipRight(Ref.update(order, (o) => [...o, i]), Effect.sleep("100 millis"))
        )))
        yield* settle
      }
      yield* TestClock.adjust("1 second")
      yield* Fiber.joinAll(fibers)
      expect(yield* Ref.get(order)).toEqual([0, 1, 2, 3, 4, 5])
    }))

  it.effect("an interrupted waiter frees its queue slot and the next one runs", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, maxQueue: 2 })
      const ran = yield* Ref.make<ReadonlyArray<string>>([])
      const job = (name: string) => bulkhead.execute(Effect.zipRight(Ref.update(ran, (r) => [...r, name]), Effect.sleep("1 second")))
      const a = yield* Effect.fork(job("a"))
      yield* settle
      const b = yield* Effect.fork(job("b"))
      yield* settle
      const c = yield* Effect.fork(job("c"))
      yield* settle
      expect(yield* stats(bulkhead)).toEqual({ running: 1, queued: 2 })
      yield* Fiber.interrupt(b)
      expect(yield* stats(bulkhead)).toEqual({ running: 1, queued: 1 })
      const d = yield* Effect.fork(job("d")) // the freed queue slot is usable
      yield* settle
      expect(yield* stats(bulkhead)).toEqual({ running: 1, queued: 2 })
      yield* TestClock.adjust("3 seconds")
      yield* Fiber.joinAll([a, c, d])
      expect(yield* Ref.get(ran)).toEqual(["a", "c", "d"])
      expect(yield* stats(bulkhead)).toEqual({ running: 0, queued: 0 })
    }))

  it.effect("a queued call interrupted after the running one failed does not block the next", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, maxQueue: 5 })
      const gate = yield* Deferred.make<void>()
      const first = yield* Effect.fork(bulkhead.execute(Effect.zipRight(Deferred.await(gate), Effect.fail("boom"))))
      yield* settle
      const aborted = yield* Effect.fork(bulkhead.execute(Effect.succeed("never")))
      yield* settle
      const next = yield* Effect.fork(bulkhead.execute(Effect.succeed("next")))
      yield* settle
      yield* Fiber.interrupt(aborted)
      yield* Deferred.succeed(gate, undefined)
      expect(Exit.isFailure(yield* Fiber.await(first))).toBe(true)
      expect(yield* Fiber.join(next)).toBe("next")
      expect(yield* stats(bulkhead)).toEqual({ running: 0, queued: 0 })
    }))

  it.effect("a timed-out call frees its slot only when it has really stopped", () =>
    Effect.gen(function* () {
      const key = uniqueKey("timeout")
      const bulkhead = yield* Bulkhead.make({ key, maxConcurrent: 1 })
      const stubborn = Effect.uninterruptible(Effect.sleep("10 seconds"))
      // The caller gives up after 1 s (disconnect: it does not wait for the work to stop)...
      const caller = yield* Effect.fork(bulkhead.execute(stubborn).pipe(Effect.disconnect, Effect.timeout("1 second")))
      yield* TestClock.adjust("1 second")
      expect(Exit.isFailure(yield* Fiber.await(caller))).toBe(true)
      // ...but the work still runs, so the slot is still taken.
      expect(yield* stats(bulkhead)).toEqual({ running: 1, queued: 0 })
      expect((yield* Effect.flip(bulkhead.execute(Effect.void)))._tag).toBe("BulkheadRejected")
      yield* TestClock.adjust("9 seconds")
      yield* settle
      expect(yield* stats(bulkhead)).toEqual({ running: 0, queued: 0 })
      yield* bulkhead.execute(Effect.void)
      // An interruptible call frees its slot as soon as it is interrupted.
      const timedOut = yield* Effect.fork(bulkhead.execute(Effect.never).pipe(Effect.timeout("1 second")))
      yield* TestClock.adjust("1 second")
      yield* Fiber.await(timedOut)
      expect(yield* stats(bulkhead)).toEqual({ running: 0, queued: 0 })
    }))

  it.effect("slots are given back after success, failure, defect and interruption", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1 })
      expect(yield* bulkhead.execute(Effect.succeed(1))).toBe(1)
      expect(yield* Effect.flip(bulkhead.execute(Effect.fail("e")))).toBe("e")
      expect(Exit.isFailure(yield* Effect.exit(bulkhead.execute(Effect.die("bug"))))).toBe(true)
      const fiber = yield* Effect.fork(bulkhead.execute(Effect.never))
      yield* settle
      expect(yield* stats(bulkhead)).toEqual({ running: 1, queued: 0 })
      yield* Fiber.interrupt(fiber)
      expect(yield* stats(bulkhead)).toEqual({ running: 0, queued: 0 })
      expect(yield* bulkhead.execute(Effect.succeed(2))).toBe(2)
    }))

  it.effect("a zero limit rejects everything, even with a queue", () =>
    Effect.gen(function* () {
      const key = uniqueKey("zero")
      const bulkhead = yield* Bulkhead.make({ key, maxConcurrent: 0, maxQueue: 5 })
      const runs = yield* Ref.make(0)
      for (let i = 0; i < 3; i++) {
        const error = yield* Effect.flip(bulkhead.execute(Ref.update(runs, (n) => n + 1)))
        expect(error).toMatchObject({ _tag: "BulkheadRejected", maxConcurrent: 0, maxQueue: 5 })
      }
      expect(yield* Ref.get(runs)).toBe(0)
      expect(yield* rejections(key)).toBe(3)
    }))

  it.effect("maxWait rejects a call that waited too long, and leaves the queue consistent", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, maxQueue: 2, maxWait: "2 seconds" })
      const holder = yield* Effect.fork(bulkhead.execute(Effect.sleep("5 seconds")))
      yield* settle
      const waiter = yield* Effect.fork(Effect.either(bulkhead.execute(Effect.succeed("late"))))
      yield* settle
      yield* TestClock.adjust("1999 millis")
      expect(yield* stats(bulkhead)).toEqual({ running: 1, queued: 1 })
      yield* TestClock.adjust("1 millis")
      const result = yield* Fiber.join(waiter)
      expect(Either.isLeft(result) && result.left._tag).toBe("BulkheadRejected")
      expect(yield* stats(bulkhead)).toEqual({ running: 1, queued: 0 })
      yield* TestClock.adjust("3 seconds")
      yield* Fiber.join(holder)
      expect(yield* stats(bulkhead)).toEqual({ running: 0, queued: 0 })
    }))

  it.effect("invalid options fail with InvalidOptions listing every path", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(Bulkhead.make({ maxConcurrent: -1, maxQueue: 1.5, maxWait: "soon" as Duration.DurationInput }))
      expect(error._tag).toBe("InvalidOptions")
      expect(error.issues.map((i) => i.path).sort()).toEqual(["maxConcurrent", "maxQueue", "maxWait"])
      const policyError = yield* Effect.flip(Bulkhead.policy({ maxConcurrent: 1, per: "region" as "model" }))
      expect(policyError.issues.map((i) => i.path)).toEqual(["per"])
    }))

  it.effect("a misspelt option is reported, not ignored", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(Bulkhead.make({ maxConcurrent: 1, maxQueu: 10 } as Bulkhead.MakeOptions))
      expect(error.issues.map((i) => i.path)).toEqual(["maxQueu"])
      const policyError = yield* Effect.flip(Bulkhead.policy({ maxConcurrent: 1, key: "k" } as Bulkhead.PolicyOptions))
      expect(policyError.issues.map((i) => i.path)).toEqual(["key"])
      const makeError = yield* Effect.flip(Bulkhead.make({ maxConcurrent: 1, per: "model" } as Bulkhead.MakeOptions))
      expect(makeError.issues.map((i) => i.path)).toEqual(["per"])
    }))
})

describe("Compartment", () => {
  it("a waiter that gives up just after being handed a slot passes the slot on", () => {
    let idle = 0
    const compartment = new Compartment(1, 2, () => idle++)
    expect(compartment.enter()).toBe("acquired")
    const first = compartment.enter()
    const second = compartment.enter()
    expect(compartment.enter()).toBe("full")
    if (typeof first === "string" || typeof second === "string") throw new Error("expected waiters")
    compartment.release() // hands the slot to `first`
    expect(first.granted).toBe(true)
    compartment.leave(first) // `first` was interrupted before it could run: `second` gets the slot
    expect(second.granted).toBe(true)
    expect([compartment.running, compartment.queued]).toEqual([1, 0])
    compartment.release()
    expect([compartment.running, compartment.queued, idle]).toEqual([0, 0, 1])
  })
})

/**
 * Polly-style scenario table: (maxConcurrent, maxQueue, load, cancel queued, cancel executing). After each
 * step the invariants hold: running, queued, rejected, cancelled and completed calls, and free slots.
 */
describe("Bulkhead slot accounting (scenario table)", () => {
  const scenarios = [
    { maxConcurrent: 1, maxQueue: 0, load: 1, cancelQueued: 0, cancelRunning: 0 },
    { maxConcurrent: 1, maxQueue: 0, load: 3, cancelQueued: 0, cancelRunning: 1 },
    { maxConcurrent: 2, maxQueue: 2, load: 4, cancelQueued: 1, cancelRunning: 0 },
    { maxConcurrent: 2, maxQueue: 2, load: 6, cancelQueued: 2, cancelRunning: 2 },
    { maxConcurrent: 3, maxQueue: 5, load: 10, cancelQueued: 1, cancelRunning: 2 },
    { maxConcurrent: 5, maxQueue: 1, load: 3, cancelQueued: 0, cancelRunning: 3 },
    { maxConcurrent: 1, maxQueue: 10, load: 8, cancelQueued: 4, cancelRunning: 1 }
  ]
  for (const s of scenarios) {
    it.effect(`${JSON.stringify(s)}`, () =>
      Effect.gen(function* () {
        const bulkhead = yield* Bulkhead.make({ maxConcurrent: s.maxConcurrent, maxQueue: s.maxQueue })
        const gate = yield* Deferred.make<void>()
        const fibers: Array<Fiber.RuntimeFiber<void, LlmError.BulkheadRejected>> = []
        for (let i = 0; i < s.load; i++) {
          fibers.push(yield* Effect.fork(bulkhead.execute(Deferred.await(gate))))
          yield* settle
        }
        const running = Math.min(s.load, s.maxConcurrent)
        const queued = Math.min(s.load - running, s.maxQueue)
        const rejected = s.load - running - queued
        expect(yield* stats(bulkhead)).toEqual({ running, queued })
        const rejectedExits = yield* Effect.forEach(fibers.slice(running + queued), Fiber.await)
        expect(rejectedExits.filter(Exit.isFailure)).toHaveLength(rejected)
        // Cancel the last queued ones first, then the first running ones.
        yield* Effect.forEach(fibers.slice(running + queued - s.cancelQueued, running + queued), Fiber.interrupt)
        yield* Effect.forEach(fibers.slice(0, s.cancelRunning), Fiber.interrupt)
        yield* settle
        const stillQueued = queued - s.cancelQueued
        const nowRunning = Math.min(s.maxConcurrent, running - s.cancelRunning + stillQueued)
        expect(yield* stats(bulkhead)).toEqual({ running: nowRunning, queued: stillQueued - (nowRunning - (running - s.cancelRunning)) })
        yield* Deferred.succeed(gate, undefined)
        const exits = yield* Effect.forEach(fibers, Fiber.await)
        const completed = exits.filter(Exit.isSuccess).length
        expect(completed).toBe(s.load - rejected - s.cancelQueued - s.cancelRunning)
        expect(yield* stats(bulkhead)).toEqual({ running: 0, queued: 0 })
      }))
  }
})

describe("Bulkhead.policy", () => {
  it.effect("one compartment per model; a full one rejects without calling the provider", () =>
    Effect.gen(function* () {
      const policy = yield* Bulkhead.policy({ maxConcurrent: 1 })
      const program = Effect.gen(function* () {
        const busy = yield* Effect.fork(LlmClient.complete(request("slow-model")))
        yield* settle
        const error = yield* Effect.flip(LlmClient.complete(request("slow-model")))
        expect(error).toMatchObject({ _tag: "BulkheadRejected", key: "slow-model", model: "slow-model" })
        expect((yield* LlmClient.complete(request("other"))).content).toBe("ok")
        expect(yield* policy.stats("slow-model")).toMatchObject({ running: 1, queued: 0 })
        expect((yield* FakeLlm.calls).filter((c) => c.request.model === "slow-model")).toHaveLength(1)
        yield* TestClock.adjust("5 seconds")
        yield* Fiber.join(busy)
        expect(yield* policy.stats("slow-model")).toMatchObject({ running: 0, queued: 0 })
      })
      yield* LlmClient.withPolicies(program, policy)
    }).pipe(Effect.provide(FakeLlm.layer(({ request: r }) =>
      r.model === "slow-model" ? FakeLlm.delay("5 seconds", FakeLlm.reply("slow")) : FakeLlm.reply("ok")
    ))))

  it.effect("a stream holds its slot until it ends", () =>
    Effect.gen(function* () {
      const policy = yield* Bulkhead.policy({ maxConcurrent: 1, per: () => "all" })
      const program = Effect.gen(function* () {
        const streaming = yield* Effect.fork(Stream.runCollect(LlmClient.stream(request("a"))))
        yield* settle
        expect(yield* policy.stats("all")).toMatchObject({ running: 1 })
        expect((yield* Effect.flip(LlmClient.complete(request("b"))))._tag).toBe("BulkheadRejected")
        yield* TestClock.adjust("3 seconds")
        const chunks = yield* Fiber.join(streaming)
        expect(Chunk.size(chunks)).toBe(4)
        expect(yield* policy.stats("all")).toMatchObject({ running: 0 })
        const after = yield* Effect.fork(LlmClient.complete(request("b")))
        yield* TestClock.adjust("2 seconds")
        expect((yield* Fiber.join(after)).content).toBe("one two three")
      })
      yield* LlmClient.withPolicies(program, policy)
    }).pipe(Effect.provide(FakeLlm.layer(FakeLlm.stream(["one ", "two ", "three"], { interval: "1 second" })))))

  it.effect("works through LlmClient.layerWith", () =>
    Effect.gen(function* () {
      const results = yield* Effect.all(
        Array.from({ length: 5 }, () => Effect.either(LlmClient.complete(request("m")))),
        { concurrency: "unbounded" }
      ).pipe(Effect.fork, Effect.tap(() => TestClock.adjust("10 seconds")), Effect.flatMap(Fiber.join))
      expect(results.filter(Either.isRight)).toHaveLength(3)
      expect(results.filter(Either.isLeft).map((r) => r.left._tag)).toEqual(["BulkheadRejected", "BulkheadRejected"])
    }).pipe(Effect.provide(LlmClient.layerWith(Bulkhead.policy({ maxConcurrent: 2, maxQueue: 1 })).pipe(
      Layer.provideMerge(FakeLlm.layer(FakeLlm.delay("1 second", FakeLlm.reply("ok"))))
    ))))
})
