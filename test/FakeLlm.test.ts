import { describe, expect, it } from "@effect/vitest"
import { Chunk, Duration, Effect, Fiber, Option, Stream, TestClock } from "effect"
import * as FakeLlm from "../src/FakeLlm.js"
import { ChatRequest } from "../src/Llm.js"
import * as LlmClient from "../src/LlmClient.js"
import * as LlmError from "../src/LlmError.js"

const request = (content = "hello there", model = "m") =>
  new ChatRequest({ model, messages: [{ role: "user", content }] })

describe("FakeLlm", () => {
  it.effect("replies with deterministic usage computed from the text", () =>
    Effect.gen(function* () {
      const response = yield* LlmClient.complete(request("12345678"))
      expect(response.content).toBe("abcdefghi")
      expect(response.servedFrom).toBe("provider")
      expect(response.finishReason).toBe("stop")
      // prompt: 3 (priming) + 3 (framing) + ceil(8 / 4); output: ceil(9 / 4)
      expect(response.usage).toEqual({ inputTokens: 8, outputTokens: 3 })
    }).pipe(Effect.provide(FakeLlm.layer(FakeLlm.reply("abcdefghi")))))

  it.effect("a list of steps is played in order and the last step repeats", () =>
    Effect.gen(function* () {
      const first = yield* Effect.flip(LlmClient.complete(request()))
      expect(first._tag).toBe("ServerError")
      const second = yield* LlmClient.complete(request())
      const third = yield* LlmClient.complete(request())
      expect([second.content, third.content]).toEqual(["ok", "ok"])
      const calls = yield* FakeLlm.calls
      expect(calls.map((c) => [c.call, c.attempt, c.kind])).toEqual([[1, 1, "complete"], [2, 2, "complete"], [3, 3, "complete"]])
    }).pipe(Effect.provide(FakeLlm.layer([FakeLlm.fail(new LlmError.ServerError({ status: 503 })), FakeLlm.reply("ok")]))))

  it.effect("a script function sees the attempt per model + messages", () =>
    Effect.gen(function* () {
      yield* Effect.flip(LlmClient.complete(request("a")))
      yield* Effect.flip(LlmClient.complete(request("b")))
      const answer = yield* LlmClient.complete(request("a"))
      expect(answer.content).toBe("a#2")
    }).pipe(Effect.provide(FakeLlm.layer(({ attempt, request: r }) =>
      attempt < 2 ? FakeLlm.fail(new LlmError.RateLimited({})) : FakeLlm.reply(`${r.messages[0].content}#${attempt}`)
    ))))

  it.effect("delays on the Effect clock (TestClock drives them)", () =>
    Effect.gen(function* () {
      const fiber = yield* Effect.fork(LlmClient.complete(request()))
      yield* TestClock.adjust("4999 millis")
      expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
      yield* TestClock.adjust("1 millis")
      const response = yield* Fiber.join(fiber)
      expect(response.content).toBe("late")
      const calls = yield* FakeLlm.calls
      expect(calls[0].at).toBe(0)
    }).pipe(Effect.provide(FakeLlm.layer(FakeLlm.delay("5 seconds", FakeLlm.reply("late"))))))

  it.effect("hang never answers until interrupted", () =>
    Effect.gen(function* () {
      const fiber = yield* Effect.fork(LlmClient.complete(request()))
      yield* TestClock.adjust("1 hour")
      expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
      yield* Fiber.interrupt(fiber)
    }).pipe(Effect.provide(FakeLlm.layer(FakeLlm.hang))))

  it.effect("streams chunks with a first-chunk delay and an interval, then finish reason and usage", () =>
    Effect.gen(function* () {
      const fiber = yield* LlmClient.stream(request()).pipe(
        Stream.mapEffect((chunk) => Effect.map(Effect.clockWith((c) => c.currentTimeMillis), (at) => [at, chunk] as const)),
        Stream.runCollect,
        Effect.fork
      )
      yield* TestClock.adjust("2 seconds")
      const timed = Chunk.toReadonlyArray(yield* Fiber.join(fiber))
      expect(timed.map(([at, c]) => [at, c.content])).toEqual([[1000, "Hel"], [1100, "lo"], [1100, ""]])
      const last = timed[2][1]
      expect(last.finishReason).toBe("stop")
      expect(last.usage).toEqual({ inputTokens: 9, outputTokens: 2 })
    }).pipe(Effect.provide(FakeLlm.layer(FakeLlm.stream(["Hel", "lo"], { firstChunkAfter: "1 second", interval: "100 millis" })))))

  it.effect("a cut stream emits its chunks then fails with StreamTruncated", () =>
    Effect.gen(function* () {
      const seen: Array<string> = []
      const error = yield* LlmClient.stream(request()).pipe(
        Stream.runForEach((c) => Effect.sync(() => seen.push(c.content))),
        Effect.flip
      )
      expect(seen).toEqual(["par", "tial"])
      expect(error).toBeInstanceOf(LlmError.StreamTruncated)
      expect((error as LlmError.StreamTruncated).receivedChunks).toBe(2)
      const completeError = yield* Effect.flip(LlmClient.complete(request()))
      expect(completeError._tag).toBe("StreamTruncated")
    }).pipe(Effect.provide(FakeLlm.layer(FakeLlm.cut(["par", "tial"])))))

  it.effect("a reply step streams word by word", () =>
    Effect.gen(function* () {
      const chunks = yield* LlmClient.stream(request()).pipe(Stream.runCollect)
      expect(Chunk.toReadonlyArray(chunks).map((c) => c.content)).toEqual(["one ", "two ", "three", ""])
    }).pipe(Effect.provide(FakeLlm.layer(FakeLlm.reply("one two three")))))

  it.effect("echo replies with the last user message; reset forgets calls", () =>
    Effect.gen(function* () {
      const response = yield* LlmClient.complete(request("ping"))
      expect(response.content).toBe("ping")
      expect((yield* FakeLlm.calls).length).toBe(1)
      yield* FakeLlm.reset
      expect((yield* FakeLlm.calls).length).toBe(0)
      const found = yield* FakeLlm.findCall((r) => r.model === "m")
      expect(Option.isNone(found)).toBe(true)
    }).pipe(Effect.provide(FakeLlm.layer(FakeLlm.echo))))

  it.effect("a delayed failure fails after the delay", () =>
    Effect.gen(function* () {
      const fiber = yield* Effect.fork(Effect.flip(LlmClient.complete(request())))
      yield* TestClock.adjust(Duration.seconds(3))
      const error = yield* Fiber.join(fiber)
      expect(error._tag).toBe("Timeout")
    }).pipe(Effect.provide(FakeLlm.layer(FakeLlm.delay("3 seconds", FakeLlm.fail(new LlmError.Timeout({ phase: "attempt", after: Duration.seconds(3) })))))))

  it.effect("response ids are numbered per fake, so they are the same in every run", () =>
    Effect.gen(function* () {
      const a = yield* LlmClient.complete(request())
      const b = yield* LlmClient.complete(request())
      expect([a.id, b.id]).toEqual(["fake-1", "fake-2"])
    }).pipe(Effect.provide(FakeLlm.layer(FakeLlm.reply("x")))))

  it("rejects negative or malformed durations in steps", () => {
    expect(() => FakeLlm.delay(-1, FakeLlm.reply("x"))).toThrow(/non-negative/)
    expect(() => FakeLlm.stream(["a"], { interval: "soon" as unknown as number })).toThrow(/duration/)
  })

  it.effect("a reply with tool calls carries them on the response and on the last chunk of a stream", () =>
    Effect.gen(function* () {
      const response = yield* LlmClient.complete(request())
      expect(response.finishReason).toBe("tool_calls")
      expect(response.toolCalls).toEqual([{ id: "c1", name: "f", arguments: "{}" }])
      const chunks = Chunk.toReadonlyArray(yield* LlmClient.stream(request()).pipe(Stream.runCollect))
      expect(chunks.map((c) => c.toolCalls)).toEqual([undefined, [{ id: "c1", name: "f", arguments: "{}" }]])
    }).pipe(Effect.provide(FakeLlm.layer(FakeLlm.reply("ok", { toolCalls: [{ id: "c1", name: "f", arguments: "{}" }] })))))
})
