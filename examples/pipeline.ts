/**
 * Pipeline: the whole default stack from one options object, over a fake provider whose gpt-4o is down.
 * Run: `npx tsx examples/pipeline.ts`
 */
import { Effect, Layer } from "effect"
import { FakeLlm, Llm, LlmClient, LlmError, LlmMetrics, Pipeline } from "../src/index.js"

const Provider = FakeLlm.layer(({ request }) =>
  request.model === "gpt-4o"
    ? FakeLlm.fail(new LlmError.ServerError({ model: "gpt-4o", status: 503 }))
    : FakeLlm.delay("20 millis", FakeLlm.reply(`Answer from ${request.model}`))
)

const Live = Pipeline.layerMemory({
  // gpt-4o-mini answers for gpt-4o here: the cache keeps those answers under gpt-4o's key for 1 minute (the default
  // `cacheFallbackAnswers`), so the repeated questions below cost nothing during the outage
  cache: { ttl: "1 hour" },
  budgets: [{ scope: "user", limit: { tokens: 5_000 }, period: "day" }],
  fallback: { models: ["gpt-4o", "gpt-4o-mini"] },
  retry: { maxRetries: 2, baseDelay: "10 millis" },
  breaker: { per: "model", failureThreshold: 3 },
  timeout: { attempt: "5 seconds" }
}).pipe(Layer.provideMerge(Provider))

const ask = (i: number) =>
  new Llm.ChatRequest({
    model: "gpt-4o",
    messages: [{ role: "user", content: `Question ${i % 3}` }],
    maxTokens: 100,
    temperature: 0,
    user: "alice"
  })

const program = Effect.gen(function* () {
  console.log(`order: ${Pipeline.order.join(" → ")}`)
  for (let i = 0; i < 6; i++) {
    const r = yield* LlmClient.complete(ask(i))
    console.log(`#${i}: "${r.content}" (model ${r.model}, served from ${r.servedFrom})`)
  }
  const calls = yield* FakeLlm.calls
  console.log(`provider calls: ${calls.length} (gpt-4o: ${calls.filter((c) => c.request.model === "gpt-4o").length})`)
  console.log(LlmMetrics.formatTable(yield* LlmMetrics.snapshot))
})

Effect.runPromise(program.pipe(Effect.provide(Live)))
