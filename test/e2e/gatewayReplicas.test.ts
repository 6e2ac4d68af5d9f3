import { expect, it } from "@effect/vitest"
import { Effect } from "effect"
import type { Scope } from "effect"
import { type ChildProcess, execFile, spawn } from "node:child_process"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import OpenAI from "openai"
import * as ChaosServer from "../../src/ChaosServer.js"
import { hashSecret, type KeyRecord, KeyStore } from "../../src/internal/gateway/keys.js"
import * as Redis from "../../src/Redis.js"
import { describeRedis, redisUrl, testPrefix } from "../support/redis.js"

// Two gateway processes (the real CLI, `gateway --config`) on their own ports share one Redis; client processes send
// through the official `openai` SDK to both at once. Real HTTP on loopback, so this file runs on the live clock.

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..")

/** One gateway process, stopped (SIGTERM, then its exit awaited) when the scope closes. */
const replica = (configFile: string): Effect.Effect<string, Error, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() =>
      spawn(process.execPath, ["bin/cli.js", "gateway", "--config", configFile], {
        cwd: root,
        env: { ...process.env, CHAOS_KEY: "sk-chaos" },
        stdio: ["ignore", "pipe", "pipe"]
      })
    ),
    (child) =>
      Effect.async<void>((resume) => {
        if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
        child.once("exit", () => resume(Effect.void))
        child.kill("SIGTERM")
      }).pipe(Effect.timeout("15 seconds"), Effect.ignore, Effect.ensuring(Effect.sync(() => child.kill("SIGKILL"))))
  ).pipe(Effect.flatMap((child) => listening(child)))

const listening = (child: ChildProcess): Effect.Effect<string, Error> =>
  Effect.async<string, Error>((resume) => {
    let text = ""
    const onData = (data: unknown) => {
      text += String(data)
      const match = /Gateway listening on (http:\/\/127\.0\.0\.1:\d+\/v1)/.exec(text)
      if (match) resume(Effect.succeed(match[1]))
    }
    child.stdout?.on("data", onData)
    child.stderr?.on("data", (data) => (text += String(data)))
    child.once("close", (code) => resume(Effect.fail(new Error(`the gateway exited (${code}) before listening: ${text}`))))
  }).pipe(Effect.timeoutFail({ duration: "30 seconds", onTimeout: () => new Error("the gateway never listened") }))

/** What a client process reports of one request. */
interface Outcome {
  readonly status: number
  readonly id?: string
  readonly replica: number
  readonly totalTokens?: number
  readonly code?: string | null
}

/** One client process (`test/support/gatewayClient.mjs`): `requests` concurrent requests spread over the replicas. */
const clientProcess = (plan: Record<string, unknown>): Effect.Effect<ReadonlyArray<Outcome>, Error> =>
  Effect.tryPromise({
    try: async () => {
      const { stdout } = await promisify(execFile)(
        process.execPath,
        ["test/support/gatewayClient.mjs", JSON.stringify(plan)],
        { cwd: root, timeout: 90_000, maxBuffer: 16 * 1024 * 1024 }
      )
      return JSON.parse(stdout) as ReadonlyArray<Outcome>
    },
    catch: (error) => new Error(`a client process failed: ${String(error)}`)
  })

/** A virtual key stored in the replicas' Redis (by the SHA-256 of its secret only). */
const storeKey = (prefix: string, secret: string, record: Omit<KeyRecord, "hash" | "createdAt">) =>
  Effect.gen(function* () {
    const store = yield* KeyStore
    expect(yield* store.put({ ...record, hash: hashSecret(secret), createdAt: Date.now() })).toBe(true)
  }).pipe(Effect.provide(Redis.layerGatewayKeyStore), Effect.provide(Redis.layer({ url: redisUrl, prefix })))

describeRedis("e2e: two gateway replicas sharing one Redis", () => {
  it.live("one key's budget holds across 4 client processes × 250 concurrent requests; one Idempotency-Key makes one upstream call; a breaker opened through one replica rejects through the other", () =>
    Effect.scoped(Effect.gen(function* () {
      const prefix = testPrefix()
      const upstream = yield* ChaosServer.make({ seed: 11, words: 30, faults: { latency: "5 millis" } })
      const down = yield* ChaosServer.make({ seed: 12, faults: { outage: { status: 503 } } })
      const folder = mkdtempSync(join(tmpdir(), "gateway-replicas-"))
      const configFile = join(folder, "gateway.json")
      writeFileSync(configFile, JSON.stringify({
        port: 0,
        upstreams: {
          chaos: { baseURL: upstream.baseURL, apiKeyEnv: "CHAOS_KEY" },
          down: { baseURL: down.baseURL, apiKeyEnv: "CHAOS_KEY" }
        },
        models: {
          "gpt-4o-mini": {
            deployments: [{ id: "chaos-mini", upstream: "chaos", model: "gpt-4o-mini" }],
            pipeline: { idempotency: { ttl: "1 minute" } }
          },
          "broken": {
            deployments: [{ id: "down-mini", upstream: "down", model: "gpt-4o-mini" }],
            pipeline: { breaker: { per: "model", failureThreshold: 3, halfOpenAfter: "1 minute" } }
          }
        },
        redis: { url: redisUrl, prefix }
      }))
      const LIMIT = 5_000
      yield* storeKey(prefix, "sk-gw-budgeted", { id: "key_budgeted", tenant: "acme", budgets: [{ tokens: LIMIT, period: "day" }] })
      yield* storeKey(prefix, "sk-gw-open", { id: "key_open", tenant: "acme" })
      const [a, b] = yield* Effect.all([replica(configFile), replica(configFile)], { concurrency: 2 })
      expect(a).not.toBe(b)
      const baseURLs = [a, b]

      // 1. 4 processes × 250 concurrent requests under one key's 5,000-token daily budget
      const before = (yield* upstream.stats).requests
      const runs = yield* Effect.forEach(
        [0, 1, 2, 3],
        (p) => clientProcess({ baseURLs, apiKey: "sk-gw-budgeted", requests: 250, model: "gpt-4o-mini", maxTokens: 10, offset: p * 250 }),
        { concurrency: 4 }
      )
      const outcomes = runs.flat()
      const answered = outcomes.filter((o) => o.status === 200)
      const refused = outcomes.filter((o) => o.status === 429)
      const others = outcomes.filter((o) => o.status !== 200 && o.status !== 429).map((o) => `${o.status} ${o.code ?? ""}`)
      // nothing else went wrong (the message lists what did)
      expect(answered.length + refused.length, [...new Set(others)].slice(0, 5).join("; ")).toBe(1000)
      expect(refused.every((o) => o.code === "budget_exceeded")).toBe(true)
      expect(answered.length).toBeGreaterThan(0)
      expect(refused.length).toBeGreaterThan(0) // the budget was binding
      // each replica decided its half (which one admits the last calls the budget fits is a race, rightly)
      for (const r of [0, 1]) expect(outcomes.filter((o) => o.replica === r && (o.status === 200 || o.status === 429))).toHaveLength(500)
      const spent = answered.reduce((sum, o) => sum + (o.totalTokens ?? 0), 0)
      expect(spent).toBeLessThanOrEqual(LIMIT) // never overshot, across processes and replicas
      expect((yield* upstream.stats).requests - before).toBe(answered.length) // a refusal never reached the upstream

      // 2. 100 concurrent requests with one Idempotency-Key over both replicas: one upstream call, one answer
      const sdk = (baseURL: string) => new OpenAI({ baseURL, apiKey: "sk-gw-open", maxRetries: 0 })
      const [viaA, viaB] = [sdk(a), sdk(b)]
      const ask = (client: OpenAI, model: string, headers: Record<string, string> = {}) =>
        Effect.tryPromise({
          try: () =>
            client.chat.completions.create(
              { model, messages: [{ role: "user", content: "Ticket #0: summarise it" }], max_tokens: 40 },
              { headers }
            ),
          catch: (error) => error
        })
      const beforeIdem = (yield* upstream.stats).requests
      const same = yield* Effect.forEach(
        Array.from({ length: 100 }, (_, i) => i),
        (i) => ask(i % 2 === 0 ? viaA : viaB, "gpt-4o-mini", { "Idempotency-Key": "order-42" }),
        { concurrency: "unbounded" }
      )
      expect(new Set(same.map((c) => c.id)).size).toBe(1)
      expect((yield* upstream.stats).requests - beforeIdem).toBe(1)

      // 3. a breaker opened through replica a rejects through replica b without calling the upstream
      const codeOf = (effect: Effect.Effect<unknown, unknown>) =>
        Effect.map(Effect.flip(effect), (error) => (error instanceof OpenAI.APIError ? [error.status, error.code] : [0, String(error)]))
      const failures = yield* Effect.forEach([1, 2, 3, 4], () => codeOf(ask(viaA, "broken")))
      expect(failures.slice(0, 3)).toEqual(Array(3).fill([502, "upstream_error"])) // three 503s from the upstream
      expect(failures[3]).toEqual([503, "circuit_open"])
      const sentDown = (yield* down.stats).requests
      expect(sentDown).toBe(3)
      const through = yield* Effect.forEach([1, 2, 3], () => codeOf(ask(viaB, "broken")))
      expect(through).toEqual(Array(3).fill([503, "circuit_open"]))
      expect((yield* down.stats).requests).toBe(sentDown)
    })), 120_000)
})
