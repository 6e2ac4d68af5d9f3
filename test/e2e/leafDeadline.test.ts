import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Exit, Fiber, Redacted } from "effect"
import * as ChaosServer from "../../src/ChaosServer.js"
import { ChatRequest } from "../../src/Llm.js"
import * as LlmClient from "../../src/LlmClient.js"
import * as OpenAi from "../../src/OpenAi.js"
import * as Timeout from "../../src/Timeout.js"

const request = new ChatRequest({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hello" }] })

const pollAborted = (server: ChaosServer.Service, atLeast: number) =>
  Effect.gen(function* () {
    for (let i = 0; i < 100; i++) {
      const stats = yield* server.stats
      if (stats.aborted >= atLeast) return stats.aborted
      yield* Effect.sleep("10 millis")
    }
    return (yield* server.stats).aborted
  })

// Real HTTP on loopback, live clock, millisecond deadlines: the adapter enforces a Timeout policy's deadline itself.
describe("e2e: a Timeout directly above the OpenAI adapter hands it the deadline", () => {
  it.live("the adapter's complete enforces deadlines; a hanging request fails with Timeout and is aborted", () =>
    Effect.scoped(Effect.gen(function* () {
      const server = yield* ChaosServer.make({ seed: 1, faults: { hangRate: 1 } })
      const base = yield* OpenAi.make({ apiKey: Redacted.make("sk-test"), baseURL: server.baseURL })
      expect(base.enforces?.deadline).toBe(true)
      const client = LlmClient.decorate(base, Timeout.attempt("100 millis"))
      const [elapsed, error] = yield* Effect.timed(Effect.flip(client.complete(request)))
      expect(error).toMatchObject({ _tag: "Timeout", phase: "attempt", model: "gpt-4o-mini" })
      expect(error._tag === "Timeout" && Duration.toMillis(error.after)).toBe(100)
      expect(Duration.toMillis(elapsed)).toBeGreaterThanOrEqual(95)
      expect(Duration.toMillis(elapsed)).toBeLessThan(2_000)
      expect(yield* pollAborted(server, 1)).toBeGreaterThanOrEqual(1)
    })))

  it.live("a custom fetch that ignores the abort signal still cannot hold the caller past the deadline", () =>
    Effect.gen(function* () {
      const base = yield* OpenAi.make({
        apiKey: Redacted.make("sk-test"),
        baseURL: "http://127.0.0.1:9/v1",
        fetch: () => new Promise<Response>(() => {})
      })
      const client = LlmClient.decorate(base, Timeout.attempt("100 millis"))
      const [elapsed, error] = yield* Effect.timed(Effect.flip(client.complete(request)))
      expect(error).toMatchObject({ _tag: "Timeout", phase: "attempt", model: "gpt-4o-mini" })
      expect(Duration.toMillis(elapsed)).toBeLessThan(2_000)
    }))

  it.live("a call that answers in time is not affected", () =>
    Effect.scoped(Effect.gen(function* () {
      const server = yield* ChaosServer.make({ seed: 1, faults: { latency: "5 millis" } })
      const base = yield* OpenAi.make({ apiKey: Redacted.make("sk-test"), baseURL: server.baseURL })
      const client = LlmClient.decorate(base, Timeout.attempt("2 seconds"))
      const responses = yield* Effect.forEach(Array.from({ length: 20 }), () => client.complete(request))
      expect(responses.every((r) => r.servedFrom === "provider" && r.content.length > 0)).toBe(true)
    })))

  it.live("a caller's interruption is an interruption, not a Timeout, and aborts the request", () =>
    Effect.scoped(Effect.gen(function* () {
      const server = yield* ChaosServer.make({ seed: 1, faults: { hangRate: 1 } })
      const base = yield* OpenAi.make({ apiKey: Redacted.make("sk-test"), baseURL: server.baseURL })
      const client = LlmClient.decorate(base, Timeout.attempt("10 seconds"))
      const fiber = yield* Effect.fork(client.complete(request))
      yield* Effect.sleep("50 millis")
      const exit = yield* Fiber.interrupt(fiber)
      expect(Exit.isInterrupted(exit)).toBe(true)
      expect(yield* pollAborted(server, 1)).toBeGreaterThanOrEqual(1)
    })))

  it.live("a total deadline above other policies still works (it races the whole call)", () =>
    Effect.scoped(Effect.gen(function* () {
      const server = yield* ChaosServer.make({ seed: 1, faults: { hangRate: 1 } })
      const base = yield* OpenAi.make({ apiKey: Redacted.make("sk-test"), baseURL: server.baseURL })
      const client = LlmClient.decorate(base, Timeout.total("150 millis"), Timeout.attempt("100 millis"))
      const error = yield* Effect.flip(client.complete(request))
      expect(error).toMatchObject({ _tag: "Timeout", phase: "attempt" })
    })))
})
