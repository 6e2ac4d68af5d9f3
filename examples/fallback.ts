/**
 * Fallback: an ordered chain of models. The first is down, so the second answers; an open circuit is skipped at
 * once; a too-long prompt skips to a model with a larger context window; a local OpenAI-compatible server (here a
 * FakeLlm) is the last tier; when everything fails, AllModelsFailed lists each model's error.
 * Run: `npx tsx examples/fallback.ts`
 */
import { Duration, Effect, Layer, Stream } from "effect"
import { Fallback, FakeLlm, Llm, LlmClient, LlmError, LlmMetrics, Retry } from "../src/index.js"

const ask = (model: string) =>
  new Llm.ChatRequest({ model, messages: [{ role: "user", content: "Translate 'hello' to French" }] })

// The cloud provider: gpt-4o is having an outage, gpt-4o's breaker would say "open", gpt-4o-mini works.
let outage = new Set(["gpt-4o"])
const Cloud = FakeLlm.layer(({ request }) => {
  if (request.model === "o1") return FakeLlm.fail(new LlmError.CircuitOpen({ key: "o1", retryAfter: Duration.seconds(30) }))
  if (request.model === "gpt-4") return FakeLlm.fail(new LlmError.ContextTooLong({ model: "gpt-4", contextWindow: 8192 }))
  if (outage.has(request.model)) return FakeLlm.fail(new LlmError.ServerError({ status: 503 }))
  return FakeLlm.delay("20 millis", FakeLlm.reply(`Bonjour (from ${request.model})`))
})
// The last tier: a local server with its own client (in production: OpenAi.layer({ baseURL: "http://127.0.0.1:11434/v1", ... })).
const Local = FakeLlm.layer(FakeLlm.delay("50 millis", FakeLlm.reply("Bonjour (local llama)")))

const Live = Layer.unwrapScoped(Effect.gen(function* () {
  const local = yield* Fallback.clientFromLayer(Local)
  return LlmClient.layerWith(
    Fallback.policy({ models: ["o1", "gpt-4o", "gpt-4", "gpt-4o-mini", { model: "llama3.1:8b", client: local }] }),
    Retry.policy({ maxRetries: 1, baseDelay: "20 millis" })
  )
})).pipe(Layer.provideMerge(Cloud))

const show = (label: string, request: Llm.ChatRequest) =>
  LlmClient.complete(request).pipe(
    Effect.match({
      onSuccess: (r) => `${label.padEnd(44)} → ${r.model}: "${r.content}"`,
      onFailure: (e) => `${label.padEnd(44)} → ${e.message}`
    }),
    Effect.flatMap((line) => Effect.sync(() => console.log(line)))
  )

const program = Effect.gen(function* () {
  yield* FakeLlm.reset
  yield* show("1. request o1 (breaker open, gpt-4o down)", ask("o1"))
  const models = (yield* FakeLlm.calls).map((c) => c.request.model)
  console.log(`   provider calls: ${models.join(" → ")}`)
  console.log("   (o1's open circuit skipped at once, gpt-4o retried once then left, gpt-4's window too small)")

  yield* show("2. request gpt-4 (prompt too long)", ask("gpt-4"))

  outage = new Set(["gpt-4o", "gpt-4o-mini"])
  yield* show("3. cloud down: the local tier answers", ask("gpt-4o"))

  const chunks = yield* Stream.runCollect(LlmClient.stream(ask("gpt-4o")))
  console.log(`4. streamed, falling back before the first chunk → ${[...chunks][0].model}: "${Llm.joinChunks(chunks)}"`)

  const cloud = yield* Effect.provide(LlmClient.LlmClient, Cloud)
  const strict = LlmClient.decorate(cloud, Fallback.policy({ models: ["gpt-4o", "gpt-4o-mini"] }))
  const error = yield* Effect.flip(strict.complete(ask("gpt-4o")))
  console.log(`5. no local tier: ${error._tag}`)
  if (error._tag === "AllModelsFailed") {
    for (const failure of error.failures) console.log(`     ${failure.model}: ${failure._tag}`)
  }
  console.log(`llm_fallbacks_total: ${(yield* LlmMetrics.snapshot).fallbacks}`)
}).pipe(Effect.provide(Live))

Effect.runPromise(program)
