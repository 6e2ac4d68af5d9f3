import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Redacted } from "effect"
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
