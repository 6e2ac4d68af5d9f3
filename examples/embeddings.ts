/**
 * Embeddings over the ChaosServer: 100 concurrent single-text `embed` calls through `Embeddings.batching` and the real
 * `openai` SDK (OpenAi.makeEmbeddings), with a retry around each call. Prints how many upstream requests they took,
 * that every caller got the vector for its own text, and the tokens. Then a per-user token budget (the same
 * `TokenBudget` chat uses) refusing a user's embeddings once spent. Runs in well under a second.
 * Run: `npx tsx examples/embeddings.ts`
 */
import { Effect, Redacted } from "effect"
import { ChaosServer, Embeddings, Retry, TokenBudget } from "../src/index.js"
import * as OpenAi from "../src/OpenAi.js"

const model = "text-embedding-3-small"
const texts = Array.from({ length: 100 }, (_, i) => `Support article ${i}: ${i % 2 === 0 ? "refunds" : "shipping"}`)

const program = Effect.gen(function* () {
  const server = yield* ChaosServer.make({ seed: 5 })
  const base = yield* OpenAi.makeEmbeddings({ apiKey: Redacted.make("sk-chaos-example"), baseURL: server.baseURL })
  const client = Embeddings.decorate(
    base,
    Embeddings.around((call) => call.pipe(Retry.withRetry({ maxRetries: 3 }))),
    yield* Embeddings.batching({ window: "5 millis", maxBatchSize: 32 })
  )
  const responses = yield* Effect.all(
    texts.map((text) => client.embed(new Embeddings.EmbedRequest({ model, input: [text] }))),
    { concurrency: "unbounded" }
  )
  const upstream = (yield* server.stats).byDialect.embeddings ?? 0
  // The same text embeds to the same vector: ask again for text 42 alone and compare.
  const again = yield* base.embed(new Embeddings.EmbedRequest({ model, input: [texts[42]] }))
  const own = responses[42].embeddings[0].every((x, k) => x === again.embeddings[0][k])
  const tokens = responses.reduce((sum, r) => sum + r.usage.inputTokens, 0)
  console.log(`${texts.length} concurrent calls → ${upstream} upstream requests (maxBatchSize 32)`)
  console.log(`caller 42 got the vector of its own text: ${own}; ${responses[0].embeddings[0].length} dimensions`)
  console.log(`${tokens} input tokens in all`)
  if (upstream > 4 || !own) return yield* Effect.dieMessage("unexpected outcome")

  // One budget for chat and embeddings: 60 tokens a user a day (each embedding reserves its exact input tokens).
  const budget = yield* TokenBudget.policy({ scope: "user", limit: { tokens: 60 }, period: "day" })
  const budgeted = Embeddings.decorate(base, Embeddings.tokenBudget(budget))
  const outcomes = yield* Effect.forEach(texts.slice(0, 10), (text) =>
    Effect.either(budgeted.embed(new Embeddings.EmbedRequest({ model, input: [text], user: "user-7" }))))
  const refused = outcomes.filter((o) => o._tag === "Left" && o.left._tag === "BudgetExceeded").length
  const report = yield* budget.usage("user-7")
  console.log(`user-7: ${10 - refused} embeddings answered, ${refused} refused by the budget; ${report.used}/${report.limit} tokens used`)
  if (refused === 0 || report.used > report.limit) return yield* Effect.dieMessage("unexpected outcome")
})

Effect.runPromise(Effect.scoped(program).pipe(Effect.provide(TokenBudget.layerStoreMemory))).catch((error) => {
  console.error(error)
  process.exit(1)
})
