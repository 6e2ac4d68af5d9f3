import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Random, Redacted } from "effect"
import * as ChaosServer from "../../src/ChaosServer.js"
import * as Hedge from "../../src/Hedge.js"
import { ChatRequest } from "../../src/Llm.js"
import * as LlmClient from "../../src/LlmClient.js"
import * as OpenAi from "../../src/OpenAi.js"
import * as Router from "../../src/Router.js"
import * as Timeout from "../../src/Timeout.js"

const request = (i: number) =>
  new ChatRequest({ model: "gpt-4o-mini", messages: [{ role: "user", content: `Summarise ticket #${i}` }] })

/** One ChaosServer "deployment" of gpt-4o-mini on loopback and an OpenAI client for it. */
const deployment = (faults: ChaosServer.Faults, seed: number, quotas?: ChaosServer.Options["quotas"]) =>
  Effect.gen(function* () {
    const server = yield* ChaosServer.make({ seed, faults, words: 4, quotas })
    const client = yield* OpenAi.make({ apiKey: Redacted.make("sk-chaos"), baseURL: server.baseURL })
    return { server, client }
  })

const requestsOf = (server: ChaosServer.Service) => Effect.map(server.stats, (s) => s.requests)

// Real HTTP on loopback with millisecond delays: this file runs on the live clock.
describe("e2e: Router and Hedge over ChaosServer deployments", () => {
  it.live("three deployments (fast, slow, failing): least-busy and latency send ≥ 80 % to the fast one; the failing one is cooled down, then tried again", () =>
    Effect.scoped(Effect.gen(function* () {
      // The slow deployment answers in 1.5 s: least-busy sends it a call whenever it has none in flight, so its share
      // is the calls it takes at the start plus one per 1.5 s of the run. On a loaded machine a "fast" call over real
      // HTTP can take 100 ms or more and the run lasts seconds; 1.5 s keeps the slow share well under 20 % even then.
      const fast = yield* deployment({ latency: "1 millis" }, 1)
      const slow = yield* deployment({ latency: "1500 millis" }, 2)
      const failing = yield* deployment({ outage: { status: 503 } }, 3)
      const routerOf = (strategy: Router.Strategy, name: string, cooldown: Duration.DurationInput) =>
        Router.policy({
          name,
          strategy,
          cooldown,
          allowedFails: 1,
          deployments: [
            { id: "fast", model: "gpt-4o-mini", client: fast.client },
            { id: "slow", model: "gpt-4o-mini", client: slow.client },
            { id: "failing", model: "gpt-4o-mini", client: failing.client }
          ]
        })
      for (const strategy of ["least-busy", "latency"] as const) {
        const router = yield* routerOf(strategy, `e2e-${strategy}`, "1 minute")
        const client = LlmClient.decorate(fast.client, router)
        const responses = yield* Effect.forEach(Array.from({ length: 80 }, (_, i) => i), (i) => client.complete(request(i)), {
          concurrency: 6
        })
        const toFast = responses.filter((r) => r.deployment === "fast").length
        expect(toFast / responses.length, strategy).toBeGreaterThanOrEqual(0.8)
        expect(responses.every((r) => r.deployment !== "failing")).toBe(true) // each of its failures failed over
      }
      // The failing deployment was tried by each router (by the calls in flight when it first failed), then cooled down.
      const failedSoFar = yield* requestsOf(failing.server)
      expect(failedSoFar).toBeLessThanOrEqual(2 * 6)
      // Cooldown: fast and failing, one sequential call at a time (seeded), so the counts are exact. The 15 calls
      // before the sleep must end within the cooldown even on a loaded machine: 2 s leaves room for that.
      const router = yield* Router.policy({
        name: "e2e-cooldown",
        cooldown: "2 seconds",
        allowedFails: 1,
        deployments: [
          { id: "fast", model: "gpt-4o-mini", client: fast.client },
          { id: "failing", model: "gpt-4o-mini", client: failing.client }
        ]
      })
      const client = LlmClient.decorate(fast.client, router)
      const burst = (n: number) => Effect.forEach(Array.from({ length: n }, (_, i) => i), (i) => client.complete(request(i)))
      yield* burst(10)
      expect((yield* requestsOf(failing.server)) - failedSoFar).toBe(1) // tried once, failed over, cooled down
      yield* burst(5)
      expect((yield* requestsOf(failing.server)) - failedSoFar).toBe(1) // still cooling down
      yield* Effect.sleep("2 seconds")
      yield* burst(10)
      expect((yield* requestsOf(failing.server)) - failedSoFar).toBe(2) // tried again after its cooldown
    }).pipe(Effect.withRandom(Random.make(5)), Effect.provide(Router.layerStoreMemory))), 90_000)

  it.live("proactive throttling: the small-quota deployment sees no 429 with it on, and does without it", () =>
    Effect.scoped(Effect.gen(function* () {
      // Three deployments of one model: a fast one with a small quota (5 requests a minute), a slow one, a failing one.
      const run = (providerQuota: boolean, seed: number) =>
        Effect.gen(function* () {
          const small = yield* deployment({ latency: "1 millis" }, seed, { "gpt-4o-mini": { rpm: 5 } })
          const slow = yield* deployment({ latency: "20 millis" }, seed + 1)
          const failing = yield* deployment({ outage: { status: 503 } }, seed + 2)
          const router = yield* Router.policy({
            name: `e2e-quota-${providerQuota}`,
            strategy: "weighted",
            providerQuota,
            deployments: [
              { id: "small", model: "gpt-4o-mini", client: small.client, weight: 8 },
              { id: "slow", model: "gpt-4o-mini", client: slow.client, weight: 1 },
              { id: "failing", model: "gpt-4o-mini", client: failing.client, weight: 1 }
            ]
          })
          const client = LlmClient.decorate(slow.client, router)
          // Three at a time: fewer than the quota, so even the calls sent before any header was seen fit in it.
          const responses = yield* Effect.forEach(Array.from({ length: 40 }, (_, i) => i), (i) => client.complete(request(i)), {
            concurrency: 3
          })
          const stats = yield* small.server.stats
          return { answered: responses.length, toSmall: stats.requests, rejected: stats.byOutcome["error:429"] ?? 0 }
        }).pipe(Effect.provide(Router.layerStoreMemory))
      const on = yield* run(true, 10)
      expect(on.answered).toBe(40)
      expect(on.rejected).toBe(0)
      expect(on.toSmall).toBe(5) // used its whole quota, then skipped until its reset
      // Without it the router learns of the full quota only from a 429 (then cools the deployment down for its
      // Retry-After). The weights send ~80 % of 40 calls to it: it gets more than 5 but in ~1e-15 of runs.
      const off = yield* run(false, 20)
      expect(off.answered).toBe(40)
      expect(off.rejected).toBeGreaterThanOrEqual(1)
      expect(off.rejected).toBeLessThanOrEqual(3) // the calls in flight when the first 429 came back
    }).pipe(Effect.withRandom(Random.make(14)))))

  it.live("weighted over two deployments: a 1:3 split within 5 points (seeded)", () =>
    Effect.scoped(Effect.gen(function* () {
      const a = yield* deployment({}, 4)
      const b = yield* deployment({}, 5)
      const router = yield* Router.policy({
        deployments: [
          { id: "a", model: "gpt-4o-mini", client: a.client, weight: 1 },
          { id: "b", model: "gpt-4o-mini", client: b.client, weight: 3 }
        ]
      })
      const client = LlmClient.decorate(a.client, router)
      const responses = yield* Effect.forEach(Array.from({ length: 200 }, (_, i) => i), (i) => client.complete(request(i)))
      const toA = responses.filter((r) => r.deployment === "a").length / responses.length
      expect(Math.abs(toA - 0.25)).toBeLessThan(0.05)
      expect((yield* requestsOf(a.server)) + (yield* requestsOf(b.server))).toBe(200)
    }).pipe(Effect.withRandom(Random.make(2026)), Effect.provide(Router.layerStoreMemory))))

  it.live("hedging: calls that hang are answered by a hedge; the hung requests are aborted", () =>
    Effect.scoped(Effect.gen(function* () {
      const N = 60
      const server = yield* ChaosServer.make({ seed: 9, words: 4, faults: { latency: "2 millis", hangRate: 0.05 } })
      const base = yield* OpenAi.make({ apiKey: Redacted.make("sk-chaos"), baseURL: server.baseURL })
      const client = LlmClient.decorate(
        base,
        // a call waits out its 20 s only if all four of its requests hang: 60 × 0.05⁴ ≈ 4 in 10,000 runs
        yield* Hedge.policy({ after: "150 millis", maxHedges: 3 }),
        Timeout.attempt("20 seconds")
      )
      const latencies = yield* Effect.forEach(Array.from({ length: N }, (_, i) => i), (i) =>
        Effect.map(Effect.timed(client.complete(request(i))), ([d]) => Duration.toMillis(d)), { concurrency: 6 })
      const stats = yield* server.stats
      const hung = stats.byOutcome.hang ?? 0
      expect(hung).toBeGreaterThan(0)
      expect(Math.max(...latencies)).toBeLessThan(5_000) // no call waited for its hung request
      // a hedge is sent only for a call not answered within 150 ms, at most three a call
      expect(stats.requests).toBeLessThanOrEqual(N + 3 * latencies.filter((ms) => ms >= 150).length)
      yield* Effect.sleep("50 millis")
      expect((yield* server.stats).aborted).toBeGreaterThanOrEqual(hung)
    })))
})
