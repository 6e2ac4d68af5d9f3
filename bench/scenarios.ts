/**
 * The reference workload and the two clients the demo and the chaos benchmark compare: the naive patterns
 * (bench/naive.ts) and the library's policy stack, both through the real `openai` SDK against a ChaosServer.
 */
import { Clock, Effect } from "effect"
import OpenAI from "openai"
import { type ChaosServer, CircuitBreaker, Fallback, Llm, type LlmClient, Retry, Timeout } from "../src/index.js"
import { callLlmWithRetry } from "./naive.js"

/** The end users of the workload. */
export const users = Array.from({ length: 20 }, (_, i) => `user-${i + 1}`)

/**
 * `n` deterministic requests (temperature 0) from 20 users; 30 % repeat the question asked 10 requests earlier by
 * the same user, so a cache can serve them.
 */
export const workload = (n: number, model = "gpt-4o"): ReadonlyArray<Llm.ChatRequest> => {
  const questionOf: Array<number> = []
  const requests: Array<Llm.ChatRequest> = []
  for (let i = 0; i < n; i++) {
    const question = i >= 10 && i % 10 < 3 ? questionOf[i - 10] : i
    questionOf.push(question)
    requests.push(
      new Llm.ChatRequest({
        model,
        messages: [
          { role: "system", content: "You are a concise assistant." },
          { role: "user", content: `Question ${question}: what is a good name for project ${question}?` }
        ],
        maxTokens: 64,
        temperature: 0,
        user: users[question % users.length]
      })
    )
  }
  return requests
}

/** 20 % transient faults: 503 and 429 with Retry-After in ms, 500 without; 5–35 ms latency. */
export const chaosFaults: NonNullable<ChaosServer.Options["faults"]> = {
  errors: [
    { status: 503, rate: 0.1, retryAfter: { ms: 150 } },
    { status: 429, rate: 0.06, retryAfter: { ms: 250 } },
    { status: 500, rate: 0.04 }
  ],
  latency: "5 millis",
  jitter: "30 millis"
}

/**
 * Fallback → Retry (with a shared retry budget) → CircuitBreaker per model → Timeout per attempt, with delays
 * suited to a loopback server.
 */
export const resilience = Effect.gen(function* () {
  const breaker = yield* CircuitBreaker.policy({ per: "model", failureThreshold: 5, halfOpenAfter: "1 second" })
  const retryBudget = yield* Retry.makeBudget({ ratio: 0.5, window: "10 seconds", minPerSecond: 10 })
  const policies: ReadonlyArray<LlmClient.Policy> = [
    Fallback.policy({ models: ["gpt-4o", "gpt-4o-mini"] }),
    Retry.policy({ maxRetries: 3, baseDelay: "50 millis", maxDelay: "1 second", budget: retryBudget }),
    breaker,
    Timeout.policy({ attempt: "2 seconds" })
  ]
  return { breaker, policies }
})

/** What one run of a workload did. */
export interface RunResult {
  readonly ok: number
  readonly refused: number
  /** Requests that reached the server (from its counters). */
  readonly upstream: number
  /** Upstream calls answered 200 (what a provider bills). */
  readonly billed: number
  readonly seconds: number
  readonly latenciesMs: ReadonlyArray<number>
}

const run = (
  server: ChaosServer.Service,
  requests: ReadonlyArray<Llm.ChatRequest>,
  concurrency: number,
  onDone: Effect.Effect<void>,
  call: (request: Llm.ChatRequest) => Effect.Effect<"ok" | "refused" | "failed">
): Effect.Effect<RunResult> =>
  Effect.gen(function* () {
    yield* server.resetStats
    const started = yield* Clock.currentTimeMillis
    const latenciesMs: Array<number> = []
    let ok = 0
    let refused = 0
    yield* Effect.forEach(
      requests,
      (request) =>
        Effect.gen(function* () {
          const t0 = yield* Clock.currentTimeMillis
          const outcome = yield* call(request)
          latenciesMs.push((yield* Clock.currentTimeMillis) - t0)
          if (outcome === "ok") ok++
          if (outcome === "refused") refused++
          yield* onDone
        }),
      { concurrency, discard: true }
    )
    const seconds = ((yield* Clock.currentTimeMillis) - started) / 1000
    const stats = yield* server.stats
    return { ok, refused, upstream: stats.requests, billed: stats.byOutcome["ok"] ?? 0, seconds, latenciesMs }
  })

/**
 * The tutorial's retry loop with a default SDK client (which retries twice on its own, so 3 × 3 calls at most).
 * `baseDelay` is in seconds, as in the tutorial.
 */
export const naiveRun = (
  server: ChaosServer.Service,
  requests: ReadonlyArray<Llm.ChatRequest>,
  options: { readonly concurrency: number; readonly baseDelay?: number; readonly onDone?: Effect.Effect<void> }
): Effect.Effect<RunResult> => {
  const client = new OpenAI({ apiKey: "sk-naive", baseURL: server.baseURL })
  return run(server, requests, options.concurrency, options.onDone ?? Effect.void, (request) =>
    Effect.promise(() =>
      callLlmWithRetry(client, request.model, request.messages[request.messages.length - 1].content, 3, options.baseDelay ?? 0.05)
        .then(() => "ok" as const, () => "failed" as const)
    ))
}

/** The same workload through an `LlmClient` (the library's stack). */
export const libraryRun = (
  server: ChaosServer.Service,
  client: LlmClient.Service,
  requests: ReadonlyArray<Llm.ChatRequest>,
  options: { readonly concurrency: number; readonly onDone?: Effect.Effect<void> }
): Effect.Effect<RunResult> =>
  run(server, requests, options.concurrency, options.onDone ?? Effect.void, (request) =>
    Effect.match(client.complete(request), {
      onSuccess: () => "ok" as const,
      onFailure: (e) => (e._tag === "BudgetExceeded" ? "refused" as const : "failed" as const)
    }))

/** The q-quantile (0..1) of a list of numbers. */
export const percentile = (values: ReadonlyArray<number>, q: number): number => {
  if (values.length === 0) return 0
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]
}
