import { describe, expect, it } from "@effect/vitest"
import { Effect, TestClock } from "effect"
import * as ChaosServer from "../src/ChaosServer.js"
import { formatReset } from "../src/internal/chaosQuota.js"
import { parseReset } from "../src/internal/quota.js"

interface Reply {
  readonly status: number
  readonly headers: Headers
}

const chat = (server: ChaosServer.Service, model: string, extra: Record<string, unknown> = {}) =>
  Effect.promise(async (): Promise<Reply> => {
    const response = await fetch(`${server.baseURL}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model, messages: [{ role: "user", content: "hello there" }], ...extra })
    })
    await response.text()
    return { status: response.status, headers: response.headers }
  })

const quotaHeaders = (reply: Reply) =>
  Object.fromEntries([...reply.headers.entries()].filter(([name]) => name.startsWith("x-ratelimit-") || name.startsWith("retry-after")))

// Real HTTP on loopback, but no delays: the server's clock is the test's TestClock, so windows end when the test says.
describe("ChaosServer quotas", () => {
  it.effect("sends x-ratelimit-* on every response of the model; 429 with Retry-After once spent; whole again after the window", () =>
    Effect.scoped(Effect.gen(function* () {
      const server = yield* ChaosServer.make({ quotas: { "gpt-4o-mini": { rpm: 2, tpm: 1_000, window: "10 seconds" } } })
      const first = yield* chat(server, "gpt-4o-mini", { max_tokens: 50 })
      expect(first.status).toBe(200)
      // "hello there" as user:hello there = 4 prompt tokens + max_tokens 50
      expect(quotaHeaders(first)).toEqual({
        "x-ratelimit-limit-requests": "2",
        "x-ratelimit-remaining-requests": "1",
        "x-ratelimit-reset-requests": "10s",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "946",
        "x-ratelimit-reset-tokens": "10s"
      })
      yield* TestClock.adjust("4 seconds")
      const second = yield* chat(server, "gpt-4o-mini", { max_tokens: 50 })
      expect(second.status).toBe(200)
      expect(second.headers.get("x-ratelimit-remaining-requests")).toBe("0")
      expect(second.headers.get("x-ratelimit-reset-requests")).toBe("6s")
      const refused = yield* chat(server, "gpt-4o-mini", { max_tokens: 50 })
      expect(refused.status).toBe(429)
      expect(quotaHeaders(refused)).toMatchObject({
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-remaining-tokens": "892", // a refused request is charged nothing
        "retry-after-ms": "6000",
        "retry-after": "6"
      })
      // other models have no quota and no headers
      expect(quotaHeaders(yield* chat(server, "gpt-4o"))).toEqual({})
      yield* TestClock.adjust("6 seconds")
      const again = yield* chat(server, "gpt-4o-mini", { max_tokens: 50 })
      expect(again.status).toBe(200)
      expect(again.headers.get("x-ratelimit-remaining-requests")).toBe("1")
      const stats = yield* server.stats
      expect(stats.byOutcome).toEqual({ ok: 4, "error:429": 1 })
    })))

  it.effect("a token quota refuses the request that does not fit (prompt + max_tokens at arrival)", () =>
    Effect.scoped(Effect.gen(function* () {
      const server = yield* ChaosServer.make({ quotas: { m: { tpm: 100 } } })
      expect((yield* chat(server, "m", { max_tokens: 60 })).status).toBe(200) // 64 of 100
      const refused = yield* chat(server, "m", { max_tokens: 60 })
      expect(refused.status).toBe(429)
      expect(refused.headers.get("x-ratelimit-remaining-tokens")).toBe("36")
      expect(refused.headers.get("x-ratelimit-remaining-requests")).toBeNull()
      expect(refused.headers.get("retry-after")).toBe("60")
      expect((yield* chat(server, "m", { max_tokens: 30 })).status).toBe(200) // 34 fits in 36
    })))

  it.effect("bad quotas are listed path by path", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(Effect.scoped(ChaosServer.make({
        quotas: { a: {}, b: { rpm: 0, tpm: 1.5 }, c: { rpm: 1, window: "0 millis" } }
      } as unknown as ChaosServer.Options)))
      expect(error._tag).toBe("InvalidOptions")
      if (error._tag !== "InvalidOptions") return
      expect(error.issues.map((i) => i.path).sort()).toEqual(["quotas.a", "quotas.b.rpm", "quotas.b.tpm", "quotas.c.window"])
    }))

  it("writes resets as OpenAI does, and the adapter reads them back", () => {
    expect([20, 1_000, 1_500, 360_000, 3_723_500].map(formatReset)).toEqual(["20ms", "1s", "1.5s", "6m0s", "1h2m3.5s"])
    for (const ms of [20, 1_000, 1_500, 360_000, 3_723_500]) expect(parseReset(formatReset(ms), 0)).toBe(ms)
  })
})
