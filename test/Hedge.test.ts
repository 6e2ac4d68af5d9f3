import { describe, expect, it } from "@effect/vitest"
import { Chunk, Clock, Duration, Effect, Fiber, Layer, Random, Stream, TestClock } from "effect"
import * as FakeLlm from "../src/FakeLlm.js"
import * as Hedge from "../src/Hedge.js"
import { ChatChunk, ChatRequest, ChatResponse } from "../src/Llm.js"
import * as LlmClient from "../src/LlmClient.js"
import * as LlmError from "../src/LlmError.js"
import * as Retry from "../src/Retry.js"

const request = (content = "hi") => new ChatRequest({ model: "gpt-4o", messages: [{ role: "user", content }] })
const ok = (content = "ok") => FakeLlm.reply(content, { usage: { inputTokens: 10, outputTokens: 2 } })
const unavailable = FakeLlm.fail(new LlmError.ServerError({ status: 503 }))

const hedged = (script: FakeLlm.Script, options: Hedge.Options) => {
  const fake = FakeLlm.layer(script)
  return Layer.merge(fake, LlmClient.layerWith(Hedge.policy(options)).pipe(Layer.provide(fake)))
}

/** Runs `effect`, moving the TestClock `by` meanwhile; returns its result and the clock when it ended. */
const timed = <A, E, R>(effect: Effect.Effect<A, E, R>, by: Duration.DurationInput = "1 minute") =>
  Effect.gen(function* () {
    const fiber = yield* Effect.fork(Effect.zip(effect, Clock.currentTimeMillis))
    yield* TestClock.adjust(by)
    return yield* Fiber.join(fiber)
  })

const callTimes = Effect.map(FakeLlm.calls, (calls) => calls.map((c) => c.at))

describe("Hedge", () => {
  it.effect("a slow primary gets a hedge after `after`; the first success wins", () =>
    Effect.gen(function* () {
      const [response, at] = yield* timed(LlmClient.complete(request()))
      expect(response.content).toBe("hedge")
      expect(at).toBe(900)
      expect(yield* callTimes).toEqual([0, 800])
    }).pipe(Effect.provide(hedged(
      ({ call }) => call === 1 ? FakeLlm.delay("5 seconds", ok("primary")) : FakeLlm.delay("100 millis", ok("hedge")),
      { after: "800 millis" }
    ))))

  it.effect("a primary that answers before `after` sends no hedge", () =>
    Effect.gen(function* () {
      const [response, at] = yield* timed(LlmClient.complete(request()))
      expect([response.content, at]).toEqual(["ok", 799])
      expect(yield* callTimes).toEqual([0])
    }).pipe(Effect.provide(hedged(FakeLlm.delay("799 millis", ok()), { after: "800 millis" }))))

  it.effect("the losers are interrupted and awaited before the call returns", () =>
    Effect.gen(function* () {
      const cleaned: Array<number> = []
      const client: LlmClient.Service = {
        complete: (r) =>
          r.messages.length === 0 ? Effect.never : Effect.sleep("10 seconds").pipe(
            Effect.as(new ChatResponse({ id: "p", model: r.model, content: "late", finishReason: "stop", usage: { inputTokens: 1, outputTokens: 1 }, servedFrom: "provider" })),
            Effect.onInterrupt(() => Effect.flatMap(Effect.sleep("30 millis"), () => Effect.map(Clock.currentTimeMillis, (t) => { cleaned.push(t) })))
          ),
        stream: () => Stream.empty
      }
      let calls = 0
      const counting: LlmClient.Service = {
        complete: (r) => ++calls === 1 ? client.complete(r) : Effect.as(Effect.sleep("50 millis"), new ChatResponse({
          id: "h", model: r.model, content: "fast", finishReason: "stop", usage: { inputTokens: 1, outputTokens: 1 }, servedFrom: "provider"
        })),
        stream: () => Stream.empty
      }
      const decorated = LlmClient.decorate(counting, yield* Hedge.policy({ after: "100 millis" }))
      const [response, at] = yield* timed(decorated.complete(request()))
      expect(response.content).toBe("fast")
      expect(cleaned).toEqual([180]) // the primary's cleanup ran (150 + 30 ms) before the call returned
      expect(at).toBe(180)
    }))

  it.effect("after: 0 starts every attempt at once; an infinite delay never hedges", () =>
    Effect.gen(function* () {
      const all = LlmClient.decorate(yield* LlmClient.LlmClient, yield* Hedge.policy({ after: 0, maxHedges: 2 }))
      yield* timed(all.complete(request()))
      expect(yield* callTimes).toEqual([0, 0, 0])
      const never = LlmClient.decorate(yield* LlmClient.LlmClient, yield* Hedge.policy({ after: Duration.infinity }))
      yield* timed(never.complete(request()))
      expect((yield* callTimes).length).toBe(4)
    }).pipe(Effect.provide(FakeLlm.layer(FakeLlm.delay("1 second", ok())))))

  it.effect("a retryable error starts the next hedge at once; all failing → the primary's error", () =>
    Effect.gen(function* () {
      const error = yield* timed(Effect.flip(LlmClient.complete(request())))
      expect(error[0]._tag).toBe("ServerError")
      if (error[0]._tag === "ServerError") expect(error[0].status).toBe(503)
      expect(yield* callTimes).toEqual([0, 10, 20])
    }).pipe(Effect.provide(hedged(
      ({ call }) => FakeLlm.delay("10 millis", call === 1 ? unavailable : FakeLlm.fail(new LlmError.ServerError({ status: 502 }))),
      { after: "1 second", maxHedges: 2 }
    ))))

  it.effect("an error another attempt would repeat (BadRequest) fails at once", () =>
    Effect.gen(function* () {
      const [error] = yield* timed(Effect.flip(LlmClient.complete(request())))
      expect(error._tag).toBe("BadRequest")
      expect(yield* callTimes).toEqual([0])
    }).pipe(Effect.provide(hedged(FakeLlm.delay("10 millis", FakeLlm.fail(new LlmError.BadRequest({}))), { after: "100 millis" }))))

  it.effect("each hedge is drawn from the retry budget: a spent budget sends none", () =>
    Effect.gen(function* () {
      const budget = yield* Retry.makeBudget({ ratio: 0, minPerSecond: 0 })
      const client = LlmClient.decorate(yield* LlmClient.LlmClient, yield* Hedge.policy({ after: "100 millis", budget }))
      const [response, at] = yield* timed(client.complete(request()))
      expect([response.content, at]).toEqual(["ok", 1_000])
      expect(yield* callTimes).toEqual([0])
    }).pipe(Effect.provide(FakeLlm.layer(FakeLlm.delay("1 second", ok())))))

  it.effect("a full outage sends no more calls with hedging than without (one shared budget)", () =>
    Effect.gen(function* () {
      const run = (withHedge: boolean) =>
        Effect.gen(function* () {
          const fake = yield* FakeLlm.make(FakeLlm.delay("50 millis", unavailable))
          const budget = yield* Retry.makeBudget({ ratio: 0.1, minPerSecond: 0 })
          const policies = [Retry.policy({ maxRetries: 3, baseDelay: "10 millis", budget })]
          if (withHedge) policies.push(yield* Hedge.policy({ after: "20 millis", budget }))
          const client = LlmClient.decorate(fake.client, ...policies)
          yield* timed(Effect.forEach(Array.from({ length: 30 }), () => Effect.either(client.complete(request())), {
            concurrency: "unbounded"
          }), "10 seconds")
          return (yield* fake.recorder.calls).length
        })
      const without = yield* run(false)
      const withHedging = yield* run(true)
      expect(without).toBe(33)
      expect(withHedging).toBeLessThanOrEqual(without)
    }).pipe(Effect.withRandom(Random.make(1))))

  it.effect("after: { percentile }: the delay is the percentile of the recent latencies, `initial` before", () =>
    Effect.gen(function* () {
      const client = LlmClient.decorate(
        yield* LlmClient.LlmClient,
        yield* Hedge.policy({ after: { percentile: 90, initial: "5 seconds", minSamples: 10 } })
      )
      // ten calls of 10..100 ms: p90 is 90 ms
      for (let i = 1; i <= 10; i++) yield* timed(client.complete(request(`${i * 10}`)))
      expect((yield* callTimes).length).toBe(10)
      const [response, at] = yield* timed(client.complete(request("slow")))
      expect(response.content).toBe("hedge")
      expect(at - (yield* callTimes)[10]).toBe(90 + 10)
    }).pipe(Effect.provide(FakeLlm.layer(({ request, call }) => {
      const content = request.messages[0].content
      if (content === "slow") return call === 11 ? FakeLlm.delay("10 seconds", ok("primary")) : FakeLlm.delay("10 millis", ok("hedge"))
      return FakeLlm.delay(Duration.millis(Number(content)), ok())
    }))))

  it.effect("a 5 % slow tail: hedging at the 95th percentile cuts the p99 ≥ 3× with ≤ 10 % extra calls", () =>
    Effect.gen(function* () {
      const N = 100
      // Every call (hedges included) takes 100–196 ms, except a seeded 5 % that take 20 s.
      // (19 and 31 are coprime to 100 and 97: exactly 5 calls in every 100 are slow, the others spread over 100–196)
      const latencyOf = (call: number) => (call * 19) % 100 < 5 ? 20_000 : 100 + ((call * 31) % 97)
      const p99 = (latencies: ReadonlyArray<number>) => [...latencies].sort((a, b) => a - b)[Math.ceil(0.99 * N) - 1]
      // Without hedging each call takes its own latency: the p99 is the tail's 20 s.
      const plain = p99(Array.from({ length: N }, (_, i) => latencyOf(i + 1)))
      const fake = yield* FakeLlm.make(({ call }) => FakeLlm.delay(Duration.millis(latencyOf(call)), ok()))
      const client = LlmClient.decorate(fake.client, yield* Hedge.policy({ after: { percentile: 95, initial: "500 millis" } }))
      const [latencies] = yield* timed(Effect.forEach(Array.from({ length: N }), () =>
        Effect.map(Effect.timed(client.complete(request())), ([d]) => Duration.toMillis(d)), { concurrency: 10 }), "10 minutes")
      const calls = (yield* fake.recorder.calls).length
      expect(plain).toBe(20_000)
      expect(p99(latencies)).toBeLessThan(400) // a slow call is answered by its hedge after about p95 + one call
      expect(plain / p99(latencies)).toBeGreaterThanOrEqual(3)
      expect((calls - N) / N).toBeLessThanOrEqual(0.1)
    }))

  it.effect("the response's usage counts the prompt tokens of every attempt sent", () =>
    Effect.gen(function* () {
      const [response] = yield* timed(LlmClient.complete(request()))
      expect(response.usage.inputTokens).toBe(20)
      expect(response.usage.outputTokens).toBe(2)
    }).pipe(Effect.provide(hedged(
      ({ call }) => call === 1 ? FakeLlm.delay("5 seconds", ok()) : FakeLlm.delay("10 millis", ok()),
      { after: "100 millis" }
    ))))

  it.effect("streams hedge until one has started, then follow that one alone", () =>
    Effect.gen(function* () {
      const [chunks, at] = yield* timed(Stream.runCollect(LlmClient.stream(request())))
      expect(Chunk.toReadonlyArray(chunks).map((c) => c.content).join("")).toBe("fast answer")
      expect(at).toBe(100 + 20 + 500)
      expect(yield* callTimes).toEqual([0, 100])
    }).pipe(Effect.provide(hedged(
      ({ call }) => call === 1
        ? FakeLlm.stream(["slow"], { firstChunkAfter: "10 seconds" })
        : FakeLlm.stream(["fast ", "answer"], { firstChunkAfter: "20 millis", interval: "500 millis" }),
      { after: "100 millis" }
    ))))

  it.effect("a stream that has started is not hedged however slow its later chunks", () =>
    Effect.gen(function* () {
      const [chunks] = yield* timed(Stream.runCollect(LlmClient.stream(request())))
      expect(Chunk.toReadonlyArray(chunks).map((c) => c.content).join("")).toBe("a b")
      expect(yield* callTimes).toEqual([0])
    }).pipe(Effect.provide(hedged(FakeLlm.stream(["a ", "b"], { firstChunkAfter: "10 millis", interval: "5 seconds" }), {
      after: "100 millis"
    }))))

  it.effect("a hedged stream's attempt is closed however the stream ends (a consumer that stops early)", () =>
    Effect.gen(function* () {
      let closed = 0
      const chunk = (content: string) => new ChatChunk({ content, model: "gpt-4o" })
      const client: LlmClient.Service = {
        complete: () => Effect.never,
        stream: () => Stream.make(chunk(""), chunk("a"), chunk("b")).pipe(Stream.ensuring(Effect.sync(() => {
          closed++
        })))
      }
      const decorated = LlmClient.decorate(client, yield* Hedge.policy({ after: "1 second" }))
      const first = yield* Stream.runCollect(Stream.take(decorated.stream(request()), 2))
      expect(Chunk.toReadonlyArray(first).map((c) => c.content)).toEqual(["", "a"])
      expect(closed).toBe(1)
    }))

  it.effect("bad options: every failing path is listed", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(Hedge.policy({ after: { percentile: 100 }, maxHedges: -1, deposits: true } as Hedge.Options))
      expect(error.issues.map((i) => i.path).sort()).toEqual(["after.percentile", "deposits", "maxHedges"])
      const negative = yield* Effect.flip(Hedge.policy({ after: -5 }))
      expect(negative.issues.map((i) => i.path)).toEqual(["after"])
    }))
})
