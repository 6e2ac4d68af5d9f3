/**
 * PromptTrim: a long chat history is trimmed to fit gpt-4's 8k context window, keeping the system prompt, the
 * first question (middle-out) and the current turn, never splitting a tool call from its result, and saying what
 * was removed. Then the policy does the same for every request, and a prompt that cannot fit fails before any
 * call. Run: `npx tsx examples/prompt-trim.ts`
 */
import { Effect, Layer } from "effect"
import { FakeLlm, Llm, LlmClient, LlmMetrics, PromptTrim, Tokenizer } from "../src/index.js"

const paragraph = (topic: string, n: number) =>
  Array.from({ length: n }, (_, i) => `Note ${i + 1} about ${topic}: the service answered within its latency budget.`).join(" ")

const history: Array<Llm.ChatMessage> = [
  { role: "system", content: "You are an SRE assistant. Answer in two sentences." },
  { role: "user", content: "We are migrating the billing service. What should we watch first?" },
  { role: "assistant", content: paragraph("watching error rates", 30) }
]
for (let day = 1; day <= 12; day++) {
  history.push({ role: "user", content: `Day ${day} report: ${paragraph(`day ${day}`, 25)}` })
  history.push({ role: "assistant", content: paragraph(`the day ${day} report`, 20) })
}
history.push(
  { role: "user", content: "Check the current error rate, then summarise." },
  { role: "assistant", content: "", toolCalls: [{ id: "call_1", name: "error_rate", arguments: "{\"service\":\"billing\"}" }] },
  { role: "tool", content: "{\"errorRate\":0.004,\"p99Ms\":840}", toolCallId: "call_1" }
)

const program = Effect.gen(function* () {
  const total = yield* Tokenizer.countMessages(history, "gpt-4")
  console.log(`history: ${history.length} messages, ${total} tokens (gpt-4, cl100k_base)`)

  for (const strategy of ["keep-system-and-recent", "middle-out"] as const) {
    const result = yield* PromptTrim.trim(history, { maxInputTokens: 8192 - 1024, model: "gpt-4", strategy })
    console.log(`\n${strategy}: ${result.messages.length} messages, ${result.inputTokens} tokens sent`)
    console.log(`  removed ${result.droppedMessages} messages (${result.droppedTokens} tokens)`)
    for (const m of result.messages.slice(0, 4)) console.log(`  ${m.role.padEnd(9)} ${m.content.slice(0, 70)}`)
    console.log("  …")
    for (const m of result.messages.slice(-3)) console.log(`  ${m.role.padEnd(9)} ${m.content.slice(0, 70) || "(tool call)"}`)
  }

  // The policy: every request is fitted into its model's window minus the output it asks for.
  const client = LlmClient.layerWith(PromptTrim.policy({ strategy: "middle-out" })).pipe(
    Layer.provideMerge(FakeLlm.layer(FakeLlm.echo))
  )
  yield* Effect.gen(function* () {
    const answer = yield* LlmClient.complete(new Llm.ChatRequest({ model: "gpt-4", messages: history, maxTokens: 1024 }))
    console.log(`\npolicy: gpt-4 answered (${answer.usage.inputTokens} prompt tokens as the fake counts them)`)
    const paste: Array<Llm.ChatMessage> = [{ role: "user", content: paragraph("a huge paste", 600) }]
    const pasteTokens = yield* Tokenizer.countMessages(paste, "gpt-4")
    const tooLong = yield* Effect.flip(LlmClient.complete(new Llm.ChatRequest({ model: "gpt-4", messages: paste, maxTokens: 1024 })))
    const calls = yield* FakeLlm.calls
    console.log(`policy: a ${pasteTokens}-token question alone -> ${tooLong._tag}: ${tooLong.message}`)
    console.log(`policy: provider calls made: ${calls.length} (the oversized one never left the process)`)
  }).pipe(Effect.provide(client))

  const snapshot = yield* LlmMetrics.snapshot
  console.log(`metrics: ${snapshot.trimmedTokens} tokens trimmed in total`)
}).pipe(Effect.provide(Tokenizer.layer))

Effect.runPromise(program)
