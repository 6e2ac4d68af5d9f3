/**
 * Router over three ChaosServer "deployments" of one model on loopback: a fast one (5 ms), a slow one (120 ms) and
 * one in a full outage (503). Sends 60 requests through each strategy and prints where they went, then shows the
 * failing deployment cooled down and tried again after its cooldown. Seeded. Runs in a few seconds.
 * Run: `npx tsx examples/router.ts`
 */
import { Effect, Random, Redacted } from "effect"
import { ChaosServer, Llm, LlmClient, Router } from "../src/index.js"
import * as OpenAi from "../src/OpenAi.js"

const request = (i: number) =>
  new Llm.ChatRequest({ model: "gpt-4o-mini", messages: [{ role: "user", content: `Summarise ticket #${i}` }] })

const deployment = (faults: ChaosServer.Faults, seed: number) =>
  Effect.gen(function* () {
    const server = yield* ChaosServer.make({ seed, faults, words: 4 })
    const client = yield* OpenAi.make({ apiKey: Redacted.make("sk-chaos-example"), baseURL: server.baseURL })
    return { server, client }
  })

const program = Effect.gen(function* () {
  const fast = yield* deployment({ latency: "5 millis" }, 1)
  const slow = yield* deployment({ latency: "120 millis" }, 2)
  const failing = yield* deployment({ outage: { status: 503 } }, 3)
  const deployments: ReadonlyArray<Router.Deployment> = [
    { id: "fast", model: "gpt-4o-mini", client: fast.client },
    { id: "slow", model: "gpt-4o-mini", client: slow.client },
    { id: "failing", model: "gpt-4o-mini", client: failing.client }
  ]
  for (const strategy of ["weighted", "least-busy", "latency"] as const) {
    const router = yield* Router.policy({ name: strategy, strategy, deployments, cooldown: "30 seconds" })
    const client = LlmClient.decorate(fast.client, router)
    const started = yield* Effect.map(failing.server.stats, (s) => s.requests)
    const responses = yield* Effect.forEach(Array.from({ length: 60 }, (_, i) => i), (i) => client.complete(request(i)), {
      concurrency: 4
    })
    const by = (id: string) => responses.filter((r) => r.deployment === id).length
    const failed = (yield* Effect.map(failing.server.stats, (s) => s.requests)) - started
    console.log(
      `${strategy.padEnd(10)}  fast ${String(by("fast")).padStart(2)}  slow ${String(by("slow")).padStart(2)}  ` +
        `answered by failing ${by("failing")}  (failing was tried ${failed}× and failed over, then cooled down)`
    )
  }

  const router = yield* Router.policy({
    name: "cooldown",
    cooldown: "500 millis",
    allowedFails: 1,
    deployments: [deployments[0], deployments[2]]
  })
  const client = LlmClient.decorate(fast.client, router)
  const failingCalls = Effect.map(failing.server.stats, (s) => s.requests)
  const before = yield* failingCalls
  yield* Effect.forEach(Array.from({ length: 10 }, (_, i) => i), (i) => client.complete(request(i)))
  const cooling = (yield* router.status).find((d) => d.id === "failing")!
  console.log(`\nafter 10 calls: failing tried ${(yield* failingCalls) - before}×, cooling down until +${
    cooling.state.cooldownUntil - (yield* Effect.clockWith((c) => c.currentTimeMillis))} ms`)
  yield* Effect.sleep("500 millis")
  yield* Effect.forEach(Array.from({ length: 10 }, (_, i) => i), (i) => client.complete(request(i)))
  console.log(`after its cooldown and 10 more calls: failing tried ${(yield* failingCalls) - before}× in all`)
})

Effect.runPromise(Effect.scoped(program).pipe(Effect.provide(Router.layerStoreMemory), Effect.withRandom(Random.make(7))))
  .catch((error) => {
    console.error(error)
    process.exit(1)
  })
