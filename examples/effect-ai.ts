/**
 * The @effect/ai bridge against a ChaosServer, both ways. Down: GPT through `@effect/ai-openai` and Claude through
 * `@effect/ai-anthropic`, one fallback chain across both, with the OpenAI side in a full outage: every request is
 * answered by Claude and priced at Anthropic's prices. Up: `LanguageModel.generateObject` with a Schema over the same
 * policies (the policies as a `LanguageModel`), and an `LlmError` matched behind its `AiError`. Seeded; runs in about
 * a second. Run: `npx tsx examples/effect-ai.ts`
 */
import { LanguageModel } from "@effect/ai"
import { AnthropicClient, AnthropicLanguageModel } from "@effect/ai-anthropic"
import { OpenAiClient, OpenAiLanguageModel } from "@effect/ai-openai"
import { FetchHttpClient } from "@effect/platform"
import { Effect, Layer, Option, Redacted, Schema } from "effect"
import { ChaosServer, Fallback, Llm, LlmClient, LlmMetrics, Retry, TokenBudget } from "../src/index.js"
import * as EffectAi from "../src/EffectAi.js"

const Chaos = ChaosServer.layer({
  seed: 3,
  words: 6,
  perModel: { "gpt-4o": { outage: { status: 503, retryAfter: { seconds: 1 } } } }
})

// Each provider's own client and model layers, pointed at the server (its Anthropic side at `url`, OpenAI's at `baseURL`).
const Providers = Layer.unwrapEffect(Effect.map(ChaosServer.ChaosServer, (server) =>
  EffectAi.layerLlmClientByModel({
    "gpt-4o": OpenAiLanguageModel.model("gpt-4o").pipe(
      Layer.provide(OpenAiClient.layer({ apiUrl: server.baseURL, apiKey: Redacted.make("sk-example") }))
    ),
    "claude-sonnet-4": AnthropicLanguageModel.model("claude-sonnet-4-20250514").pipe(
      Layer.provide(AnthropicClient.layer({ apiUrl: server.url, apiKey: Redacted.make("sk-ant-example") }))
    )
  }))).pipe(Layer.provide(FetchHttpClient.layer))

// A Retry-After of 1 s is longer than this Retry waits (`maxRetryAfter`), so the chain moves on to Claude at once.
const Policies = LlmClient.layerWith(
  TokenBudget.policy({ scope: "user", limit: { tokens: 250 }, period: "day" }),
  Fallback.policy({ models: ["gpt-4o", "claude-sonnet-4"] }),
  Retry.policy({ maxRetries: 2, baseDelay: "10 millis", maxRetryAfter: "100 millis" })
).pipe(Layer.provide(Providers), Layer.provide(TokenBudget.layerStoreMemory))

const Live = Policies.pipe(Layer.provideMerge(Chaos))

const down = Effect.gen(function* () {
  console.log("Down: LlmClient over @effect/ai providers, gpt-4o in outage")
  for (const question of ["What is a circuit breaker?", "Why jitter a backoff?", "What is a token budget?"]) {
    const response = yield* LlmClient.complete(new Llm.ChatRequest({
      model: "gpt-4o",
      messages: [{ role: "user", content: question }],
      maxTokens: 40,
      user: "tenant-1"
    }))
    console.log(`  ${response.model}: "${response.content}" (${response.usage.inputTokens} → ${response.usage.outputTokens} tokens)`)
  }
})

const Answer = Schema.Struct({ answer: Schema.String })

const up = Effect.gen(function* () {
  console.log("Up: LanguageModel.generateObject over the same policies")
  const response = yield* LanguageModel.generateObject({ prompt: "Name a resilience pattern", schema: Answer }).pipe(
    EffectAi.withRequest({ user: "tenant-2", maxTokens: 60 })
  )
  console.log(`  value: ${JSON.stringify(response.value)}`)
  // tenant-1 spent its budget above: the LlmError is still there behind the AiError
  const refused = yield* Effect.flip(LanguageModel.generateText({ prompt: "One more, please" }).pipe(
    EffectAi.withRequest({ user: "tenant-1", maxTokens: 240 })
  ))
  const cause = Option.map(EffectAi.llmError(refused), (error) => error._tag)
  console.log(`  tenant-1 again: ${refused._tag} whose cause is ${Option.getOrElse(cause, () => "?")}`)
}).pipe(Effect.provide(EffectAi.model("gpt-4o")))

const program = Effect.gen(function* () {
  yield* down
  yield* up
  const server = yield* ChaosServer.ChaosServer
  const stats = yield* server.stats
  console.log(`\nserver: ${JSON.stringify(stats.byDialect)} by dialect, ${JSON.stringify(stats.byOutcome)}`)
  const metrics = yield* LlmMetrics.snapshot
  console.log(`spent $${metrics.costUsd.toFixed(6)} at Anthropic's prices, ${metrics.fallbacks} fallbacks`)
}).pipe(Effect.provide(Live))

Effect.runPromise(program)
