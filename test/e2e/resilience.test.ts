import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Fiber, Redacted, TestClock, TestServices } from "effect"
import * as ChaosServer from "../../src/ChaosServer.js"
import * as Fallback from "../../src/Fallback.js"
import { ChatRequest } from "../../src/Llm.js"
import * as LlmClient from "../../src/LlmClient.js"
import * as OpenAi from "../../src/OpenAi.js"
import * as Retry from "../../src/Retry.js"
import * as Timeout from "../../src/Timeout.js"

const REQUESTS = 200

const request = (i: number) =>
  new ChatRequest({ model: "gpt-4o-mini", messages: [{ role: "user", content: `Classify ticket #${i}` }] })

// Real HTTP on loopback with millisecond delays: this file runs on the live clock.
describe("e2e: Retry + Timeout + Fallback through the OpenAI adapter against ChaosServer", () => {
  it.live("30 % injected 503s with Retry-After, a few hangs: every one of 200 requests succeeds", () =>
    Effect.scoped(Effect.gen(function* () {
      const server = yield* ChaosServer.make({
        seed: 11,
        faults: {
          errors: [{ status: 503, rate: 0.3, retryAfter: { ms: 25 } }],
          hangRate: 0.01,
          latency: "1 millis",
          jitter: "3 millis"
        }
      })
      const base = yield* OpenAi.make({ apiKey: Redacted.make("sk-chaos"), baseURL: server.baseURL })
      const waits: Array<number> = []
      const client = LlmClient.decorate(
        base,
        Timeout.total("20 seconds"),
        Fallback.policy({ models: ["gpt-4o-mini", "gpt-4o"] }),
        Retry.policy({
          maxRetries: 4,
          baseDelay: "5 millis",
          maxDelay: "50 millis",
          onRetry: (event) => {
            if (event.error._tag === "ServerError") waits.push(Duration.toMillis(event.delay))
          }
        }),
        Timeout.attempt("300 millis")
      )
      const responses = yield* Effect.forEach(
        Array.from({ length: REQUESTS }, (_, i) => i),
        (i) => client.complete(request(i)),
        { concurrency: 8 }
      )
      const stats = yield* server.stats

      expect(responses).toHaveLength(REQUESTS)
      expect(responses.every((r) => r.content.length > 0 && r.servedFrom === "provider")).toBe(true)
      // The faults really happened: about 30 % of upstream calls were 503s, some hung and timed out.
      const errors503 = stats.byOutcome["error:503"] ?? 0
      expect(errors503 / stats.requests).toBeGreaterThan(0.2)
      expect(errors503 / stats.requests).toBeLessThan(0.4)
      expect(stats.requests).toBeGreaterThan(REQUESTS)
      // The 25 ms Retry-After (sent as retry-after-ms) was honoured: no 503 was retried sooner.
      expect(waits.length).toBeGreaterThan(0)
      expect(Math.min(...waits)).toBeGreaterThanOrEqual(25)
    })), 30_000)

  it.live("a full outage of the first model: every request is answered by the fallback, retries capped by the budget", () =>
    Effect.scoped(Effect.gen(function* () {
      const server = yield* ChaosServer.make({
        seed: 5,
        perModel: { "gpt-4o-mini": { outage: { status: 503 } } }
      })
      const base = yield* OpenAi.make({ apiKey: Redacted.make("sk-chaos"), baseURL: server.baseURL })
      const budget = yield* Retry.makeBudget({ ratio: 0.1, minPerSecond: 1 })
      const client = LlmClient.decorate(
        base,
        Fallback.policy({ models: ["gpt-4o-mini", "gpt-4o"] }),
        Retry.policy({ maxRetries: 3, baseDelay: "2 millis", maxDelay: "10 millis", budget }),
        Timeout.attempt("2 seconds")
      )
      const responses = yield* Effect.forEach(
        Array.from({ length: REQUESTS }, (_, i) => i),
        (i) => client.complete(request(i)),
        { concurrency: 8 }
      )
      const stats = yield* server.stats

      expect(responses.every((r) => r.model === "gpt-4o")).toBe(true)
      const toDeadModel = stats.byModel["gpt-4o-mini"] ?? 0
      // Retry sits below Fallback, so both tiers' calls (400) count as requests: at most 10 % of them (40) are
      // retried. 200 first calls + 40 retries instead of 4 × 200.
      expect(toDeadModel).toBeLessThanOrEqual(REQUESTS + 0.1 * 2 * REQUESTS)
      expect(stats.byModel["gpt-4o"]).toBe(REQUESTS)
    })), 30_000)
})

// The same HTTP path on the TestClock: the server writes Retry-After from the Effect clock and the adapter reads it
// back against it, so each form's wait is exact. Only the waiting for real I/O uses the live clock.
describe("e2e: each Retry-After form, through the OpenAI adapter, beats a shorter backoff", () => {
  const forms = [
    { form: "retry-after-ms: 1500", status: 503, retryAfter: { ms: 1500 }, waitMs: 1500 },
    { form: "retry-after: 2 (seconds)", status: 429, retryAfter: { seconds: 2 }, waitMs: 2000 },
    { form: "retry-after: an HTTP date 5 s ahead", status: 503, retryAfter: { date: 5 }, waitMs: 5000 }
  ] as const

  /** The TestClock instants that fibers sleep until, once some fiber sleeps (after real HTTP round trips). */
  const pendingSleeps = Effect.gen(function* () {
    for (let i = 0; i < 400; i++) {
      const sleeps = [...(yield* TestClock.sleeps())]
      if (sleeps.length > 0) return sleeps
      yield* TestServices.provideLive(Effect.sleep("5 millis"))
    }
    return yield* Effect.dieMessage("no retry wait was scheduled")
  })

  for (const { form, retryAfter, status, waitMs } of forms) {
    it.scoped(`${form}: the retry waits exactly ${waitMs} ms, not the 100 ms backoff`, () =>
      Effect.gen(function* () {
        const model = "after"
        const server = yield* ChaosServer.make({ seed: 3, perModel: { [model]: { errors: [{ status, rate: 1, retryAfter }] } } })
        const base = yield* OpenAi.make({ apiKey: Redacted.make("sk-chaos"), baseURL: server.baseURL })
        const client = LlmClient.decorate(base, Retry.policy({ maxRetries: 1, baseDelay: "100 millis", jitter: "none" }))
        const fiber = yield* Effect.fork(Effect.flip(client.complete(new ChatRequest({ model, messages: [{ role: "user", content: "hi" }] }))))

        expect(yield* pendingSleeps).toEqual([waitMs])
        expect((yield* server.stats).byModel[model]).toBe(1)
        yield* TestClock.adjust(waitMs - 1)
        expect([...(yield* TestClock.sleeps())]).toEqual([waitMs]) // still waiting: no second call yet
        expect((yield* server.stats).byModel[model]).toBe(1)
        yield* TestClock.adjust(1)
        const error = yield* Fiber.join(fiber) // the second call fails the same way; maxRetries is 1
        expect(error._tag).toBe(status === 429 ? "RateLimited" : "ServerError")
        expect((yield* server.stats).byModel[model]).toBe(2)
      }))
  }
})
