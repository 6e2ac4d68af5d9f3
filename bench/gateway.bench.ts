/**
 * The gateway under load: requests per second and latency (p50, p99) of chat completions sent straight to a
 * ChaosServer, and the same requests sent through the gateway in front of it, at 100 and at 1,000 concurrent
 * clients. The ChaosServer, the gateway and the load generator are three processes on loopback (the gateway runs the
 * compiled command line, `gateway --config`), so the gateway's own cost is the difference between the two rows.
 *
 * Two gateway setups: `memory` (one process: keys in the file, every store in memory) and `redis` (every store and
 * the keys in the Redis at REDIS_URL, as N replicas run it; skipped when Redis does not answer). Both run the same
 * pipeline — Retry (2 retries), a breaker per model, a 30 s attempt timeout — and the `redis` key has a daily token
 * budget (large enough never to refuse), so each request also reserves and commits in Redis.
 *
 * `npm run bench -- gateway`
 */
import { type ChildProcess, spawn } from "node:child_process"
import { createHash } from "node:crypto"
import { mkdtempSync, writeFileSync } from "node:fs"
import { Agent, request as httpRequest } from "node:http"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { Redis as IORedis } from "ioredis"

const here = dirname(fileURLToPath(import.meta.url))
const bin = join(here, "..", "src", "bin.js")
const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379"
const SECRET = "sk-gw-bench-0123456789"
const LEVELS: ReadonlyArray<{ readonly clients: number; readonly requests: number }> = [
  { clients: 100, requests: 4_000 },
  { clients: 1_000, requests: 10_000 }
]

/** A child process and the URL it printed once listening. */
const start = (args: ReadonlyArray<string>, pattern: RegExp): Promise<{ child: ChildProcess; url: string }> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, CHAOS_KEY: "sk-chaos" } })
    let text = ""
    const timer = setTimeout(() => reject(new Error(`${args[0]} did not start: ${text}`)), 30_000)
    child.stdout.on("data", (data) => {
      text += String(data)
      const match = pattern.exec(text)
      if (match) {
        clearTimeout(timer)
        resolve({ child, url: match[1] })
      }
    })
    child.stderr.on("data", (data) => (text += String(data)))
    child.once("close", (code) => reject(new Error(`${args[0]} exited (${code}): ${text}`)))
  })

const stop = (child: ChildProcess): Promise<void> =>
  new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    child.once("exit", () => resolve())
    child.kill("SIGTERM")
    setTimeout(() => child.kill("SIGKILL"), 15_000).unref()
  })

interface Result {
  readonly rps: number
  readonly p50: number
  readonly p99: number
  readonly failed: number
}

/** `requests` POSTs to `url`, `clients` at a time over keep-alive connections; latencies in ms. */
const load = (url: string, apiKey: string, clients: number, requests: number): Promise<Result> => {
  const agent = new Agent({ keepAlive: true, maxSockets: clients })
  const target = new URL(`${url}/chat/completions`)
  const latencies: Array<number> = []
  let failed = 0
  let next = 0
  const one = (i: number): Promise<void> =>
    new Promise((resolve) => {
      const body = JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: `Ticket #${i}: summarise it` }], max_tokens: 20 })
      const began = performance.now()
      const req = httpRequest(target, {
        method: "POST",
        agent,
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body), authorization: `Bearer ${apiKey}` }
      }, (res) => {
        res.resume()
        res.once("end", () => {
          if (res.statusCode === 200) latencies.push(performance.now() - began)
          else failed++
          resolve()
        })
      })
      req.once("error", () => {
        failed++
        resolve()
      })
      req.end(body)
    })
  const worker = async () => {
    while (next < requests) await one(next++)
  }
  const began = performance.now()
  return Promise.all(Array.from({ length: clients }, worker)).then(() => {
    const seconds = (performance.now() - began) / 1000
    agent.destroy()
    latencies.sort((a, b) => a - b)
    const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? Number.NaN
    return { rps: latencies.length / seconds, p50: at(0.5), p99: at(0.99), failed }
  })
}

const redisAnswers = async (): Promise<boolean> => {
  const client = new IORedis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 1000, retryStrategy: () => null })
  try {
    await client.connect()
    return (await client.ping()) === "PONG"
  } catch {
    return false
  } finally {
    client.disconnect()
  }
}

const record = (budget: boolean) => ({
  id: "key_bench",
  tenant: "bench",
  hash: createHash("sha256").update(SECRET).digest("hex"),
  createdAt: Date.now(),
  ...(budget ? { budgets: [{ tokens: 1_000_000_000, period: "day" }] } : {})
})

const main = async () => {
  const chaos = await start(["chaos-server", "--port", "0", "--seed", "1"], /ChaosServer listening on (http:\/\/127\.0\.0\.1:\d+\/v1)/)
  const folder = mkdtempSync(join(tmpdir(), "gateway-bench-"))
  const base = {
    port: 0,
    upstreams: { chaos: { baseURL: chaos.url, apiKeyEnv: "CHAOS_KEY" } },
    models: { "gpt-4o-mini": { deployments: [{ id: "chaos", upstream: "chaos", model: "gpt-4o-mini" }] } },
    pipeline: { retry: { maxRetries: 2 }, breaker: { per: "model" }, timeout: { attempt: "30 seconds" } }
  }
  const setups: Array<{ readonly name: string; readonly config: object; readonly prepare?: () => Promise<void> }> = [
    { name: "memory", config: { ...base, keys: [record(false)] } }
  ]
  if (await redisAnswers()) {
    const prefix = `bench-gateway:${process.pid}:`
    setups.push({
      name: "redis",
      config: { ...base, redis: { url: redisUrl, prefix } },
      prepare: async () => {
        const client = new IORedis(redisUrl)
        const stored = JSON.stringify(record(true))
        const hash = record(true).hash
        await client.hset(`${prefix}{gateway-keys}:records`, hash, stored)
        await client.hset(`${prefix}{gateway-keys}:ids`, "key_bench", hash)
        client.disconnect()
      }
    })
  } else {
    console.log("(Redis does not answer at REDIS_URL: the redis setup is skipped)")
  }

  const rows: Array<string> = []
  const fmt = (r: Result) => `${Math.round(r.rps).toLocaleString("en-US").padStart(7)} req/s | p50 ${r.p50.toFixed(1).padStart(6)} ms | p99 ${r.p99.toFixed(1).padStart(7)} ms${r.failed > 0 ? ` | ${r.failed} failed` : ""}`
  try {
    for (const { clients, requests } of LEVELS) {
      await load(chaos.url, "sk-chaos", clients, Math.min(1_000, requests)) // warm-up
      const direct = await load(chaos.url, "sk-chaos", clients, requests)
      rows.push(`| ${String(clients).padStart(5)} clients | direct to ChaosServer | ${fmt(direct)} | — |`)
      for (const setup of setups) {
        await setup.prepare?.()
        const file = join(folder, `${setup.name}.json`)
        writeFileSync(file, JSON.stringify(setup.config))
        const gateway = await start(["gateway", "--config", file], /Gateway listening on (http:\/\/127\.0\.0\.1:\d+\/v1)/)
        try {
          await load(gateway.url, SECRET, clients, Math.min(1_000, requests)) // warm-up
          const through = await load(gateway.url, SECRET, clients, requests)
          rows.push(
            `| ${String(clients).padStart(5)} clients | gateway (${setup.name}) | ${fmt(through)} | +${(through.p50 - direct.p50).toFixed(1)} ms p50, +${(through.p99 - direct.p99).toFixed(1)} ms p99 |`
          )
        } finally {
          await stop(gateway.child)
        }
      }
    }
  } finally {
    await stop(chaos.child)
  }
  console.log("| concurrency | path | throughput and latency | added by the gateway |")
  console.log("| --- | --- | --- | --- |")
  for (const row of rows) console.log(row)
}

await main()
