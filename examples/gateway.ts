/**
 * The Gateway in front of two ChaosServer "upstreams" (one healthy, one failing half its calls with 503s) on
 * loopback, called through the official `openai` SDK as any client in any language would: a completion (with the
 * gateway's x-llm-* headers), the same request again (a cache hit, $0), a stream, a key over its budget (429 with
 * Retry-After, the SDK's RateLimitError) and a key that may not call a model (403). Then the gateway drains and
 * stops. Seeded; runs in about a second. Run: `npx tsx examples/gateway.ts`
 */
import { Effect, Redacted } from "effect"
import OpenAI from "openai"
import { ChaosServer } from "../src/index.js"
import * as Gateway from "../src/Gateway.js"

const key = (id: string, secret: string, extra: object = {}) => ({ id, tenant: "acme", hash: Gateway.hashSecret(secret), createdAt: 0, ...extra })

const program = Effect.scoped(Effect.gen(function* () {
  const healthy = yield* ChaosServer.make({ seed: 1, words: 8 })
  const flaky = yield* ChaosServer.make({ seed: 2, words: 8, faults: { errors: [{ status: 503, rate: 0.5 }] } })
  const gateway = yield* Gateway.make({
    upstreams: {
      healthy: { baseURL: healthy.baseURL, apiKey: Redacted.make("sk-upstream-1") },
      flaky: { baseURL: flaky.baseURL, apiKey: Redacted.make("sk-upstream-2") }
    },
    models: {
      "fast": {
        deployments: [
          { id: "healthy-mini", upstream: "healthy", model: "gpt-4o-mini" },
          { id: "flaky-mini", upstream: "flaky", model: "gpt-4o-mini" }
        ],
        strategy: "least-busy"
      },
      "smart": { deployments: [{ id: "healthy-4o", upstream: "healthy", model: "gpt-4o" }] }
    },
    pipeline: { cache: { ttl: "10 minutes" }, retry: { maxRetries: 2 }, timeout: { attempt: "10 seconds" } },
    keys: [
      key("key_app", "sk-gw-app"),
      key("key_intern", "sk-gw-intern", { models: ["fast"], budgets: [{ tokens: 80, period: "day" }] })
    ],
    shutdown: { grace: "2 seconds" }
  })
  console.log(`gateway on ${gateway.baseURL}`)
  const app = new OpenAI({ baseURL: gateway.baseURL, apiKey: "sk-gw-app", maxRetries: 0 })
  const ask = { model: "fast", messages: [{ role: "user" as const, content: "Name three colours" }], temperature: 0 }

  for (const label of ["first call", "same call "]) {
    const { data, response } = yield* Effect.promise(() => app.chat.completions.create(ask).withResponse())
    const h = (name: string) => response.headers.get(name)
    console.log(
      `${label}: "${data.choices[0].message.content}" via ${h("x-llm-deployment")} (${h("x-llm-served-from")}, ` +
        `cache ${h("x-llm-cache")}, $${h("x-llm-cost-usd")})`
    )
  }

  const streamed = yield* Effect.promise(async () => {
    const stream = await app.chat.completions.create({ ...ask, model: "smart", stream: true, stream_options: { include_usage: true } })
    let text = ""
    let tokens = 0
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? ""
      tokens = chunk.usage?.total_tokens ?? tokens
    }
    return { text, tokens }
  })
  console.log(`stream    : "${streamed.text}" (${streamed.tokens} tokens)`)

  const intern = new OpenAI({ baseURL: gateway.baseURL, apiKey: "sk-gw-intern", maxRetries: 0 })
  const outcome = (model: string, n: number) =>
    Effect.promise(() =>
      intern.chat.completions.create({ ...ask, model, max_tokens: 60, messages: [{ role: "user", content: `Question ${n} about ${model}` }] })
        .then(() => "answered", (e: unknown) =>
          e instanceof OpenAI.APIError ? `${e.constructor.name} ${e.status} ${e.code} retry-after=${e.headers?.get("retry-after") ?? "-"}` : String(e)))
  console.log(`intern, fast, 1 : ${yield* outcome("fast", 1)}`)
  console.log(`intern, fast, 2 : ${yield* outcome("fast", 2)}`)
  console.log(`intern, smart, 3: ${yield* outcome("smart", 3)}`)
  console.log("stopping: new requests get 503, requests in flight get 2 seconds")
}))

const t0 = Date.now()
Effect.runPromise(program).then(() => console.log(`stopped (${Date.now() - t0} ms)`))
