/**
 * OpenAi over the ChaosServer: starts a fault-injecting OpenAI-compatible server on a random loopback port with
 * 20 % HTTP 503s (Retry-After 1 s) and 10-30 ms of latency, then sends 20 requests through the real `openai` SDK
 * (OpenAi.layer, no retries) and prints each outcome, the typed error of each failure, the server's counters
 * and the client's metrics. Seeded, so every run prints the same sequence. Runs in about a second.
 * Run: `npx tsx examples/openai-chaos.ts`
 */
import { Duration, Effect, Layer, Option, Redacted } from "effect"
import { ChaosServer, Llm, LlmClient, LlmError, LlmMetrics } from "../src/index.js"
import * as OpenAi from "../src/OpenAi.js"

const Chaos = ChaosServer.layer({
  seed: 42,
  words: 6,
  faults: {
    errors: [{ status: 503, rate: 0.2, retryAfter: { seconds: 1 } }],
    latency: "10 millis",
    jitter: "20 millis"
  }
})

// The client needs the server's address, so it is built from the ChaosServer service.
const Client = Layer.unwrapEffect(
  Effect.map(ChaosServer.ChaosServer, (server) =>
    OpenAi.layer({ apiKey: Redacted.make("sk-chaos-example"), baseURL: server.baseURL }))
)

const Live = Client.pipe(Layer.provideMerge(Chaos))

const ask = (i: number) =>
  new Llm.ChatRequest({ model: "gpt-4o-mini", messages: [{ role: "user", content: `Question number ${i}` }] })

const describe = (error: LlmError.LlmError): string => {
  const wait = Option.match(LlmError.retryAfter(error), { onNone: () => "", onSome: (d) => `, retry after ${Duration.format(d)}` })
  const status = error._tag === "ServerError" ? ` ${error.status}` : ""
  return `${error._tag}${status} (retryable: ${LlmError.isRetryable(error)}${wait})`
}

const program = Effect.gen(function* () {
  const server = yield* ChaosServer.ChaosServer
  console.log(`ChaosServer on ${server.baseURL}: 20 % 503s, latency 10-30 ms`)
  let ok = 0
  for (let i = 1; i <= 20; i++) {
    const result = yield* Effect.either(LlmClient.complete(ask(i)))
    if (result._tag === "Right") {
      ok++
      const { content, usage } = result.right
      console.log(`#${String(i).padStart(2)} ok     "${content}" (${usage.inputTokens} → ${usage.outputTokens} tokens)`)
    } else {
      console.log(`#${String(i).padStart(2)} failed ${describe(result.left)}`)
    }
  }
  console.log(`\n${ok}/20 succeeded without any retry policy (add Retry.policy to recover the rest).`)
  console.log(`server stats: ${JSON.stringify(yield* server.stats)}`)
  console.log(LlmMetrics.formatTable(yield* LlmMetrics.snapshot))
}).pipe(Effect.provide(Live))

Effect.runPromise(program)
