import { describe, expect, layer } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import * as ChaosServer from "../../src/ChaosServer.js"
import * as Idempotency from "../../src/Idempotency.js"
import { ChatRequest } from "../../src/Llm.js"
import * as LlmClient from "../../src/LlmClient.js"
import * as OpenAi from "../../src/OpenAi.js"
import * as ResponseCache from "../../src/ResponseCache.js"

// 100 logical requests: 70 distinct prompts plus 30 repeats of earlier ones (30 % duplicates), interleaved.
const UNIQUE = 70
const DUPLICATES = 30
const workload: ReadonlyArray<ChatRequest> = (() => {
  const prompts = Array.from({ length: UNIQUE }, (_, i) => `Summarise ticket #${i}`)
  const order: Array<string> = []
  let duplicate = 0
  for (let i = 0; i < UNIQUE; i++) {
    order.push(prompts[i])
    // After every few distinct prompts, repeat an earlier one.
    if (i % 7 >= 4 && duplicate < DUPLICATES) order.push(prompts[(duplicate++ * 13) % (i + 1)])
  }
  while (duplicate < DUPLICATES) order.push(prompts[duplicate++ % UNIQUE])
  return order.map((content) =>
    new ChatRequest({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content }],
      temperature: 0,
      user: "tenant-1"
    })
  )
})()

/** Sends the workload through `policies` over the OpenAI adapter; the upstream request count is `/_chaos/stats`'s. */
const upstreamRequests = (policies: ReadonlyArray<LlmClient.Policy>, concurrency: number) =>
  Effect.gen(function* () {
    const server = yield* ChaosServer.ChaosServer
    yield* server.resetStats
    const base = yield* OpenAi.make({ apiKey: Redacted.make("sk-chaos"), baseURL: server.baseURL })
    const client = LlmClient.decorate(base, ...policies)
    const responses = yield* Effect.forEach(workload, (request) => client.complete(request), { concurrency })
    // The server's own count, read over HTTP like any operator would.
    const statsUrl = `${server.baseURL.replace(/\/v1$/, "")}/_chaos/stats`
    const stats = yield* Effect.promise(() => fetch(statsUrl).then((r) => r.json() as Promise<{ requests: number }>))
    expect(stats.requests).toBe((yield* server.stats).requests)
    return { responses, upstream: stats.requests }
  })

layer(ChaosServer.layer({ seed: 3 }))("e2e: ResponseCache and Idempotency through the OpenAI adapter", (it) => {
  describe("a workload with 30 % duplicate prompts", () => {
    it.effect("without a cache every request goes upstream", () =>
      Effect.gen(function* () {
        expect(workload).toHaveLength(UNIQUE + DUPLICATES)
        const { upstream } = yield* upstreamRequests([], 8)
        expect(upstream).toBe(UNIQUE + DUPLICATES)
      }))

    it.effect("the response cache cuts upstream requests by the duplicate share (sequential and concurrent)", () =>
      Effect.gen(function* () {
        const sequentialCache = yield* ResponseCache.policy({ ttl: "1 hour" }).pipe(
          Effect.provide(ResponseCache.layerStoreMemory)
        )
        const sequential = yield* upstreamRequests([sequentialCache], 1)
        expect(sequential.upstream).toBe(UNIQUE)
        expect(sequential.responses.filter((r) => r.servedFrom === "cache")).toHaveLength(DUPLICATES)
        expect(yield* sequentialCache.stats).toMatchObject({ hits: DUPLICATES, misses: UNIQUE })

        const concurrentCache = yield* ResponseCache.policy({ ttl: "1 hour" }).pipe(
          Effect.provide(ResponseCache.layerStoreMemory)
        )
        const concurrent = yield* upstreamRequests([concurrentCache], 16)
        expect(concurrent.upstream).toBe(UNIQUE)
        // Duplicates get the answer their original got.
        const byPrompt = new Map<string, string>()
        concurrent.responses.forEach((response, i) => {
          const prompt = workload[i].messages[0].content
          const seen = byPrompt.get(prompt)
          if (seen !== undefined) expect(response.content).toBe(seen)
          else byPrompt.set(prompt, response.content)
        })
      }))

    it.effect("idempotency (derived keys) also sends each distinct request upstream once", () =>
      Effect.gen(function* () {
        const idempotency = yield* Idempotency.policy().pipe(Effect.provide(Idempotency.layerStoreMemory))
        const { responses, upstream } = yield* upstreamRequests([idempotency], 16)
        expect(upstream).toBe(UNIQUE)
        expect(responses.filter((r) => r.servedFrom === "idempotency")).toHaveLength(DUPLICATES)
      }))
  })
})
