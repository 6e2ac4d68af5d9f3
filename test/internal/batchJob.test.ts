import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Either, Fiber, Option, Ref, TestClock } from "effect"
import * as Core from "../../src/internal/batchJob.js"
import { ChatRequest, ChatResponse } from "../../src/Llm.js"
import { ServerError } from "../../src/LlmError.js"

const request = (i: number) => new ChatRequest({ model: "gpt-4o-mini", messages: [{ role: "user", content: `q${i}` }] })

/** A transport whose batch completes at `doneAt` ms of the Effect clock; `flaky` retrievals fail with a 503 first. */
const fake = (doneAt: number, flaky = 0) =>
  Effect.gen(function*() {
    const calls = yield* Ref.make<Array<string>>([])
    const record = (name: string) => Ref.update(calls, (c) => [...c, name])
    let failures = flaky
    const transport: Core.Transport<ChatRequest, ChatResponse> = {
      url: "/v1/chat/completions",
      upload: () => Effect.as(record("upload"), "file-1"),
      create: () => Effect.as(record("create"), { id: "batch-1", status: "in_progress" }),
      retrieve: (id) =>
        Effect.gen(function*() {
          yield* record("retrieve")
          if (failures-- > 0) return yield* Effect.fail(new ServerError({ model: "m", status: 503 }))
          const now = yield* Effect.clockWith((c) => c.currentTimeMillis)
          return now >= doneAt ? { id, status: "completed", outputFileId: "out-1" } : { id, status: "in_progress" }
        }),
      cancel: (id) => Effect.as(record("cancel"), { id, status: "cancelling" }),
      content: () => Effect.succeed(""),
      body: (r) => ({ model: r.model }),
      decode: (body) => Either.right(new ChatResponse({ id: "x", model: "gpt-4o-mini", content: String(body), finishReason: "stop", usage: { inputTokens: 1, outputTokens: 1 }, servedFrom: "provider" }))
    }
    return { transport, calls }
  })

const memoryStore = (): Core.Store => {
  const records = new Map<string, Core.JobRecord>()
  return {
    get: (key) => Effect.sync(() => Option.fromNullable(records.get(key))),
    claim: (key, record) => Effect.sync(() => records.get(key) ?? (records.set(key, record), record))
  }
}

describe("BatchJob core", () => {
  it.effect("polls at once, then every interval on the clock, until the batch ends (TestClock)", () =>
    Effect.gen(function*() {
      const { calls, transport } = yield* fake(95_000)
      const fiber = yield* Effect.fork(Core.poll(transport, "batch-1", Duration.seconds(30)))
      yield* TestClock.adjust("90 seconds")
      expect((yield* Ref.get(calls)).length).toBe(4) // 0, 30, 60, 90 s
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("30 seconds")
      const batch = yield* Fiber.join(fiber)
      expect(batch.status).toBe("completed")
      expect((yield* Ref.get(calls)).length).toBe(5) // … and 120 s
    }))

  it.effect("a retryable retrieval failure waits for the next poll", () =>
    Effect.gen(function*() {
      const { calls, transport } = yield* fake(0, 2)
      const fiber = yield* Effect.fork(Core.poll(transport, "batch-1", Duration.seconds(10)))
      yield* TestClock.adjust("20 seconds")
      expect((yield* Fiber.join(fiber)).status).toBe("completed")
      expect((yield* Ref.get(calls)).length).toBe(3)
    }))

  it.effect("submits once per key: a second submit with the same requests resumes, other requests conflict", () =>
    Effect.gen(function*() {
      const { calls, transport } = yield* fake(0)
      const store = memoryStore()
      const jsonl = Core.inputFile(transport, [request(0), request(1)])
      const first = yield* Core.submit(transport, store, "k", jsonl, 2, {}, 0, (key) => ({ _tag: "Conflict" as const, key }))
      const second = yield* Core.submit(transport, store, "k", jsonl, 2, {}, 5, (key) => ({ _tag: "Conflict" as const, key }))
      expect(second).toEqual(first)
      expect(yield* Ref.get(calls)).toEqual(["upload", "create"])
      const other = Core.inputFile(transport, [request(2)])
      const conflict = yield* Effect.flip(Core.submit(transport, store, "k", other, 1, {}, 5, (key) => ({ _tag: "Conflict" as const, key })))
      expect(conflict).toEqual({ _tag: "Conflict", key: "k" })
    }))

  it.effect("maps lines back by custom_id: answers, failures by status, expired, unknown and duplicate ids ignored", () =>
    Effect.gen(function*() {
      const { transport } = yield* fake(0)
      const requests = [request(0), request(1), request(2), request(3)]
      const output = [
        JSON.stringify({ custom_id: "item-2", response: { status_code: 200, body: "two" }, error: null }),
        JSON.stringify({ custom_id: "item-2", response: { status_code: 200, body: "again" }, error: null }),
        JSON.stringify({ custom_id: "item-9", response: { status_code: 200, body: "nine" }, error: null }),
        "not json"
      ].join("\n")
      const errors = [
        JSON.stringify({ custom_id: "item-0", response: { status_code: 429, body: { error: { code: "rate_limit_exceeded" } } }, error: null }),
        JSON.stringify({ custom_id: "item-1", response: null, error: { code: "batch_expired", message: "…" } })
      ].join("\n")
      const outcomes = Core.collect(transport, requests, [output, errors], "expired")
      expect(outcomes.map((o) => o._tag === "answer" ? o.response.content : o._tag === "failure" ? o.error._tag : o.reason))
        .toEqual(["RateLimited", "expired", "two", "expired"])
    }))
})
