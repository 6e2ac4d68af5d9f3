/**
 * ModelTier: each request goes to the cheapest tier that can answer it. Short chats go to gpt-4o-mini, a JSON
 * extraction to gpt-4.1-mini, a long document to gpt-4o; a JSON answer the cheap tier gets wrong is asked again one
 * tier up. The same workload sent to gpt-4o alone shows what tiering saves, priced from LlmMetrics.
 * Run: `npx tsx examples/model-tier.ts`
 */
import { Effect, Metric, Schema } from "effect"
import type { MetricState } from "effect"
import { FakeLlm, Llm, LlmClient, LlmMetrics, ModelTier } from "../src/index.js"

const tiers = [
  { name: "simple", model: "gpt-4o-mini" },
  { name: "medium", model: "gpt-4.1-mini" },
  { name: "complex", model: "gpt-4o" }
] as const

const Invoice = Schema.Struct({ total: Schema.Number, currency: Schema.String })

// The provider: answers of realistic length (≈ 4 characters a token). Only gpt-4o reads the scanned invoice right,
// and gpt-4o-mini has nothing to say about a riddle.
const answer = "A clear, complete answer of a couple of paragraphs. ".repeat(16) // ≈ 210 tokens
const Provider = FakeLlm.layer(({ request }) => {
  const prompt = request.messages[request.messages.length - 1].content
  if (request.responseFormat !== undefined) {
    const wrong = request.model !== "gpt-4o" && prompt.includes("scanned")
    return FakeLlm.reply(wrong ? "The total is 1,234.50 EUR." : "{\"total\": 1234.5, \"currency\": \"EUR\"}")
  }
  if (request.model === "gpt-4o-mini" && prompt.includes("riddle")) return FakeLlm.reply("")
  return FakeLlm.reply(answer)
})

const Tiered = LlmClient.layerWith(
  ModelTier.policy({
    tiers,
    escalate: {
      // Escalate an empty answer, or a JSON answer that is not an invoice; at most one tier up.
      when: (response, request) =>
        ModelTier.isEmpty(response) ||
        (request.responseFormat !== undefined && ModelTier.failsToDecode(Invoice)(response)),
      maxSteps: 1
    }
  })
)

const ask = (content: string, fields: Partial<ConstructorParameters<typeof Llm.ChatRequest>[0]> = {}) =>
  new Llm.ChatRequest({ model: "auto", messages: [{ role: "user", content }], maxTokens: 500, ...fields })

// A day's mix: mostly short chats, some extractions, a few long documents. [label, how many, request]
const workload: ReadonlyArray<readonly [string, number, Llm.ChatRequest]> = [
  ["short question", 80, ask("What is the capital of Australia?")],
  ["riddle", 5, ask("Solve this riddle: what has keys but can't open locks?")],
  ["invoice → JSON", 8, ask("Extract the total: Invoice #42 … Total due: 1,234.50 EUR", { responseFormat: { type: "json_object" } })],
  ["scanned invoice → JSON", 2, ask("Extract the total from this scanned invoice: …", { responseFormat: { type: "json_object" } })],
  ["summarise a 40 KB contract", 2, ask(`Summarise the risks in this contract:\n${"Clause. ".repeat(5_000)}`)],
  ["pinned by metadata.tier", 3, ask("Review this proof sketch", { metadata: { tier: "complex" } })]
]
const total = workload.reduce((n, [, count]) => n + count, 0)

/** The tier routes (from llm_tier_routes_total) as "tier:count" per "tier/reason". */
const routes = Effect.map(Metric.snapshot, (pairs) => {
  const counts = new Map<string, number>()
  for (const pair of pairs) {
    if (pair.metricKey.name !== LlmMetrics.names.tierRoutes) continue
    const tag = (key: string) => pair.metricKey.tags.find((t) => t.key === key)?.value ?? "?"
    counts.set(`${tag("tier")} (${tag("reason")})`, (pair.metricState as MetricState.MetricState.Counter<number>).count)
  }
  return counts
})

const costOf = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const before = (yield* LlmMetrics.snapshot).costUsd
    yield* effect
    return (yield* LlmMetrics.snapshot).costUsd - before
  })

const tieredRun = Effect.forEach(workload, ([label, count, request]) =>
  Effect.gen(function* () {
    const before = yield* routes
    const response = yield* LlmClient.complete(request)
    const after = yield* routes
    const moved = [...after].filter(([key, n]) => n !== (before.get(key) ?? 0)).map(([key]) => key)
    console.log(`${label.padEnd(27)} ×${String(count).padEnd(3)} → ${moved.join(" → ").padEnd(40)} answered by ${response.model}`)
    yield* Effect.repeatN(LlmClient.complete(request), count - 2)
  })).pipe(Effect.provide(Tiered), Effect.provide(Provider))

// The same workload, every request on gpt-4o (no tiering).
const gpt4oRun = Effect.forEach(workload, ([, count, request]) =>
  Effect.repeatN(LlmClient.complete(new Llm.ChatRequest({ ...request, model: "gpt-4o" })), count - 1)).pipe(
    Effect.provide(Provider)
  )

const program = Effect.gen(function* () {
  const tiered = yield* costOf(tieredRun)
  const all4o = yield* costOf(gpt4oRun)
  console.log("")
  const escalated = [...(yield* routes)].filter(([key]) => key.endsWith("(escalated)")).reduce((n, [, c]) => n + c, 0)
  console.log(`cost with ModelTier:      $${tiered.toFixed(6)}  (${total} requests, ${escalated} escalations included)`)
  console.log(`cost with gpt-4o for all: $${all4o.toFixed(6)}`)
  console.log(`ModelTier costs ${((tiered / all4o) * 100).toFixed(0)} % of sending everything to gpt-4o`)
  const short = (yield* Effect.forEach(["gpt-4o-mini", "gpt-4o"], (model) =>
    costOf(LlmClient.complete(ask("What is the capital of Australia?", { model })).pipe(Effect.provide(Provider)))))
  console.log(`one short question: $${short[0].toFixed(6)} on gpt-4o-mini vs $${short[1].toFixed(6)} on gpt-4o ` +
    `(${(short[1] / short[0]).toFixed(1)}×)`)
})

Effect.runPromise(program)
