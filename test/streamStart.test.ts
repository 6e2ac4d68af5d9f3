import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Fiber, Stream, TestClock } from "effect"
import * as Fallback from "../src/Fallback.js"
import { ChatChunk, ChatRequest, ChatResponse } from "../src/Llm.js"
import * as LlmClient from "../src/LlmClient.js"
import { ServerError, StreamTruncated } from "../src/LlmError.js"
import * as Retry from "../src/Retry.js"
import * as Timeout from "../src/Timeout.js"
import { isProgress } from "../src/internal/streamProgress.js"

// A provider of the test's own that opens every stream the way OpenAI-style servers do: an empty delta first.
const provider = (plan: (model: string, attempt: number) => Stream.Stream<ChatChunk, StreamTruncated | ServerError>) => {
  const attempts: Array<string> = []
  const service: LlmClient.Service = {
    complete: (request) =>
      Effect.succeed(new ChatResponse({
        id: "x", model: request.model, content: "", finishReason: "stop",
        usage: { inputTokens: 0, outputTokens: 0 }, servedFrom: "provider"
      })),
    stream: (request) =>
      Stream.suspend(() => {
        attempts.push(request.model)
        return plan(request.model, attempts.filter((m) => m === request.model).length)
      })
  }
  return { service, attempts }
}

const opening = (model: string) => new ChatChunk({ content: "", model })
const text = (model: string, content: string, finishReason?: string) =>
  new ChatChunk({ content, model, ...(finishReason === undefined ? {} : { finishReason }) })
const cut = (model: string) => Stream.fail(new StreamTruncated({ model, receivedChunks: 1 }))
const request = new ChatRequest({ model: "primary", messages: [{ role: "user", content: "hi" }] })

describe("the stream has started: one definition", () => {
  it("an empty delta is not progress; text, a finish reason or tool calls are", () => {
    expect(isProgress(opening("m"))).toBe(false)
    expect(isProgress(text("m", "a"))).toBe(true)
    expect(isProgress(text("m", "", "stop"))).toBe(true)
    expect(isProgress(new ChatChunk({ content: "", model: "m", toolCalls: [{ id: "1", name: "f", arguments: "{}" }] })))
      .toBe(true)
    // elements of a generic stream always count
    expect(isProgress(42)).toBe(true)
    expect(isProgress({ content: "" })).toBe(true)
  })

  // Each of these failed before the change: an empty opening chunk counted as "sent downstream".
  it.effect("Retry: a stream cut after only its empty opening delta is retried", () =>
    Effect.gen(function* () {
      const { service, attempts } = provider((model, attempt) =>
        attempt < 3
          ? Stream.concat(Stream.make(opening(model)), cut(model))
          : Stream.make(opening(model), text(model, "ok", "stop")))
      const client = LlmClient.decorate(service, Retry.policy({ maxRetries: 3, baseDelay: "10 millis" }))
      const fiber = yield* Effect.fork(Stream.runCollect(client.stream(request)))
      yield* TestClock.adjust("10 seconds")
      const chunks = Chunk.toReadonlyArray(yield* Fiber.join(fiber))
      expect(attempts).toEqual(["primary", "primary", "primary"])
      expect(chunks.map((c) => c.content).join("")).toBe("ok")
    }))

  it.effect("Retry: a stream cut after text is not retried", () =>
    Effect.gen(function* () {
      const { service, attempts } = provider((model) => Stream.concat(Stream.make(opening(model), text(model, "par")), cut(model)))
      const client = LlmClient.decorate(service, Retry.policy({ maxRetries: 3, baseDelay: "10 millis" }))
      const fiber = yield* Effect.fork(Effect.flip(Stream.runCollect(client.stream(request))))
      yield* TestClock.adjust("10 seconds")
      const error = yield* Fiber.join(fiber)
      expect(error._tag).toBe("StreamTruncated")
      expect(attempts).toEqual(["primary"])
    }))

  it.effect("Fallback: a stream failing after only its empty delta moves on to the next model", () =>
    Effect.gen(function* () {
      const { service, attempts } = provider((model) =>
        model === "primary"
          ? Stream.concat(Stream.make(opening(model)), Stream.fail(new ServerError({ model, status: 503 })))
          : Stream.make(opening(model), text(model, "from backup", "stop")))
      const client = LlmClient.decorate(service, Fallback.policy({ models: ["primary", "backup"] }))
      const chunks = Chunk.toReadonlyArray(yield* Stream.runCollect(client.stream(request)))
      expect(attempts).toEqual(["primary", "backup"])
      expect(chunks.map((c) => c.content).join("")).toBe("from backup")
      expect(chunks.at(-1)?.model).toBe("backup")
    }))

  it.effect("Timeout: firstToken measures the first text, not the empty opening delta", () =>
    Effect.gen(function* () {
      const { service } = provider((model) =>
        Stream.concat(
          Stream.make(opening(model)),
          Stream.fromEffect(Effect.as(Effect.sleep("3 seconds"), text(model, "late", "stop")))
        ))
      const client = LlmClient.decorate(service, Timeout.policy({ firstToken: "1 second" }))
      const fiber = yield* Effect.fork(Effect.flip(Stream.runCollect(client.stream(request))))
      yield* TestClock.adjust("1 second")
      const error = yield* Fiber.join(fiber)
      expect(error._tag).toBe("Timeout")
      if (error._tag === "Timeout") expect(error.phase).toBe("firstToken")
    }))

  it.effect("Timeout: empty deltas before the first text neither end nor restart the firstToken wait", () =>
    Effect.gen(function* () {
      const { service } = provider((model) =>
        Stream.concat(
          Stream.repeatEffect(Effect.as(Effect.sleep("400 millis"), opening(model))).pipe(Stream.take(5)),
          Stream.make(text(model, "late", "stop"))
        ))
      const client = LlmClient.decorate(service, Timeout.policy({ firstToken: "1 second" }))
      const fiber = yield* Effect.fork(Effect.flip(Stream.runCollect(client.stream(request))))
      yield* TestClock.adjust("1 second")
      const error = yield* Fiber.join(fiber)
      expect(error._tag).toBe("Timeout")
    }))

  it.effect("Timeout: once text arrived, idle gaps are measured between any chunks", () =>
    Effect.gen(function* () {
      const { service } = provider((model) =>
        Stream.concat(
          Stream.make(opening(model), text(model, "a")),
          Stream.fromEffect(Effect.as(Effect.sleep("300 millis"), text(model, "b", "stop")))
        ))
      const client = LlmClient.decorate(service, Timeout.policy({ firstToken: "1 second", idle: "500 millis" }))
      const fiber = yield* Effect.fork(Stream.runCollect(client.stream(request)))
      yield* TestClock.adjust("1 second")
      const chunks = Chunk.toReadonlyArray(yield* Fiber.join(fiber))
      expect(chunks.map((c) => c.content).join("")).toBe("ab")
    }))
})
