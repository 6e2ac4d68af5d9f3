/**
 * TokenBudget: a global monthly budget and a per-user daily budget stacked over a fake provider. Alice keeps
 * asking until her daily budget refuses the call (the provider is never called for it), alerts fire at 50 % and
 * 80 %, and Bob, with a budget of his own, still gets answers. Run: `npx tsx examples/token-budget.ts`
 */
import { Chunk, Effect, Layer, Queue } from "effect"
import { FakeLlm, Llm, LlmClient, LlmMetrics, TokenBudget, Tokenizer } from "../src/index.js"

const ask = (user: string, question: string) =>
  new Llm.ChatRequest({
    model: "gpt-4o-mini",
    messages: [{ role: "user", content: question }],
    maxTokens: 120,
    user
  })

const program = Effect.gen(function* () {
  const alerts = yield* TokenBudget.subscribeAlerts
  const global = yield* TokenBudget.policy({ scope: "global", limit: { usd: 5 }, period: "month" })
  const perUser = yield* TokenBudget.policy({
    scope: "user",
    limit: { tokens: 600 },
    period: "day",
    alertAt: [0.5, 0.8]
  })

  const calls = Effect.gen(function* () {
    for (let i = 1; i <= 6; i++) {
      const result = yield* Effect.either(LlmClient.complete(ask("alice", `Question ${i}: summarise chapter ${i}.`)))
      const report = yield* perUser.usage("alice")
      if (result._tag === "Right") {
        const { inputTokens, outputTokens } = result.right.usage
        console.log(`alice #${i}: answered (${inputTokens} + ${outputTokens} tokens); ` +
          `used ${report.used}/${report.limit}, ${report.remaining} left today`)
      } else {
        console.log(`alice #${i}: refused: ${result.left.message}`)
      }
    }
    const bob = yield* LlmClient.complete(ask("bob", "Hello!"))
    console.log(`bob: answered (${bob.usage.outputTokens} output tokens): his own budget is untouched by alice`)
  })
  yield* LlmClient.withPolicies(calls, global, perUser)

  for (const alert of Chunk.toReadonlyArray(yield* Queue.takeAll(alerts))) {
    console.log(`alert: ${alert.budget} for ${alert.scope} crossed ${alert.threshold * 100} % ` +
      `(${alert.used}/${alert.limit} ${alert.unit})`)
  }
  const spent = yield* global.usage()
  console.log(`global month: $${spent.used.toFixed(6)} of $${spent.limit} used`)
  const fakeCalls = yield* FakeLlm.calls
  const snapshot = yield* LlmMetrics.snapshot
  console.log(`provider calls: ${fakeCalls.length}; budget rejections: ${snapshot.budget.rejections}, ` +
    `alerts: ${snapshot.budget.alerts}`)
})

const services = Layer.mergeAll(
  FakeLlm.layer(FakeLlm.reply("A short summary of the chapter.", { usage: { inputTokens: 20, outputTokens: 100 } })),
  TokenBudget.layerStoreMemory,
  TokenBudget.layerAlerts,
  Tokenizer.layer
)

Effect.runPromise(Effect.scoped(program).pipe(Effect.provide(services)))
