/**
 * The demo (`npm start`): a local ChaosServer (seeded, 20 % transient faults with Retry-After, some latency) and a
 * few hundred requests through the real `openai` SDK, first with the naive patterns, then through the library's
 * policy stack. Then a full outage, an outage of one model (the breaker opens, fallback answers, the breaker closes
 * after it), a budget refusing work, a long conversation trimmed, model tiering, and 1,000 classifications sent one by
 * one, in-prompt batched and through the Batch API: one table per scenario, the naive
 * way beside the library, then a summary of the library's side of each scenario (the forced outage left out). Off a
 * terminal (a pipe, a CI log) each progress bar is one line.
 *
 * `npm start -- --real` with OPENAI_API_KEY set sends a handful of requests to the real API instead.
 * `npm start -- --requests 500 --concurrency 32 --seed 7` changes the workload.
 */
import { Chunk, Duration, Effect, Layer, Option, Queue, Redacted, Schema } from "effect"
import {
  chaosFaults,
  libraryRun,
  naiveRun,
  percentile,
  resilience,
  type RunResult,
  users,
  workload
} from "../bench/scenarios.js"
import {
  Batching,
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
import * as BatchJob from "../src/BatchJob.js"
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

/**
 * Runs `f` with a progress bar on a terminal, redrawn in place; elsewhere (a pipe, a CI log) it prints one line
 * once the run is over.
 */
const withProgress = <A>(label: string, total: number, f: (onDone: Effect.Effect<void>) => Effect.Effect<A>) =>
  Effect.suspend(() => {
    let done = 0
    const width = 30
    const count = () => `${String(done).padStart(String(total).length)}/${total}`
    const render = () => {
      const filled = Math.round((done / total) * width)
      process.stdout.write(`\r  ${label} [${"#".repeat(filled)}${".".repeat(width - filled)}] ${count()}`)
    }
    if (isTty) render()
    const tick = Effect.sync(() => {
      done++
      if (isTty) render()
    })
    return Effect.map(Effect.timed(f(tick)), ([elapsed, a]) => {
      const seconds = `${(Duration.toMillis(elapsed) / 1000).toFixed(1)} s`
      if (isTty) process.stdout.write(` ${seconds}\n`)
      else console.log(`  ${label} ${total} requests in ${seconds}`)
      return a
    })
  })

/** A boxed table: the first column left-aligned, the others right-aligned. */
const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const all = [header, ...rows]
  const widths = header.map((_, i) => Math.max(...all.map((row) => (row[i] ?? "").length)))
  const line = `+${widths.map((w) => "-".repeat(w + 2)).join("+")}+`
  const format = (row: ReadonlyArray<string>) =>
    `| ${row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join(" | ")} |`
  return [line, format(header), line, ...rows.map(format), line].map((l) => `  ${l}`).join("\n")
}
const heading = (text: string) => Effect.sync(() => console.log(`\n${text}\n${"-".repeat(text.length)}`))
const say = (text: string) => Effect.sync(() => console.log(text))
const sayTable = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>) => say(table(header, rows))

const usd = (n: number) => `$${n.toFixed(n !== 0 && Math.abs(n) < 0.01 ? 6 : 4)}`
const ms = (n: number) => `${Math.round(n)} ms`
const perCall = (upstream: number, n: number) => (upstream / n).toFixed(2)
const latency = (r: RunResult) => `${ms(percentile(r.latenciesMs, 0.5))} / ${ms(percentile(r.latenciesMs, 0.99))}`

/** What the library's metrics counted during one run (the difference of two snapshots). */
interface Spent {
  readonly providerCalls: number
  readonly inputTokens: number
  readonly outputTokens: number
  readonly costUsd: number
  readonly cacheHits: number
  readonly retries: number
  readonly fallbacks: number
  readonly breakerOpens: number
  readonly refusals: number
}

const spentBetween = (a: LlmMetrics.Snapshot, b: LlmMetrics.Snapshot): Spent => ({
  providerCalls: b.requests - a.requests,
  inputTokens: b.inputTokens - a.inputTokens,
  outputTokens: b.outputTokens - a.outputTokens,
  costUsd: b.costUsd - a.costUsd,
  cacheHits: b.cacheHits - a.cacheHits,
  retries: b.retries - a.retries,
  fallbacks: b.fallbacks - a.fallbacks,
  breakerOpens: b.breakerOpens - a.breakerOpens,
  refusals: b.budget.rejections - a.budget.rejections
})

/** Runs `effect` and returns what the metrics counted meanwhile (runs are sequential, so it is that run's). */
const measured = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<readonly [A, Spent], E, R> =>
  Effect.gen(function* () {
    const before = yield* LlmMetrics.snapshot
    const a = yield* effect
    return [a, spentBetween(before, yield* LlmMetrics.snapshot)] as const
  })

/** One scenario of the library's, for the closing summary. */
interface Summary {
  readonly scenario: string
  readonly requests: number
  readonly answered: number
  readonly spent: Spent
}

const userBudget = TokenBudget.policy({ scope: "user", limit: { tokens: 2_500 }, period: "day", name: "user-day" })

// ---------------------------------------------------------------------------------------------------------------
// The scenarios: each prints one table, naive beside the library, and returns the library's side for the summary.

const transientFaults = (server: ChaosServer.Service, full: LlmClient.Service, cache: ResponseCache.Service) =>
  Effect.gen(function* () {
    const requests = workload(REQUESTS)
    yield* heading(`1. 20 % transient faults: ${REQUESTS} requests, the tutorial's patterns vs the library`)
    const naive = yield* withProgress("naive  ", requests.length, (onDone) =>
      naiveRun(server, requests, { concurrency: CONCURRENCY, onDone }))
    const [library, spent] = yield* measured(withProgress("library", requests.length, (onDone) =>
      libraryRun(server, full, requests, { concurrency: CONCURRENCY, onDone })))
    const cacheStats = yield* cache.stats
    yield* sayTable(["", "naive (retry loop + SDK retries)", "library stack"], [
      ["answered", `${naive.ok}/${REQUESTS}`, `${library.ok}/${REQUESTS}`],
      ["calls sent upstream", String(naive.upstream), String(library.upstream)],
      ["upstream calls per request", perCall(naive.upstream, REQUESTS), perCall(library.upstream, REQUESTS)],
      ["latency p50 / p99", latency(naive), latency(library)],
      ["wall time", `${naive.seconds.toFixed(1)} s`, `${library.seconds.toFixed(1)} s`],
      ["repeated questions served by the cache", "0", String(cacheStats.hits)],
      ["calls billed (answered 200)", String(naive.billed), String(library.billed)]
    ])
    return { scenario: "1. transient faults", requests: REQUESTS, answered: library.ok, spent } satisfies Summary
  })

const OUTAGE = 40

const fullOutage = (server: ChaosServer.Service, provider: LlmClient.Service) =>
  Effect.gen(function* () {
    yield* heading(`2. A full outage (every request gets a 503): ${OUTAGE} requests, calls sent upstream`)
    yield* server.setConfig({ faults: { ...chaosFaults, outage: { status: 503 } } })
    const outageRequests = workload(OUTAGE).map((r, i) => new Llm.ChatRequest({ ...r, user: `outage-${i}`, temperature: 0.7 }))
    const naive = yield* withProgress("naive  ", OUTAGE, (onDone) => naiveRun(server, outageRequests, { concurrency: OUTAGE, onDone }))
    const stack = yield* resilience
    const client = LlmClient.decorate(provider, ...stack.policies)
    const library = yield* withProgress("library", OUTAGE, (onDone) =>
      libraryRun(server, client, outageRequests, { concurrency: OUTAGE, onDone }))
    yield* sayTable(["", "naive", "library stack"], [
      ["answered", `${naive.ok}/${OUTAGE}`, `${library.ok}/${OUTAGE}`],
      ["calls sent upstream", String(naive.upstream), String(library.upstream)],
      ["upstream calls per request", perCall(naive.upstream, OUTAGE), `${perCall(library.upstream, OUTAGE)} (fallback included)`],
      ["time to give up", `${naive.seconds.toFixed(1)} s`, `${library.seconds.toFixed(1)} s`]
    ])
    yield* say("  The retry budget and the open breakers stop the storm. (A forced outage: left out of the summary.)")
    yield* server.setConfig({ faults: chaosFaults })
    // Breaker state lives in the store, shared by every policy instance: after the incident, ops closes them by hand.
    yield* Effect.forEach(["gpt-4o", "gpt-4o-mini"], (key) => stack.breaker.reset(key))
    yield* say("  Outage over: both breakers closed by hand (breaker.reset).")
  })

const primaryOutage = (server: ChaosServer.Service, provider: LlmClient.Service) =>
  Effect.gen(function* () {
    yield* heading(`3. An outage of gpt-4o only: ${OUTAGE} requests for gpt-4o; the breaker opens, gpt-4o-mini answers`)
    const { breaker, policies } = yield* resilience
    const resilient = LlmClient.decorate(provider, ...policies)
    const transitions = yield* breaker.subscribe
    yield* server.setConfig({ faults: chaosFaults, perModel: { "gpt-4o": { outage: { status: 503 } } } })
    const requests = Array.from({ length: OUTAGE }, (_, i) =>
      new Llm.ChatRequest({ model: "gpt-4o", messages: [{ role: "user", content: `Outage question ${i}` }] }))
    const naive = yield* withProgress("naive  ", OUTAGE, (onDone) => naiveRun(server, requests, { concurrency: OUTAGE, onDone }))
    const naiveGpt4o = (yield* server.stats).byModel["gpt-4o"] ?? 0
    const [library, spent] = yield* measured(withProgress("library", OUTAGE, (onDone) =>
      libraryRun(server, resilient, requests, { concurrency: OUTAGE, onDone })))
    const libraryGpt4o = (yield* server.stats).byModel["gpt-4o"] ?? 0
    yield* sayTable(["", "naive (gpt-4o only)", "library (fallback + breaker)"], [
      ["answered", `${naive.ok}/${OUTAGE}`, `${library.ok}/${OUTAGE} (by gpt-4o-mini: ${spent.fallbacks} fallbacks)`],
      ["calls to the failing gpt-4o", String(naiveGpt4o), String(libraryGpt4o)],
      ["calls sent upstream", String(naive.upstream), String(library.upstream)],
      ["latency p50 / p99", latency(naive), latency(library)]
    ])
    // the outage ends and, for this scene, the server is healthy: the first call after the break is the probe
    yield* server.setConfig({ faults: { latency: "5 millis" } })
    yield* Effect.sleep("1100 millis")
    const back = yield* Effect.either(
      resilient.complete(new Llm.ChatRequest({ model: "gpt-4o", messages: [{ role: "user", content: "Are you back?" }] }))
    )
    yield* server.setConfig({ faults: chaosFaults })
    yield* say(`  Outage over; 1 s later the next request is answered by ${back._tag === "Right" ? back.right.model : back.left._tag}.`)
    for (const t of Chunk.toReadonlyArray(yield* Queue.takeAll(transitions))) {
      yield* say(`  breaker ${t.key}: ${t.from} → ${t.to} (${t.reason})`)
    }
    return { scenario: "3. outage of gpt-4o", requests: OUTAGE, answered: library.ok, spent } satisfies Summary
  })

const budgetScene = (provider: LlmClient.Service) =>
  Effect.gen(function* () {
    yield* heading("4. A per-user budget (2,500 tokens a day) refuses work before it is sent")
    const draft = (i: number, user: string) =>
      new Llm.ChatRequest({
        model: "gpt-4o-mini",
        messages: [{ role: "user", content: `Draft chapter ${i} of the report.` }],
        maxTokens: 1_000,
        user
      })
    const burst = (client: LlmClient.Service, user: string) =>
      Effect.all(Array.from({ length: 5 }, (_, i) => Effect.either(client.complete(draft(i + 1, user)))), {
        concurrency: "unbounded"
      })
    const retrying = Retry.policy({ maxRetries: 3, baseDelay: "50 millis" })
    const [naive, naiveSpent] = yield* measured(burst(LlmClient.decorate(provider, retrying), "heavy-user-naive"))
    const budget = yield* userBudget
    const [library, spent] = yield* measured(burst(LlmClient.decorate(provider, budget, retrying), "heavy-user"))
    const admitted = (results: ReadonlyArray<{ readonly _tag: string }>) => results.filter((r) => r._tag === "Right").length
    const usage = yield* budget.usage("heavy-user")
    yield* sayTable(["5 concurrent drafts of up to 1,000 tokens", "naive (no budget)", "library (TokenBudget)"], [
      ["admitted / refused", `${admitted(naive)} / ${5 - admitted(naive)}`, `${admitted(library)} / ${5 - admitted(library)}`],
      ["tokens spent", String(naiveSpent.inputTokens + naiveSpent.outputTokens), `${usage.used} (of ${usage.limit} a day)`],
      ["cost", usd(naiveSpent.costUsd), usd(spent.costUsd)]
    ])
    const refusal = library.find((r) => r._tag === "Left")
    if (refusal !== undefined && refusal._tag === "Left") yield* say(`  refusal: ${refusal.left.message}`)
    return { scenario: "4. per-user budget", requests: 5, answered: admitted(library), spent } satisfies Summary
  })

const trimScene = (provider: LlmClient.Service) =>
  Effect.gen(function* () {
    yield* heading("5. A long conversation trimmed to fit 2,000 tokens")
    const conversation: Array<Llm.ChatMessage> = [{ role: "system", content: "You are a support agent for ACME." }]
    for (let i = 0; i < 400; i++) {
      conversation.push({ role: "user", content: `Message ${i}: my order ${1000 + i} has not arrived, what can I do?` })
      conversation.push({ role: "assistant", content: `Reply ${i}: I am sorry, let me check order ${1000 + i} for you.` })
    }
    conversation.push({ role: "user", content: "Summarise our conversation." })
    const request = new Llm.ChatRequest({ model: "gpt-4o-mini", messages: conversation, maxTokens: 100 })
    const retrying = Retry.policy({ maxRetries: 3, baseDelay: "50 millis" })
    const [, naiveSpent] = yield* measured(Effect.either(LlmClient.decorate(provider, retrying).complete(request)))
    const trimming = LlmClient.decorate(provider, yield* PromptTrim.policy({ maxInputTokens: 2_000 }), retrying)
    const [answer, spent] = yield* measured(Effect.either(trimming.complete(request)))
    const trimmed = yield* PromptTrim.trim(conversation, { maxInputTokens: 2_000, model: "gpt-4o-mini" })
    yield* sayTable([`one request of ${conversation.length} messages`, "naive (sent whole)", "library (PromptTrim)"], [
      ["messages sent", String(conversation.length), String(trimmed.messages.length)],
      ["prompt tokens billed", String(naiveSpent.inputTokens), String(spent.inputTokens)],
      ["cost", usd(naiveSpent.costUsd), usd(spent.costUsd)]
    ])
    yield* say(`  Kept: the system prompt, the latest turns and the question; dropped ${trimmed.droppedMessages} messages ` +
      `(${trimmed.droppedTokens} tokens) with a note: "${trimmed.messages[1].content}"`)
    return { scenario: "5. prompt trimming", requests: 1, answered: answer._tag === "Right" ? 1 : 0, spent } satisfies Summary
  })

const tierScene = (provider: LlmClient.Service) =>
  Effect.gen(function* () {
    yield* heading("6. Model tiering: each request goes to the cheapest model that can answer it")
    const mix = [
      ...Array.from({ length: 95 }, (_, i) =>
        `Support ticket ${i}: ${"My order has not arrived and the tracking page shows no update. ".repeat(20)}Reply kindly.`),
      ...Array.from({ length: 5 }, (_, i) => `Summarise document ${i}:\n${"A long clause of the contract. ".repeat(1_200)}`)
    ]
    const run = (client: LlmClient.Service, model: string) =>
      measured(Effect.map(
        Effect.forEach(mix, (content) =>
          Effect.either(client.complete(new Llm.ChatRequest({ model, messages: [{ role: "user", content }], maxTokens: 200 }))),
          { concurrency: 8 }),
        (results) => results.filter((r) => r._tag === "Right").length
      ))
    const retrying = (yield* resilience).policies.slice(1) // Retry, breaker, timeout: no fallback to another model
    const [naiveOk, naive] = yield* run(LlmClient.decorate(provider, ...retrying), "gpt-4o")
    const tiers = ModelTier.policy({ tiers: [{ name: "simple", model: "gpt-4o-mini" }, { name: "complex", model: "gpt-4o" }] })
    const [ok, spent] = yield* run(LlmClient.decorate(provider, tiers, ...retrying), "auto")
    yield* sayTable(["95 support tickets + 5 long documents", "naive (all on gpt-4o)", "library (ModelTier)"], [
      ["answered", `${naiveOk}/${mix.length}`, `${ok}/${mix.length}`],
      ["cost", usd(naive.costUsd), `${usd(spent.costUsd)} (${((1 - spent.costUsd / naive.costUsd) * 100).toFixed(0)} % less)`]
    ])
    yield* say("  Tickets go to gpt-4o-mini, long documents to gpt-4o (by prompt size, never by user); metadata.tier or a")
    yield* say("  classifier can decide instead.")
    return { scenario: "6. model tiering", requests: mix.length, answered: ok, spent } satisfies Summary
  })

const CLASSIFICATIONS = flag("classifications", 1_000)
const Label = Schema.Literal("billing", "bug", "account", "other")
const triage = "Classify the support ticket as billing, bug, account or other. Billing: charges, refunds, invoices. " +
  "Bug: something is broken or shows an error. Account: sign-in, passwords, seats. Other: anything else."

// Three ways to send the same bulk work, against a healthy ChaosServer of the scene's own (no faults, no latency):
// the tokens and the cost are what the metrics and the batch job's result counted, not figures typed in.
const bulkScene = Effect.gen(function* () {
  yield* heading(`7. ${CLASSIFICATIONS.toLocaleString("en-US")} classifications: one by one, in-prompt batching, the Batch API`)
  const server = yield* ChaosServer.make({ seed: SEED, words: 2, batch: { completionTime: "50 millis" } })
  const options = { apiKey: Redacted.make("sk-demo"), baseURL: server.baseURL }
  const client = yield* OpenAi.make(options)
  const model = "gpt-4o-mini"
  const tickets = Array.from({ length: CLASSIFICATIONS }, (_, i) =>
    `Ticket ${i}: ${["I was charged twice", "The export crashes", "I cannot sign in", "Nice product"][i % 4]} (order ${4000 + i})`)
  const request = (ticket: string) =>
    new Llm.ChatRequest({ model, messages: [{ role: "system", content: triage }, { role: "user", content: ticket }], maxTokens: 5 })

  const timed = <A, E>(effect: Effect.Effect<A, E>) =>
    Effect.map(Effect.timed(effect), ([elapsed, a]) => [a, `${(Duration.toMillis(elapsed) / 1000).toFixed(2)} s`] as const)
  const [[answers, single], singleTime] = yield* timed(
    measured(Effect.forEach(tickets, (t) => Effect.either(client.complete(request(t))), { concurrency: 32 }))
  )
  // Batching calls the LlmClient it is built with: this scene's client, not the demo's faulty one. Full batches of
  // 50 go at once; the window only holds a last partial one, so the call count does not depend on scheduling.
  const classify = yield* Batching.make({ model, instruction: triage, item: Schema.String, result: Label, maxBatchSize: 50, window: "200 millis" })
    .pipe(Effect.provideService(LlmClient.LlmClient, client))
  const [[labels, batched], batchedTime] = yield* timed(
    measured(Effect.forEach(tickets, (t) => Effect.either(classify(t)), { concurrency: "unbounded" }))
  )
  const jobs = yield* BatchJob.make(options).pipe(Effect.provide(BatchJob.layerStoreMemory))
  const [job, jobTime] = yield* timed(jobs.run({ key: "demo-classify", requests: tickets.map(request), pollInterval: "20 millis" }))
  const http = yield* server.batchStats
  const jobCalls = http.filesCreated + http.batchesCreated + http.batchesRetrieved + http.fileContentsRead
  const jobCost = Option.getOrElse(job.costUsd, () => Number.NaN)
  const tokens = (s: Spent) => String(s.inputTokens + s.outputTokens)
  yield* sayTable([`${CLASSIFICATIONS} tickets, ${model}`, "naive (one by one)", "library (Batching, in-prompt)", "library (BatchJob, Batch API)"], [
    ["answered", `${answers.filter((a) => a._tag === "Right").length}/${CLASSIFICATIONS}`, `${labels.filter((l) => l._tag === "Right").length}/${CLASSIFICATIONS}`, `${job.succeeded}/${CLASSIFICATIONS}`],
    ["upstream HTTP calls", String(single.providerCalls), String(batched.providerCalls), `${jobCalls} (1 batch of ${CLASSIFICATIONS} lines)`],
    ["tokens", tokens(single), tokens(batched), String(job.usage.inputTokens + job.usage.outputTokens)],
    ["cost", usd(single.costUsd), usd(batched.costUsd), `${usd(jobCost)} (batch prices)`],
    ["wall time", singleTime, batchedTime, jobTime]
  ])
  yield* say("  Batching sends the instruction once per 50 tickets; the Batch API sends every ticket but at half price and")
  yield* say("  within 24 hours (here the ChaosServer finishes it in 50 ms).")
})

const summary = (scenes: ReadonlyArray<Summary>) => {
  const sum = (f: (s: Summary) => number) => scenes.reduce((n, s) => n + f(s), 0)
  const row = (name: string, requests: number, answered: number, spent: Spent) => [
    name,
    String(requests),
    String(answered),
    String(spent.providerCalls),
    String(spent.inputTokens + spent.outputTokens),
    usd(spent.costUsd),
    String(spent.cacheHits),
    String(spent.retries),
    String(spent.fallbacks),
    String(spent.refusals)
  ]
  const total: Spent = {
    providerCalls: sum((s) => s.spent.providerCalls),
    inputTokens: sum((s) => s.spent.inputTokens),
    outputTokens: sum((s) => s.spent.outputTokens),
    costUsd: sum((s) => s.spent.costUsd),
    cacheHits: sum((s) => s.spent.cacheHits),
    retries: sum((s) => s.spent.retries),
    fallbacks: sum((s) => s.spent.fallbacks),
    breakerOpens: sum((s) => s.spent.breakerOpens),
    refusals: sum((s) => s.spent.refusals)
  }
  return Effect.zipRight(
    heading("Summary: the library's side of scenarios 1 and 3-6 (LlmMetrics, per scenario)"),
    sayTable(
      ["scenario", "requests", "answered", "provider calls", "tokens", "cost", "cache hits", "retries", "fallbacks", "refused"],
      [...scenes.map((s) => row(s.scenario, s.requests, s.answered, s.spent)), row("total", sum((s) => s.requests), sum((s) => s.answered), total)]
    )
  )
}

const chaosDemo = Effect.gen(function* () {
  const server = yield* ChaosServer.ChaosServer
  const provider = yield* LlmClient.LlmClient
  const cache = yield* ResponseCache.policy({ ttl: "1 hour", capacity: 10_000 })
  const full = LlmClient.decorate(provider, cache, yield* userBudget, ...(yield* resilience).policies)

  yield* say("effect-llm-resilience demo")
  yield* say(`ChaosServer on ${server.baseURL} (seed ${SEED}): 20 % transient faults (503 and 429 with Retry-After, 500),`)
  yield* say(`5-35 ms latency. ${REQUESTS} requests from ${users.length} users, 30 % of them repeated, concurrency ${CONCURRENCY}.`)
  yield* say("Library stack: ResponseCache → TokenBudget → Fallback → Retry (+ retry budget) → CircuitBreaker → Timeout → OpenAI SDK")

  const scenes: Array<Summary> = []
  scenes.push(yield* transientFaults(server, full, cache))
  yield* fullOutage(server, provider)
  scenes.push(yield* primaryOutage(server, provider))
  scenes.push(yield* budgetScene(provider))
  scenes.push(yield* trimScene(provider))
  scenes.push(yield* tierScene(provider))
  yield* bulkScene
  yield* summary(scenes)
  yield* say("  The naive runs and the forced outage (2) are not counted.")
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


