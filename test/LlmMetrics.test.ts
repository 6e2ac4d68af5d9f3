import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Metric, TestClock } from "effect"
import * as FakeLlm from "../src/FakeLlm.js"
import { ChatRequest } from "../src/Llm.js"
import * as LlmClient from "../src/LlmClient.js"
import * as LlmError from "../src/LlmError.js"
import * as LlmMetrics from "../src/LlmMetrics.js"

// This file owns the global metric registry (vitest runs each test file in its own process).
describe("LlmMetrics.snapshot", () => {
  it.effect("summarises a known sequence of calls", () =>
    Effect.gen(function* () {
      const before = yield* LlmMetrics.snapshot
      expect(before.requests).toBe(0)
      expect(before.errorRate).toBe(0)
      expect(before.latencyMs).toEqual({ p50: 0, p95: 0, p99: 0 })
      // 10 calls on gpt-4o-mini: calls 1..9 answer after 100 ms, call 10 fails after 1000 ms.
      const script: FakeLlm.Script = ({ call }) =>
        call === 10
          ? FakeLlm.delay("1000 millis", FakeLlm.fail(new LlmError.ServerError({ status: 503 })))
          : FakeLlm.delay("100 millis", FakeLlm.reply("x".repeat(40), { usage: { inputTokens: 1000, outputTokens: 500 } }))
      const request = new ChatRequest({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] })
      const run = Effect.forEach(Array.from({ length: 10 }), () => Effect.exit(LlmClient.complete(request)), {
        concurrency: 1
      }).pipe(Effect.provide(FakeLlm.layer(script)))
      const fiber = yield* Effect.fork(run)
      yield* TestClock.adjust("10 seconds")
      const exits = yield* Fiber.join(fiber)
      expect(exits.filter(Exit.isSuccess).length).toBe(9)

      yield* LlmMetrics.count(LlmMetrics.cacheHits, { model: "gpt-4o-mini" }, 3)
      yield* LlmMetrics.count(LlmMetrics.cacheMisses, { model: "gpt-4o-mini" }, 1)
      yield* LlmMetrics.count(LlmMetrics.retries, { model: "gpt-4o-mini", error: "ServerError" }, 2)
      yield* LlmMetrics.count(LlmMetrics.breakerTransitions, { key: "gpt-4o-mini", from: "closed", to: "open" })
      yield* LlmMetrics.count(LlmMetrics.breakerTransitions, { key: "gpt-4o-mini", from: "open", to: "half_open" })
      yield* LlmMetrics.count(LlmMetrics.budgetRejections, { budget: "global" })

      const s = yield* LlmMetrics.snapshot
      expect(s.requests).toBe(10)
      expect(s.failures).toBe(1)
      expect(s.errorRate).toBeCloseTo(0.1)
      expect(s.inputTokens).toBe(9000)
      expect(s.outputTokens).toBe(4500)
      // gpt-4o-mini: $0.15 / M input, $0.60 / M output
      expect(s.costUsd).toBeCloseTo(9 * (1000 * 0.15 + 500 * 0.6) / 1e6, 10)
      expect(s.cacheHitRate).toBeCloseTo(0.75)
      expect(s.retries).toBe(2)
      expect(s.breakerOpens).toBe(1)
      expect(s.budget.rejections).toBe(1)
      // 9 calls at 100 ms, 1 at 1000 ms: the median is ~100 ms (within a bucket), p99 within the 1000 ms bucket.
      // (the 1.25x buckets bound the estimate: 100 ms lies in (88.8, 111] and the minimum recorded is 100)
      expect(s.latencyMs.p50).toBeGreaterThanOrEqual(100)
      expect(s.latencyMs.p50).toBeLessThanOrEqual(111.03)
      expect(s.latencyMs.p99).toBeGreaterThan(800)
      expect(s.latencyMs.p99).toBeLessThanOrEqual(1000)
      expect(LlmMetrics.formatTable(s)).toContain("requests (provider calls)")
    }))

  it("quantile interpolates within a bucket and clamps to min/max", () => {
    const buckets: ReadonlyArray<readonly [number, number]> = [[10, 0], [20, 10], [40, 10]]
    expect(LlmMetrics.quantile(buckets, 10, 0.5, 12, 18)).toBeCloseTo(15)
    expect(LlmMetrics.quantile([], 0, 0.5, 0, 0)).toBe(0)
    expect(LlmMetrics.quantile(buckets, 11, 1, 12, 50)).toBe(50)
  })

  it.effect("an unpriced model is counted, never priced at zero silently", () =>
    Effect.gen(function* () {
      const before = yield* LlmMetrics.snapshot
      yield* LlmMetrics.recordUsage("my-local-model", { inputTokens: 10, outputTokens: 10 })
      const after = yield* LlmMetrics.snapshot
      expect(after.costUsd).toBe(before.costUsd)
      expect(after.inputTokens).toBe(before.inputTokens + 10)
      const state = yield* Metric.value(Metric.tagged(LlmMetrics.unpricedCalls, "model", "my-local-model"))
      expect(state.count).toBe(1)
    }))
})
