import { describe, expect, it } from "@effect/vitest"
import { Deferred, type Duration, Effect, Exit, Fiber, Layer, Redacted, Schedule, Scope } from "effect"
import { spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import OpenAI, { type APIError } from "openai"
import * as ChaosServer from "../../src/ChaosServer.js"
import * as Gateway from "../../src/Gateway.js"
import { hashSecret, type KeyRecord, KeyStore } from "../../src/internal/gateway/keys.js"
import { writeKeyFile } from "../../src/internal/gateway/keysMemory.js"
import * as Redis from "../../src/Redis.js"
import { describeRedis, redisUrl, testPrefix } from "../support/redis.js"

// Real HTTP on loopback (ChaosServer upstreams, the gateway, the official openai SDK and curl): the live clock.

const key = (id: string, tenant: string, extra: Partial<KeyRecord> = {}): KeyRecord => ({
  id,
  tenant,
  hash: hashSecret(`sk-gw-${id}`),
  createdAt: 0,
  ...extra
})

const keys: ReadonlyArray<KeyRecord> = [
  key("key_ok", "acme"),
  key("key_mini", "acme", { models: ["mini"] }),
  key("key_revoked", "acme", { revokedAt: 1 }),
  key("key_slow", "acme", { rateLimit: { rpm: 1 } })
]

const sdk = (baseURL: string, id: string) => new OpenAI({ baseURL, apiKey: `sk-gw-${id}`, maxRetries: 0 })

const gatewayOver = (chaos: ChaosServer.Options, extra: Partial<Gateway.Config> = {}) =>
  Effect.gen(function* () {
    const upstream = yield* ChaosServer.make({ seed: 3, words: 8, ...chaos })
    const gateway = yield* Gateway.make({
      upstreams: { chaos: { baseURL: upstream.baseURL, apiKey: Redacted.make("sk-upstream-secret") } },
      models: {
        mini: { deployments: [{ id: "chaos-mini", upstream: "chaos", model: "gpt-4o-mini" }] },
        big: { deployments: [{ id: "chaos-big", upstream: "chaos", model: "gpt-4o" }] }
      },
      pipeline: { retry: { maxRetries: 1 }, timeout: { attempt: "10 seconds" } },
      keys,
      ...extra
    })
    return { upstream, gateway }
  })

const messages = [{ role: "user" as const, content: "Say something short" }]

describe("e2e: the gateway through the official openai SDK over ChaosServer", () => {
  it.live("a completion and a stream (role delta, content deltas, finish reason, usage chunk), with the x-llm-* headers", () =>
    Effect.scoped(Effect.gen(function* () {
      const { gateway } = yield* gatewayOver({})
      const client = sdk(gateway.baseURL, "key_ok")
      const { data, response } = yield* Effect.promise(() =>
        client.chat.completions.create({ model: "mini", messages }).withResponse())
      expect(data.choices[0].message.content?.length).toBeGreaterThan(0)
      expect(data.usage?.total_tokens).toBeGreaterThan(0)
      expect(response.headers.get("x-llm-deployment")).toBe("chaos-mini")
      expect(response.headers.get("x-llm-served-from")).toBe("provider")
      expect(Number(response.headers.get("x-llm-cost-usd"))).toBeGreaterThan(0)
      const chunks = yield* Effect.promise(async () => {
        const stream = await client.chat.completions.create({ model: "mini", messages, stream: true, stream_options: { include_usage: true } })
        const all = []
        for await (const chunk of stream) all.push(chunk)
        return all
      })
      expect(chunks[0].choices[0].delta.role).toBe("assistant")
      const text = chunks.map((c) => c.choices[0]?.delta.content ?? "").join("")
      expect(text.split(" ").length).toBeGreaterThan(2)
      const finish = chunks.filter((c) => c.choices[0]?.finish_reason != null)
      expect(finish.map((c) => c.choices[0].finish_reason)).toEqual(["stop"])
      const last = chunks.at(-1)!
      expect(last.choices).toEqual([])
      expect(last.usage?.completion_tokens).toBeGreaterThan(0)
      // the library's metrics on the gateway's own port, and its health
      const metrics = yield* Effect.promise(() => fetch(`${gateway.url}/metrics`).then((r) => r.text()))
      expect(metrics).toMatch(/^llm_requests_total\{[^}]*model="gpt-4o-mini"[^}]*\} \d+/m)
      expect(metrics).not.toContain("Say something short")
      const health = yield* Effect.promise(() => fetch(`${gateway.url}/healthz`).then((r) => r.json()))
      expect(health).toEqual({ status: "ok" })
      const unknown = yield* Effect.promise(() => fetch(`${gateway.url}/v1/nothing`).then(async (r) => [r.status, await r.json()] as const))
      expect(unknown[0]).toBe(404)
      expect(unknown[1]).toMatchObject({ error: { code: "unknown_url" } })
    })))

  it.live("a stream the upstream cuts after its first tokens ends with an error event, which the SDK raises", () =>
    Effect.scoped(Effect.gen(function* () {
      const { gateway } = yield* gatewayOver({ faults: { cutRate: 1 } })
      const outcome = yield* Effect.promise(async () => {
        const stream = await sdk(gateway.baseURL, "key_ok").chat.completions.create({ model: "mini", messages, stream: true })
        let text = ""
        try {
          for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? ""
          return { text, error: undefined }
        } catch (error) {
          return { text, error }
        }
      })
      expect(outcome.error).toBeInstanceOf(OpenAI.APIError)
      expect(String((outcome.error as APIError).message)).toContain("upstream")
    })))

  it.live("curl -N receives the events one by one and the closing data: [DONE]", () =>
    Effect.scoped(Effect.gen(function* () {
      const { gateway } = yield* gatewayOver({ faults: { chunkDelay: "5 millis" } })
      const output = yield* Effect.async<string, Error>((resume) => {
        const curl = spawn("curl", [
          "-sN",
          `${gateway.baseURL}/chat/completions`,
          "-H", "authorization: Bearer sk-gw-key_ok",
          "-H", "content-type: application/json",
          "-d", JSON.stringify({ model: "mini", messages, stream: true })
        ])
        let text = ""
        curl.stdout.on("data", (data) => (text += String(data)))
        curl.once("error", (error) => resume(Effect.fail(error)))
        curl.once("close", () => resume(Effect.succeed(text)))
      })
      const events = output.split("\n\n").filter((e) => e.startsWith("data: "))
      expect(events.at(-1)).toBe("data: [DONE]")
      const parsed = events.slice(0, -1).map((e) => JSON.parse(e.slice(6)) as { readonly choices: ReadonlyArray<{ readonly delta: { readonly role?: string } }> })
      expect(parsed[0].choices[0].delta.role).toBe("assistant")
      expect(parsed.length).toBeGreaterThan(3)
    })))

  it.live("401, 403 and 429 bodies become the SDK's AuthenticationError, PermissionDeniedError and RateLimitError", () =>
    Effect.scoped(Effect.gen(function* () {
      const { gateway } = yield* gatewayOver({})
      const failure = (id: string, model = "mini") =>
        Effect.promise(() => sdk(gateway.baseURL, id).chat.completions.create({ model, messages }).then(() => undefined, (e: unknown) => e))
      const unknown = yield* failure("key_nobody")
      expect(unknown).toBeInstanceOf(OpenAI.AuthenticationError)
      expect((unknown as APIError).code).toBe("invalid_api_key")
      expect(yield* failure("key_revoked")).toBeInstanceOf(OpenAI.PermissionDeniedError)
      const notAllowed = yield* failure("key_mini", "big")
      expect(notAllowed).toBeInstanceOf(OpenAI.PermissionDeniedError)
      expect((notAllowed as APIError).code).toBe("model_not_allowed")
      expect(yield* failure("key_slow")).toBeUndefined() // the first request of the minute
      const limited = yield* failure("key_slow")
      expect(limited).toBeInstanceOf(OpenAI.RateLimitError)
      expect(Number((limited as APIError).headers?.get("retry-after"))).toBeGreaterThan(0)
      const models = yield* Effect.promise(() => sdk(gateway.baseURL, "key_mini").models.list())
      expect(models.data.map((m) => m.id)).toEqual(["mini"])
    })))

  it.live("an upstream that refuses the gateway's key is a 502 to the client, whose own key is fine", () =>
    Effect.scoped(Effect.gen(function* () {
      const { gateway } = yield* gatewayOver({ faults: { outage: { status: 401 } } })
      const error = yield* Effect.promise(() =>
        sdk(gateway.baseURL, "key_ok").chat.completions.create({ model: "mini", messages }).then(() => undefined, (e: unknown) => e))
      expect(error).toBeInstanceOf(OpenAI.InternalServerError)
      expect((error as APIError).status).toBe(502)
      expect(JSON.stringify((error as APIError).error)).not.toContain("sk-upstream-secret")
    })))

  it.live("embeddings through the SDK (its base64 transfer): failover past a failing deployment, the key's model list applies", () =>
    Effect.scoped(Effect.gen(function* () {
      const down = yield* ChaosServer.make({ seed: 5, faults: { outage: { status: 503 } } })
      const { gateway } = yield* gatewayOver({}, {
        upstreams: {
          chaos: { baseURL: (yield* ChaosServer.make({ seed: 6 })).baseURL, apiKey: Redacted.make("sk-upstream") },
          down: { baseURL: down.baseURL, apiKey: Redacted.make("sk-upstream") }
        },
        models: { mini: { deployments: [{ id: "chaos-mini", upstream: "chaos", model: "gpt-4o-mini" }] } },
        embeddings: {
          small: {
            deployments: [
              { id: "down-small", upstream: "down", model: "text-embedding-3-small" },
              { id: "chaos-small", upstream: "chaos", model: "text-embedding-3-small" }
            ]
          }
        }
      })
      const { data, response } = yield* Effect.promise(() =>
        sdk(gateway.baseURL, "key_ok").embeddings.create({ model: "small", input: ["refund policy", "shipping times"], dimensions: 8 }).withResponse())
      expect(data.data.map((d) => d.embedding.length)).toEqual([8, 8])
      expect(data.usage.prompt_tokens).toBeGreaterThan(0)
      expect(response.headers.get("x-llm-deployment")).toBe("chaos-small")
      expect((yield* down.stats).requests).toBe(1)
      const refused = yield* Effect.promise(() =>
        sdk(gateway.baseURL, "key_mini").embeddings.create({ model: "small", input: "x" }).then(() => undefined, (e: unknown) => e))
      expect(refused).toBeInstanceOf(OpenAI.PermissionDeniedError)
    })))

  it.live("Gateway.layer with a keysFile (the file `gateway keys` writes): its keys authenticate", () =>
    Effect.gen(function* () {
      const dir = mkdtempSync(join(tmpdir(), "gateway-keys-"))
      const file = join(dir, "keys.json")
      yield* writeKeyFile(file, [key("key_file", "acme")])
      const upstream = yield* ChaosServer.make({ seed: 8 })
      const answer = yield* Effect.gen(function* () {
        const gateway = yield* Gateway.Gateway
        return yield* Effect.promise(() => sdk(gateway.baseURL, "key_file").chat.completions.create({ model: "mini", messages }))
      }).pipe(Effect.provide(Gateway.layer({
        upstreams: { chaos: { baseURL: upstream.baseURL, apiKey: Redacted.make("sk-upstream") } },
        models: { mini: { deployments: [{ id: "chaos-mini", upstream: "chaos", model: "gpt-4o-mini" }] } },
        keysFile: file
      })))
      expect(answer.choices[0].finish_reason).toBe("stop")
      rmSync(dir, { recursive: true, force: true })
    }).pipe(Effect.scoped))

  it.live("shutdown: a stream in flight finishes, a new request gets an OpenAI-shaped 503, then the port is closed", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const { gateway } = yield* Scope.extend(gatewayOver({ faults: { chunkDelay: "40 millis" } }, { shutdown: { grace: "10 seconds" } }), scope)
      const client = sdk(gateway.baseURL, "key_ok")
      const started = yield* Deferred.make<void>()
      const streaming = yield* Effect.fork(Effect.promise(async () => {
        const stream = await client.chat.completions.create({ model: "mini", messages, stream: true })
        const all = []
        for await (const chunk of stream) {
          all.push(chunk)
          if (all.length === 2) Effect.runSync(Deferred.succeed(started, undefined))
        }
        return all
      }))
      yield* Deferred.await(started)
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      // draining: /healthz says so (a load balancer's cue), then new requests are refused
      yield* Effect.promise(() => fetch(`${gateway.url}/healthz`).then((r) => r.status)).pipe(
        Effect.repeat({ schedule: Schedule.spaced("10 millis"), until: (status) => status === 503 }),
        Effect.timeout("5 seconds")
      )
      const late = yield* Effect.promise(() => client.chat.completions.create({ model: "mini", messages }).then(() => undefined, (e: unknown) => e))
      expect((late as APIError).status).toBe(503)
      expect((late as APIError).code).toBe("shutting_down")
      const chunks = yield* Fiber.join(streaming)
      expect(chunks.some((c) => c.choices[0]?.finish_reason === "stop")).toBe(true)
      yield* Fiber.join(closing)
      const refused = yield* Effect.promise(() => fetch(`${gateway.url}/healthz`).then(() => "answered", () => "refused"))
      expect(refused).toBe("refused")
    }))
})

describeRedis("e2e: gateways on one Redis", () => {
  it.live("a stream cut at the end of the grace refunds its reservation: the next gateway on the same Redis admits a request the reservation would have refused", () =>
    Effect.gen(function* () {
      const prefix = testPrefix()
      const budgeted = key("key_budget", "acme", { budgets: [{ tokens: 200, period: "day" }] })
      const outer = yield* Scope.make()
      const upstream = yield* Scope.extend(ChaosServer.make({ seed: 4, words: 40, faults: { chunkDelay: "100 millis" } }), outer)
      const config = (grace: Duration.DurationInput): Gateway.Config => ({
        upstreams: { chaos: { baseURL: upstream.baseURL, apiKey: Redacted.make("sk-upstream") } },
        models: { mini: { deployments: [{ id: "chaos-mini", upstream: "chaos", model: "gpt-4o-mini" }] } },
        redis: { url: redisUrl, prefix },
        keys: [budgeted],
        shutdown: { grace }
      })
      const first = yield* Scope.make()
      const gateway = yield* Scope.extend(Gateway.make(config("200 millis")), first)
      const client = sdk(gateway.baseURL, "key_budget")
      const started = yield* Deferred.make<void>()
      // reserves prompt + 150 tokens of the 200
      const cut = yield* Effect.fork(Effect.promise(async () => {
        const stream = await client.chat.completions.create({ model: "mini", messages, stream: true, max_tokens: 150 })
        let n = 0
        try {
          for await (const _ of stream) if (++n === 1) Effect.runSync(Deferred.succeed(started, undefined))
          return "finished"
        } catch {
          return "cut"
        }
      }))
      yield* Deferred.await(started)
      yield* Scope.close(first, Exit.void)
      expect(yield* Fiber.join(cut)).toBe("cut")
      // A second gateway on another port, same Redis: the same worst case fits only if the reservation was released.
      const second = yield* Scope.make()
      const again = yield* Scope.extend(Gateway.make(config("1 second")), second)
      const answer = yield* Effect.promise(() =>
        sdk(again.baseURL, "key_budget").chat.completions.create({ model: "mini", messages, max_tokens: 150 }).then(
          (r) => r.choices[0].finish_reason,
          (e: unknown) => `refused ${(e as APIError).status}`
        ))
      expect(answer).not.toBe("refused 429")
      yield* Scope.close(second, Exit.void)
      yield* Scope.close(outer, Exit.void)
    }))

  it.live("with redis and no keys, the gateway reads the Redis key store (a key put there by another process)", () =>
    Effect.scoped(Effect.gen(function* () {
      const prefix = testPrefix()
      const added = yield* Effect.flatMap(KeyStore, (store) => store.put(key("key_shared", "acme"))).pipe(
        Effect.provide(Redis.layerGatewayKeyStore.pipe(Layer.provide(Redis.layer({ url: redisUrl, prefix }))))
      )
      expect(added).toBe(true)
      const upstream = yield* ChaosServer.make({ seed: 7 })
      const gateway = yield* Gateway.make({
        upstreams: { chaos: { baseURL: upstream.baseURL, apiKey: Redacted.make("sk-upstream") } },
        models: { mini: { deployments: [{ id: "chaos-mini", upstream: "chaos", model: "gpt-4o-mini" }] } },
        redis: { url: redisUrl, prefix }
      })
      const answer = yield* Effect.promise(() => sdk(gateway.baseURL, "key_shared").chat.completions.create({ model: "mini", messages }))
      expect(answer.choices[0].finish_reason).toBe("stop")
      const unknown = yield* Effect.promise(() =>
        sdk(gateway.baseURL, "key_other").chat.completions.create({ model: "mini", messages }).then(() => undefined, (e: unknown) => e))
      expect(unknown).toBeInstanceOf(OpenAI.AuthenticationError)
    })))
})
