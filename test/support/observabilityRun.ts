/**
 * A demo-like run through FakeLlm that makes every metric the shipped alerts and dashboard read appear: retries,
 * fallbacks, an open breaker, budget alerts and refusals, cache hits and misses, an unpriced model, streams (time to
 * first token), a spent retry budget. Then the Prometheus endpoint's text, as a scrape returns it.
 */
import { Effect, Layer, Stream } from "effect"
import * as Net from "node:net"
import * as CircuitBreaker from "../../src/CircuitBreaker.js"
import * as FakeLlm from "../../src/FakeLlm.js"
import * as Fallback from "../../src/Fallback.js"
import { ChatRequest } from "../../src/Llm.js"
import * as LlmClient from "../../src/LlmClient.js"
import * as LlmError from "../../src/LlmError.js"
import * as Prometheus from "../../src/Prometheus.js"
import * as ResponseCache from "../../src/ResponseCache.js"
import * as Retry from "../../src/Retry.js"
import * as TokenBudget from "../../src/TokenBudget.js"

export const freePort = Effect.async<number>((resume) => {
  const server = Net.createServer()
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

export const scrape = (port: number) =>
  Effect.promise(() => fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text()))

// gpt-4o is down, gpt-4o-mini answers (streams too), "house-model" is not in the price table.
const script: FakeLlm.Script = ({ request }) => {
  if (request.model === "gpt-4o") return FakeLlm.fail(new LlmError.ServerError({ status: 503, model: "gpt-4o" }))
  return FakeLlm.reply("fine", { usage: { inputTokens: 40, outputTokens: 10 } })
}

const ask = (model: string, user: string, content: string, temperature = 0.7) =>
  new ChatRequest({ model, messages: [{ role: "user", content }], maxTokens: 20, temperature, user })

/** The run: every call's outcome is ignored (some are meant to fail). */
export const demoRun = Effect.gen(function* () {
  const provider = yield* LlmClient.LlmClient
  const cache = yield* ResponseCache.policy({ ttl: "1 hour" })
  const budget = yield* TokenBudget.policy({ scope: "user", limit: { tokens: 300 }, period: "day", name: "user-day" })
  const breaker = yield* CircuitBreaker.policy({ per: "model", failureThreshold: 3 })
  // no floor: a failing model's retries are soon refused
  const retryBudget = yield* Retry.makeBudget({ ratio: 0.1, minPerSecond: 0 })
  const client = LlmClient.decorate(
    provider,
    cache,
    budget,
    Fallback.policy({ models: ["gpt-4o", "gpt-4o-mini"] }),
    Retry.policy({ maxRetries: 1, baseDelay: "1 millis", jitter: "none" }),
    breaker
  )
  const ignore = <A, E>(effect: Effect.Effect<A, E>) => Effect.ignore(effect)
  // gpt-4o fails, is retried, falls back; the breaker opens after 3 failures and rejects the rest
  yield* Effect.forEach(Array.from({ length: 6 }, (_, i) => i), (i) => ignore(client.complete(ask("gpt-4o", `u${i}`, `q${i}`))), {
    discard: true
  })
  // deterministic requests: the second of each pair is a cache hit
  yield* Effect.forEach(["a", "b", "a", "b"], (q) => ignore(client.complete(ask("gpt-4o-mini", "cache-user", q, 0))), {
    discard: true
  })
  // one user spends the budget: alerts at 80 % and 100 %, then refusals
  yield* Effect.forEach(Array.from({ length: 9 }, (_, i) => i), (i) => ignore(client.complete(ask("gpt-4o-mini", "heavy", `d${i}`))), {
    discard: true
  })
  // a retry storm on a budgeted client: the budget refuses the retries
  const budgeted = LlmClient.decorate(provider, Retry.policy({ maxRetries: 2, baseDelay: "1 millis", jitter: "none", budget: retryBudget }))
  yield* Effect.forEach(["r1", "r2", "r3"], (q) => ignore(budgeted.complete(ask("gpt-4o", "storm", q))), { discard: true })
  // an unpriced model
  yield* ignore(client.complete(ask("house-model", "u-house", "hello")))
  // streams: time to first token
  yield* Effect.forEach(["s1", "s2"], (q) => ignore(Stream.runDrain(client.stream(ask("gpt-4o-mini", "streamer", q)))), {
    discard: true
  })
})

const FakeProvider = FakeLlm.layer(script)

/** Runs {@link demoRun} with `Prometheus.layer` alive and returns the scrape text. */
export const demoScrape = Effect.gen(function* () {
  const port = yield* freePort
  return yield* Effect.scoped(Effect.gen(function* () {
    yield* Layer.build(Prometheus.layer({ port }))
    yield* demoRun
    return yield* scrape(port)
  })).pipe(
    Effect.provide(Layer.mergeAll(
      FakeProvider,
      ResponseCache.layerStoreMemory,
      TokenBudget.layerStoreMemory,
      CircuitBreaker.layerStoreMemory
    ))
  )
})

/** The metric family names in a Prometheus text exposition (histogram series folded to their family). */
export const familiesOf = (text: string): ReadonlySet<string> => {
  const families = new Set<string>()
  for (const line of text.split("\n")) {
    const match = /^# TYPE (\S+) (\S+)/.exec(line)
    if (match !== null) families.add(match[1])
  }
  return families
}

/** Every series name (with `_bucket`, `_sum`, `_count`) in a Prometheus text exposition. */
export const seriesOf = (text: string): ReadonlySet<string> => {
  const names = new Set<string>()
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || line.trim() === "") continue
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(line)
    if (match !== null) names.add(match[1])
  }
  return names
}

/** The label names seen on each series name. */
export const labelsOf = (text: string): ReadonlyMap<string, ReadonlySet<string>> => {
  const labels = new Map<string, Set<string>>()
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || line.trim() === "") continue
    // label values may hold braces (`unit="{token}"`): the label set ends at the first brace outside quotes
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[^}"]|"(?:[^"\\]|\\.)*")*)\})?/.exec(line)
    if (match === null) continue
    const set = labels.get(match[1]) ?? new Set<string>()
    for (const pair of (match[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) set.add(pair[1])
    labels.set(match[1], set)
  }
  return labels
}
