import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Exit, Fiber, Metric, MetricLabel, Ref, TestClock } from "effect"
import * as Embeddings from "../src/Embeddings.js"
import * as FakeLlm from "../src/FakeLlm.js"
import { ChatRequest } from "../src/Llm.js"
import * as LlmClient from "../src/LlmClient.js"
import { BadRequest, ServerError } from "../src/LlmError.js"
import * as LlmMetrics from "../src/LlmMetrics.js"
import * as RateLimit from "../src/RateLimit.js"
import * as TokenBudget from "../src/TokenBudget.js"
import * as Tokenizer from "../src/Tokenizer.js"

const MODEL = "text-embedding-3-small"

/** The exact count the policies reserve (cl100k_base for the text-embedding-3 models). */
const tokensOf = (text: string) => Effect.flatMap(Tokenizer.current, (t) => t.count(text, MODEL))

/** An upstream that answers after `delay` (TestClock) and reports `extra` tokens beyond the exact count. */
const upstream = (options: { readonly delay?: Duration.DurationInput; readonly extra?: number; readonly fail?: (model: string) => unknown } = {}) => {
  const calls: Array<{ model: string; input: ReadonlyArray<string>; dimensions: number | undefined }> = []
  const service: Embeddings.Service = {
    embed: (request) =>
      Effect.gen(function*() {
        calls.push({ model: request.model, input: request.input, dimensions: request.dimensions })
        if (options.delay !== undefined) yield* Effect.sleep(options.delay)
        const error = options.fail?.(request.model)
        if (error !== undefined) return yield* Effect.fail(error as ServerError)
        const counts = yield* Effect.forEach(request.input, tokensOf)
        return new Embeddings.EmbedResponse({
          model: request.model,
          embeddings: request.input.map((t) => [t.length, 1]),
          usage: { inputTokens: counts.reduce((a, b) => a + b, 0) + (options.extra ?? 0) }
        })
      })
  }
  return { calls, service }
}

const embedOne = (text: string, user = "u1") => new Embeddings.EmbedRequest({ model: MODEL, input: [text], user })

describe("Embeddings.tokenBudget", () => {
  it.effect("reserves the inputs' exact tokens; refuses an embedding once the budget is spent, without calling upstream", () =>
    Effect.gen(function*() {
      const text = "the refund policy for damaged parcels"
      const n = yield* tokensOf(text)
      const budget = yield* TokenBudget.policy({ scope: "user", limit: { tokens: 3 * n + 1 }, period: "day" })
      const { calls, service } = upstream()
      const client = Embeddings.decorate(service, Embeddings.tokenBudget(budget))
      for (let i = 0; i < 3; i++) yield* client.embed(embedOne(text))
      const refused = yield* Effect.flip(client.embed(embedOne(text)))
      expect(refused).toMatchObject({ _tag: "BudgetExceeded", requested: n, remaining: 1, unit: "tokens" })
      expect(calls).toHaveLength(3)
      expect(yield* budget.usage("u1")).toMatchObject({ used: 3 * n, reserved: 0 })
      // another user has a budget of their own
      yield* client.embed(embedOne(text, "u2"))
      expect(calls).toHaveLength(4)
    }).pipe(Effect.provide(TokenBudget.layerStoreMemory)))

  it.effect("chat and embeddings charge one budget (USD, priced at the embedding model's price)", () =>
    Effect.gen(function*() {
      const budget = yield* TokenBudget.policy({ scope: "user", limit: { usd: 0.00001 }, period: "day" })
      const fake = yield* FakeLlm.make(FakeLlm.reply("ok", { usage: { inputTokens: 10, outputTokens: 10 } }))
      const chat = LlmClient.decorate(fake.client, budget)
      const { service } = upstream()
      const embeddings = Embeddings.decorate(service, Embeddings.tokenBudget(budget))
      const text = "a".repeat(400)
      const n = yield* tokensOf(text)
      yield* embeddings.embed(embedOne(text))
      // $0.02 per million tokens
      expect((yield* budget.usage("u1")).used).toBeCloseTo((n * 0.02) / 1e6, 12)
      yield* chat.complete(new ChatRequest({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }], maxTokens: 10, user: "u1" }))
      const after = yield* budget.usage("u1")
      expect(after.used).toBeCloseTo((n * 0.02 + 10 * 0.15 + 10 * 0.6) / 1e6, 12)
    }).pipe(Effect.provide(TokenBudget.layerStoreMemory)))

  it.effect("a concurrent burst never overshoots: exactly floor(limit / cost) of 100 callers get through", () =>
    Effect.gen(function*() {
      const text = "classify this support ticket"
      const n = yield* tokensOf(text)
      const limit = 17 * n + n - 1
      const budget = yield* TokenBudget.policy({ scope: "global", limit: { tokens: limit }, period: "day" })
      const { calls, service } = upstream({ delay: "1 second" })
      const client = Embeddings.decorate(service, Embeddings.tokenBudget(budget))
      const fiber = yield* Effect.fork(
        Effect.all(Array.from({ length: 100 }, () => Effect.exit(client.embed(embedOne(text)))), { concurrency: "unbounded" })
      )
      yield* TestClock.adjust("1 second")
      const exits = yield* Fiber.join(fiber)
      expect(exits.filter(Exit.isSuccess)).toHaveLength(17)
      expect(calls).toHaveLength(17)
      const report = yield* budget.usage()
      expect(report.used).toBe(17 * n)
      expect(report.used).toBeLessThanOrEqual(limit)
    }).pipe(Effect.provide(TokenBudget.layerStoreMemory)))

  const flaky = Effect.gen(function*() {
    const inner = yield* TokenBudget.makeStoreMemory
    const down = yield* Ref.make(false)
    const store = TokenBudget.TokenBudgetStore.of({
      ...inner,
      commit: (input) =>
        Effect.flatMap(Ref.get(down), (isDown) => (isDown ? Effect.dieMessage("store unreachable") : inner.commit(input)))
    })
    return { store, down }
  })

  it.effect("a lost commit follows chat's rules: retried in the background, it lands the reported usage", () =>
    Effect.gen(function*() {
      const { down, store } = yield* flaky
      const budget = yield* TokenBudget.policy({ scope: "global", limit: { tokens: 10_000 }, period: "day" }).pipe(
        Effect.provideService(TokenBudget.TokenBudgetStore, store)
      )
      // the provider reports 5 tokens more than the exact count: the ledger must end at what it reported
      const { service } = upstream({ extra: 5 })
      const client = Embeddings.decorate(service, Embeddings.tokenBudget(budget))
      const n = yield* tokensOf("lost commit")
      yield* Ref.set(down, true)
      yield* Effect.forEach([1, 2, 3], () => client.embed(embedOne("lost commit")))
      expect(yield* budget.usage()).toMatchObject({ used: 0, reserved: 3 * n })
      yield* TestClock.adjust("300 millis")
      yield* Ref.set(down, false)
      yield* TestClock.adjust("5 seconds")
      expect(yield* budget.usage()).toMatchObject({ used: 3 * (n + 5), reserved: 0 })
    }))

  it.effect("a commit lost for good: the lease end charges the reservation (the exact estimate), never zero", () =>
    Effect.gen(function*() {
      const { down, store } = yield* flaky
      const budget = yield* TokenBudget.policy({
        scope: "global",
        limit: { tokens: 10_000 },
        period: "day",
        reservationTtl: "1 minute"
      }).pipe(Effect.provideService(TokenBudget.TokenBudgetStore, store))
      const { service } = upstream({ extra: 5 })
      const client = Embeddings.decorate(service, Embeddings.tokenBudget(budget))
      const n = yield* tokensOf("lost commit")
      yield* Ref.set(down, true)
      yield* Effect.forEach([1, 2, 3], () => client.embed(embedOne("lost commit")))
      yield* TestClock.adjust("10 seconds") // the background retries run out
      yield* Ref.set(down, false)
      yield* TestClock.adjust("2 minutes")
      expect(yield* budget.usage()).toMatchObject({ used: 3 * n, reserved: 0 })
    }))

  it.effect("a failed embedding is refunded", () =>
    Effect.gen(function*() {
      const budget = yield* TokenBudget.policy({ scope: "global", limit: { tokens: 1_000 }, period: "day" })
      const { service } = upstream({ fail: (model) => new ServerError({ model, status: 503 }) })
      const client = Embeddings.decorate(service, Embeddings.tokenBudget(budget))
      expect((yield* Effect.flip(client.embed(embedOne("x"))))._tag).toBe("ServerError")
      expect(yield* budget.usage()).toMatchObject({ used: 0, reserved: 0 })
    }).pipe(Effect.provide(TokenBudget.layerStoreMemory)))

  it.effect("built from options, a budget of the same name shares the chat budget's state", () =>
    Effect.gen(function*() {
      const options = { scope: "global", limit: { tokens: 1_000 }, period: "day", name: "shared" } as const
      const chatBudget = yield* TokenBudget.policy(options)
      const { service } = upstream()
      const client = Embeddings.decorate(service, yield* Embeddings.tokenBudget(options))
      const n = yield* tokensOf("shared budget")
      yield* client.embed(embedOne("shared budget"))
      expect((yield* chatBudget.usage()).used).toBe(n)
    }).pipe(Effect.provide(TokenBudget.layerStoreMemory)))
})

describe("Embeddings.rateLimit", () => {
  it.effect("takes from chat's buckets: one rpm limit (global) is shared by a completion and embeddings", () =>
    Effect.gen(function*() {
      const chatLimit = yield* RateLimit.policy({ rpm: 2, per: "global", onLimit: "fail" })
      const fake = yield* FakeLlm.make(FakeLlm.reply("ok"))
      const chat = LlmClient.decorate(fake.client, chatLimit)
      const { calls, service } = upstream()
      const client = Embeddings.decorate(service, yield* Embeddings.rateLimit({ rpm: 2, per: "global", onLimit: "fail" }))
      yield* chat.complete(new ChatRequest({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] }))
      yield* client.embed(embedOne("one"))
      const refused = yield* Effect.flip(client.embed(embedOne("two")))
      expect(refused).toMatchObject({ _tag: "RateLimited", source: "client" })
      expect(calls).toHaveLength(1)
      yield* TestClock.adjust("30 seconds") // a token-bucket refills one request in 30 s at 2 rpm
      yield* client.embed(embedOne("two"))
      expect(calls).toHaveLength(2)
    }).pipe(Effect.provide(RateLimit.layerStoreMemory)))

  it.effect("tpm charges the exact input tokens; in wait mode a call sleeps until it fits (TestClock)", () =>
    Effect.gen(function*() {
      const text = "a text of some tokens to embed"
      const n = yield* tokensOf(text)
      const { calls, service } = upstream()
      const client = Embeddings.decorate(service, yield* Embeddings.rateLimit({ tpm: 2 * n, per: "model" }))
      yield* client.embed(new Embeddings.EmbedRequest({ model: MODEL, input: [text, text] }))
      const fiber = yield* Effect.fork(client.embed(embedOne(text)))
      yield* TestClock.adjust("29 seconds")
      expect(calls).toHaveLength(1)
      yield* TestClock.adjust("2 seconds") // half the bucket refills in 30 s (rounded up to the store's milliseconds)
      yield* Fiber.join(fiber)
      expect(calls).toHaveLength(2)
    }).pipe(Effect.provide(RateLimit.layerStoreMemory)))
})

describe("Embeddings.fallback", () => {
  it.effect("moves on for a retryable error; the response names the model that answered", () =>
    Effect.gen(function*() {
      const { calls, service } = upstream({ fail: (model) => (model === MODEL ? new ServerError({ model, status: 503 }) : undefined) })
      const client = Embeddings.decorate(service, yield* Embeddings.fallback({ models: [MODEL, "azure/text-embedding-3-small"] }))
      const response = yield* client.embed(embedOne("x"))
      expect(response.model).toBe("azure/text-embedding-3-small")
      expect(calls.map((c) => c.model)).toEqual([MODEL, "azure/text-embedding-3-small"])
    }))

  it.effect("does not move on for BadRequest; every model failing is AllModelsFailed with each one's error", () =>
    Effect.gen(function*() {
      const bad = upstream({ fail: (model) => new BadRequest({ model, reason: "bad input" }) })
      const withBad = Embeddings.decorate(bad.service, yield* Embeddings.fallback({ models: [MODEL, "text-embedding-ada-002"] }))
      expect((yield* Effect.flip(withBad.embed(embedOne("x"))))._tag).toBe("BadRequest")
      expect(bad.calls).toHaveLength(1)
      const down = upstream({ fail: (model) => new ServerError({ model, status: 500 }) })
      const withDown = Embeddings.decorate(down.service, yield* Embeddings.fallback({ models: [MODEL, "text-embedding-ada-002"] }))
      const error = yield* Effect.flip(withDown.embed(embedOne("x")))
      expect(error._tag).toBe("AllModelsFailed")
      expect(error._tag === "AllModelsFailed" && error.failures.map((f) => [f._tag, f.model])).toEqual([
        ["ServerError", MODEL],
        ["ServerError", "text-embedding-ada-002"]
      ])
    }))

  it.effect("is refused at construction when the models' vector lengths differ or are unknown", () =>
    Effect.gen(function*() {
      const mismatch = yield* Effect.flip(Embeddings.fallback({ models: [MODEL, "text-embedding-3-large"] }))
      expect(mismatch).toMatchObject({
        _tag: "InvalidOptions",
        issues: [{ path: "models.1.dimensions", message: expect.stringContaining("Expected 1536 dimensions") }]
      })
      const unknown = yield* Effect.flip(Embeddings.fallback({ models: [MODEL, "my-embedder"] }))
      expect(unknown.issues.map((i) => i.path)).toEqual(["models.1"])
      // asking the large model for 1536 dimensions makes the chain consistent; the dimensions are sent
      const { calls, service } = upstream({ fail: (model) => (model === MODEL ? new ServerError({ model, status: 503 }) : undefined) })
      const policy = yield* Embeddings.fallback({ models: [MODEL, { model: "text-embedding-3-large", dimensions: 1536 }] })
      yield* Embeddings.decorate(service, policy).embed(embedOne("x"))
      expect(calls.map((c) => [c.model, c.dimensions])).toEqual([[MODEL, undefined], ["text-embedding-3-large", 1536]])
    }))
})

describe("Embeddings.make: the innermost step", () => {
  const counter = (metric: typeof LlmMetrics.requests, labels: Record<string, string>) =>
    metric.pipe(Metric.taggedWithLabels(Object.entries(labels).map(([k, v]) => MetricLabel.make(k, v))))

  it.effect("records requests, input tokens and cost per provider call, and counts the tokens a provider left out", () =>
    Effect.gen(function*() {
      const model = "text-embedding-3-large"
      const service = Embeddings.make({
        embed: (request) =>
          Effect.succeed(new Embeddings.EmbedResponse({ model: request.model, embeddings: request.input.map(() => [1]), usage: { inputTokens: 0 } }))
      }, { provider: "test-embedder" })
      const text = "metrics for every provider"
      const n = yield* Effect.flatMap(Tokenizer.current, (t) => t.count(text, model))
      const before = (yield* Metric.value(counter(LlmMetrics.requests, { model }))).count
      const usdBefore = (yield* Metric.value(counter(LlmMetrics.costUsd, { model }))).count
      const response = yield* service.embed(new Embeddings.EmbedRequest({ model, input: [text] }))
      expect(response.usage).toEqual({ inputTokens: n, estimated: true })
      expect((yield* Metric.value(counter(LlmMetrics.requests, { model }))).count - before).toBe(1)
      const usd = (yield* Metric.value(counter(LlmMetrics.costUsd, { model }))).count - usdBefore
      expect(usd).toBeCloseTo((n * 0.13) / 1e6, 12)
      // applied once: make over a made service is the same service
      expect(Embeddings.make(service)).toBe(service)
    }))
})
