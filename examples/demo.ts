/**
 * The demo (`npm start`): a local ChaosServer (seeded, 20 % transient faults with Retry-After, some latency) and a
 * few hundred requests through the real `openai` SDK, first with the naive patterns, then through the library's
 * policy stack. Then a full outage of one model (the breaker opens, fallback answers, the breaker closes after it),
 * a budget refusing work, a long conversation trimmed, model tiering, and the metrics table.
 *
 * `npm start -- --real` with OPENAI_API_KEY set sends a handful of requests to the real API instead.
 * `npm start -- --requests 500 --concurrency 32 --seed 7` changes the workload.
 */
import { Chunk, Effect, Layer, Option, Queue, Redacted } from "effect"
import { chaosFaults, libraryRun, naiveRun, resilience, users, workload } from "../bench/scenarios.js"
import {
  ChaosServer,
  CircuitBreaker,
  Fallback,
  Llm,
  LlmClient,
  LlmMetrics,
  ModelTier,
  PromptTrim,
  ResponseCache,
  Retry,
  Timeout,
  TokenBudget,
  Tokenizer
} from "../src/index.js"
import * as OpenAi from "../src/OpenAi.js"

const args = process.argv.slice(2)
const flag = (name: string, fallback: number): number => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 && args[i + 1] !== undefined ? Number(args[i + 1]) : fallback
}
const REQUESTS = flag("requests", 300)
const CONCURRENCY = flag("concurrency", 16)
const SEED = flag("seed", 7)
const REAL = args.includes("--real")

// ---------------------------------------------------------------------------------------------------------------
// Output helpers

const isTty = process.stdout.isTTY === true
const progress = (label: string, total: number) => {
  let done = 0
  let lastPrinted = -1
  const render = () => {
    const width = 30
    const filled = Math.round((done / total) * width)
    const bar = `[${"#".repeat(filled)}${".".repeat(width - filled)}] ${String(done).padStart(String(total).length)}/${total}`
    if (isTty) process.stdout.write(`\r  ${label} ${bar}`)
    else {
      const decile = Math.floor((done / total) * 10)
      if (decile !== lastPrinted) {
        lastPrinted = decile
        console.log(`  ${label} ${bar}`)
      }
    }
  }
  render()
  return {
    tick: Effect.sync(() => {
      done++
      render()
    }),
    end: Effect.sync(() => {
      if (isTty) process.stdout.write("\n")
    })
  }
}
const withBar = <A>(label: string, total: number, f: (onDone: Effect.Effect<void>) => Effect.Effect<A>) =>
  Effect.suspend(() => {
    const bar = progress(label, total)
    return Effect.zipLeft(f(bar.tick), bar.end)
  })
const heading = (text: string) => Effect.sync(() => console.log(`\n${text}\n${"-".repeat(text.length)}`))
const say = (text: string) => Effect.sync(() => console.log(text))

const userBudget = TokenBudget.policy({ scope: "user", limit: { tokens: 2_500 }, period: "day", name: "user-day" })

const perCall = (upstream: number, n: number) => (upstream / n).toFixed(2)

const chaosDemo = Effect.gen(function* () {
  const server = yield* ChaosServer.ChaosServer
  const provider = yield* LlmClient.LlmClient
  const cache = yield* ResponseCache.policy({ ttl: "1 hour", capacity: 10_000 })
  const full = LlmClient.decorate(provider, cache, yield* userBudget, ...(yield* resilience).policies)

  yield* say("effect-llm-resilience demo")
  yield* say(`ChaosServer on ${server.baseURL} (seed ${SEED}): 20 % transient faults (503 and 429 with Retry-After, 500),`)
  yield* say(`5-35 ms latency. ${REQUESTS} requests from ${users.length} users, 30 % of them repeated, concurrency ${CONCURRENCY}.`)
  yield* say("Library stack: ResponseCache → TokenBudget → Fallback → Retry (+ retry budget) → CircuitBreaker → Timeout → OpenAI SDK")

  const requests = workload(REQUESTS)
  yield* heading("1. 20 % transient faults: the tutorial's patterns vs the library")
  const naive = yield* withBar("naive    ", requests.length, (onDone) => naiveRun(server, requests, { concurrency: CONCURRENCY, onDone }))
  const library = yield* withBar("library  ", requests.length, (onDone) => libraryRun(server, full, requests, { concurrency: CONCURRENCY, onDone }))
  const cacheStats = yield* cache.stats
  yield* say("")
  yield* say(`  naive (retry loop + SDK retries): ${naive.ok}/${REQUESTS} answered, ` +
    `${naive.upstream} upstream calls, ${naive.seconds.toFixed(1)} s`)
  yield* say(`  library stack:                    ${library.ok}/${REQUESTS} answered, ` +
    `${library.upstream} upstream calls, ${library.seconds.toFixed(1)} s; ${cacheStats.hits} duplicates served by the cache`)

  const OUTAGE = 40
  yield* heading(`2. A full outage (every request gets a 503): ${OUTAGE} requests, calls sent upstream`)
  yield* server.setConfig({ faults: { ...chaosFaults, outage: { status: 503 } } })
  const outageRequests = workload(OUTAGE).map((r, i) =>
    new Llm.ChatRequest({ ...r, user: `outage-${i}`, temperature: 0.7 })
  )
  const naiveOutage = yield* withBar("naive    ", OUTAGE, (onDone) => naiveRun(server, outageRequests, { concurrency: OUTAGE, onDone }))
  const outageStack = yield* resilience
  const outageClient = LlmClient.decorate(provider, ...outageStack.policies)
  const libraryOutage = yield* withBar("library  ", OUTAGE, (onDone) => libraryRun(server, outageClient, outageRequests, { concurrency: OUTAGE, onDone }))
  yield* say("")
  yield* say(`  naive:   ${naiveOutage.upstream} upstream calls (${perCall(naiveOutage.upstream, OUTAGE)} per request), ` +
    `${naiveOutage.seconds.toFixed(1)} s to give up`)
  yield* say(`  library: ${libraryOutage.upstream} upstream calls (${perCall(libraryOutage.upstream, OUTAGE)} per request, ` +
    `fallback model included), ${libraryOutage.seconds.toFixed(1)} s: the retry budget and the open breakers stop the storm`)
  yield* server.setConfig({ faults: chaosFaults })
  // Breaker state lives in the store, shared by every policy instance: after the incident, ops closes them by hand.
  yield* Effect.forEach(["gpt-4o", "gpt-4o-mini"], (key) => outageStack.breaker.reset(key))
  yield* say("  outage over: both breakers closed by hand (breaker.reset)")

  yield* heading("3. An outage of gpt-4o only: the breaker opens, gpt-4o-mini answers, the breaker closes after")
  const { breaker, policies } = yield* resilience
  const resilient = LlmClient.decorate(provider, ...policies)
  const transitions = yield* breaker.subscribe
  yield* server.setConfig({ faults: chaosFaults, perModel: { "gpt-4o": { outage: { status: 503 } } } })
  yield* server.resetStats
  const answeredBy: Record<string, number> = {}
  let firstFailure: string | undefined
  yield* Effect.forEach(Array.from({ length: 40 }, (_, i) => i), (i) =>
    Effect.match(
      resilient.complete(new Llm.ChatRequest({ model: "gpt-4o", messages: [{ role: "user", content: `Outage question ${i}` }] })),
      {
        onSuccess: (r) => (answeredBy[r.model] = (answeredBy[r.model] ?? 0) + 1),
        onFailure: (e) => {
          answeredBy[e._tag] = (answeredBy[e._tag] ?? 0) + 1
          firstFailure ??= e.message
        }
      }
    ), { concurrency: 4, discard: true })
  const outageStats = yield* server.stats
  yield* say(`  40 requests for gpt-4o → answered by ${JSON.stringify(answeredBy)}`)
  if (firstFailure !== undefined) yield* say(`  (the 20 % transient faults also hit the fallback: ${firstFailure})`)
  yield* say(`  gpt-4o was called ${outageStats.byModel["gpt-4o"] ?? 0} times; the open breaker sent the rest straight to the fallback`)
  // the outage ends and, for this scene, the server is healthy: the first call after the break is the probe
  yield* server.setConfig({ faults: { latency: "5 millis" } })
  yield* Effect.sleep("1100 millis")
  const back = yield* Effect.either(
    resilient.complete(new Llm.ChatRequest({ model: "gpt-4o", messages: [{ role: "user", content: "Are you back?" }] }))
  )
  yield* server.setConfig({ faults: chaosFaults })
  yield* say(`  outage over; 1 s later the next request is answered by ${back._tag === "Right" ? back.right.model : back.left._tag}`)
  for (const t of Chunk.toReadonlyArray(yield* Queue.takeAll(transitions))) {
    yield* say(`  breaker ${t.key}: ${t.from} → ${t.to} (${t.reason})`)
  }

  yield* heading("4. A per-user budget (2,500 tokens a day) refuses work before it is sent")
  const draft = (i: number) =>
    new Llm.ChatRequest({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: `Draft chapter ${i} of the report.` }],
      maxTokens: 1_000,
      user: "heavy-user"
    })
  const budget = yield* userBudget
  const budgeted = LlmClient.decorate(provider, budget, Retry.policy({ maxRetries: 3, baseDelay: "50 millis" }))
  const burst = yield* Effect.all(Array.from({ length: 5 }, (_, i) => Effect.either(budgeted.complete(draft(i + 1)))), {
    concurrency: "unbounded"
  })
  const admitted = burst.filter((r) => r._tag === "Right").length
  const refusal = burst.find((r) => r._tag === "Left")
  yield* say(`  5 concurrent requests that may each use ~1,000 tokens: ${admitted} admitted, ${5 - admitted} refused`)
  if (refusal !== undefined && refusal._tag === "Left") yield* say(`  refusal: ${refusal.left.message}`)
  const usage = yield* budget.usage("heavy-user")
  yield* say(`  heavy-user: ${usage.used} of ${usage.limit} tokens used today (the refused calls cost nothing)`)

  yield* heading("5. A long conversation trimmed to fit")
  const conversation: Array<Llm.ChatMessage> = [{ role: "system", content: "You are a support agent for ACME." }]
  for (let i = 0; i < 400; i++) {
    conversation.push({ role: "user", content: `Message ${i}: my order ${1000 + i} has not arrived, what can I do?` })
    conversation.push({ role: "assistant", content: `Reply ${i}: I am sorry, let me check order ${1000 + i} for you.` })
  }
  conversation.push({ role: "user", content: "Summarise our conversation." })
  const trimmed = yield* PromptTrim.trim(conversation, { maxInputTokens: 2_000, model: "gpt-4o-mini" })
  const before = yield* Tokenizer.countMessages(conversation, "gpt-4o-mini")
  yield* say(`  ${conversation.length} messages (${before} tokens) → ${trimmed.messages.length} messages ` +
    `(${trimmed.inputTokens} tokens): dropped ${trimmed.droppedMessages} messages, ${trimmed.droppedTokens} tokens`)
  yield* say(`  kept: the system prompt, the latest turns and the question; added: "${trimmed.messages[1].content}"`)
  // As a policy, trimming happens on every request that needs it (and is counted in the metrics):
  const trimming = LlmClient.decorate(provider, yield* PromptTrim.policy({ maxInputTokens: 2_000 }))
  const answer = yield* Effect.either(
    trimming.complete(new Llm.ChatRequest({ model: "gpt-4o-mini", messages: conversation, maxTokens: 100 }))
  )
  yield* say(`  through PromptTrim.policy: ${answer._tag === "Right"
    ? `answered with ${answer.right.usage.inputTokens} prompt tokens sent instead of ${before}`
    : answer.left._tag}`)

  yield* heading("6. Model tiering: each request goes to the cheapest model that can answer it")
  const mix = [
    ...Array.from({ length: 95 }, (_, i) =>
      `Support ticket ${i}: ${"My order has not arrived and the tracking page shows no update. ".repeat(20)}Reply kindly.`),
    ...Array.from({ length: 5 }, (_, i) => `Summarise document ${i}:\n${"A long clause of the contract. ".repeat(1_200)}`)
  ]
  const spend = (client: LlmClient.Service, model: string) =>
    Effect.gen(function* () {
      const before = (yield* LlmMetrics.snapshot).costUsd
      yield* Effect.forEach(mix, (content) =>
        Effect.ignore(client.complete(new Llm.ChatRequest({ model, messages: [{ role: "user", content }], maxTokens: 200 }))),
        { concurrency: 8, discard: true })
      return (yield* LlmMetrics.snapshot).costUsd - before
    })
  const retrying = (yield* resilience).policies.slice(1) // Retry, breaker, timeout: no fallback to another model
  const allBig = yield* spend(LlmClient.decorate(provider, ...retrying), "gpt-4o")
  const tiered = yield* spend(
    LlmClient.decorate(provider, ModelTier.policy({
      tiers: [{ name: "simple", model: "gpt-4o-mini" }, { name: "complex", model: "gpt-4o" }]
    }), ...retrying),
    "auto"
  )
  yield* say(`  95 support tickets and 5 long documents: $${allBig.toFixed(4)} all on gpt-4o, ` +
    `$${tiered.toFixed(4)} tiered (${((1 - tiered / allBig) * 100).toFixed(0)} % less): tickets go to gpt-4o-mini,`)
  yield* say(`  long documents to gpt-4o (by prompt size, never by user); metadata.tier or a classifier can decide instead.`)

  yield* heading("Metrics (LlmMetrics.snapshot)")
  yield* say(LlmMetrics.formatTable(yield* LlmMetrics.snapshot))
})

const ChaosLive = ChaosServer.layer({ seed: SEED, words: 8, faults: chaosFaults })
const OpenAiOverChaos = Layer.unwrapEffect(
  Effect.map(ChaosServer.ChaosServer, (server) => OpenAi.layer({ apiKey: Redacted.make("sk-demo"), baseURL: server.baseURL }))
)
const Stores = Layer.mergeAll(
  ResponseCache.layerStoreMemory,
  TokenBudget.layerStoreMemory,
  CircuitBreaker.layerStoreMemory,
  Tokenizer.layer
)

// ---------------------------------------------------------------------------------------------------------------
// --real: a handful of requests to the real API through the same kind of stack

const realDemo = Effect.gen(function* () {
  yield* say("effect-llm-resilience demo against the real OpenAI API (5 requests, gpt-4o-mini)")
  const breaker = yield* CircuitBreaker.policy({ per: "model" })
  const client = LlmClient.decorate(
    yield* LlmClient.LlmClient,
    Fallback.policy({ models: ["gpt-4o-mini", "gpt-4.1-mini"] }),
    Retry.policy({ maxRetries: 3 }),
    breaker,
    Timeout.policy({ attempt: "30 seconds" })
  )
  for (let i = 1; i <= 5; i++) {
    const result = yield* Effect.either(client.complete(new Llm.ChatRequest({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: `Give me a one-line fun fact number ${i}.` }],
      maxTokens: 60
    })))
    yield* say(result._tag === "Right"
      ? `  #${i} ${result.right.model}: ${result.right.usage.inputTokens} → ${result.right.usage.outputTokens} tokens`
      : `  #${i} failed: ${result.left._tag}`)
  }
  yield* say(LlmMetrics.formatTable(yield* LlmMetrics.snapshot))
})

const main: Effect.Effect<void, unknown> = REAL
  ? Option.match(Option.fromNullable(process.env.OPENAI_API_KEY), {
    onNone: () => say("--real needs OPENAI_API_KEY in the environment."),
    onSome: () => realDemo.pipe(Effect.provide(Layer.mergeAll(OpenAi.layerConfig(), CircuitBreaker.layerStoreMemory)))
  })
  : Effect.scoped(chaosDemo).pipe(
    Effect.provide(Layer.mergeAll(OpenAiOverChaos, Stores).pipe(Layer.provideMerge(ChaosLive)))
  )

Effect.runPromise(main).then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)


