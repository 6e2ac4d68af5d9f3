import { describe, expect, it } from "@effect/vitest"
import { Effect, Redacted, Schema } from "effect"
import * as Batching from "../src/Batching.js"
import * as ChaosServer from "../src/ChaosServer.js"
import * as LlmClient from "../src/LlmClient.js"
import * as LlmMetrics from "../src/LlmMetrics.js"
import * as OpenAi from "../src/OpenAi.js"

const Label = Schema.Literal("billing", "bug", "account", "other")
const tickets = Array.from({ length: 120 }, (_, i) => `Ticket ${i}: order ${4000 + i} ${i % 2 === 0 ? "charged twice" : "crashes"}`)

// Through the real `openai` SDK (a 500 ms window: the 120 callers start long before it ends, so always 3 calls):
// the ChaosServer answers Batching's in-prompt contract entry by entry.
const labelsFrom = (seed: number) =>
  Effect.scoped(Effect.gen(function*() {
    const server = yield* ChaosServer.make({ seed })
    const client = yield* OpenAi.make({ apiKey: Redacted.make("sk-chaos"), baseURL: server.baseURL })
    const classify = yield* Batching.make({ model: "gpt-4o-mini", instruction: "Classify each ticket.", item: Schema.String, result: Label, maxBatchSize: 50, window: "500 millis" })
      .pipe(Effect.provideService(LlmClient.LlmClient, client))
    const before = (yield* LlmMetrics.snapshot).requests
    const labels = yield* Effect.forEach(tickets, classify, { concurrency: "unbounded" })
    return { labels, calls: (yield* LlmMetrics.snapshot).requests - before }
  }))

describe("ChaosServer: in-prompt batches (Batching's contract)", () => {
  it.live("120 items in 3 calls, one label of the schema's enum per item, the same label for the same item on every server", () =>
    Effect.gen(function*() {
      const first = yield* labelsFrom(3)
      expect(first.calls).toBe(3)
      expect(first.labels).toHaveLength(120)
      for (const label of first.labels) expect(["billing", "bug", "account", "other"]).toContain(label)
      // deterministic by seed and item, and not one label for all
      expect(new Set(first.labels).size).toBeGreaterThan(1)
      expect((yield* labelsFrom(3)).labels).toEqual(first.labels)
    }))
})
