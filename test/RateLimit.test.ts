import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Fiber, Layer, Metric, Option, Stream, TestClock } from "effect"
import * as FakeLlm from "../src/FakeLlm.js"
import { makeMemoryStore } from "../src/internal/rateLimitStore.js"
import { ChatRequest } from "../src/Llm.js"
import * as LlmClient from "../src/LlmClient.js"
import * as LlmError from "../src/LlmError.js"
import * as LlmMetrics from "../src/LlmMetrics.js"
import * as RateLimit from "../src/RateLimit.js"
import * as Tokenizer from "../src/Tokenizer.js"

const request = (options: { model?: string; user?: string; maxTokens?: number; content?: string } = {}) =>
  new ChatRequest({
    model: options.model ?? "gpt-4o",
    messages: [{ role: "user", content: options.content ?? "hi" }],
    ...(options.user === undefined ? {} : { user: options.user }),
    ...(options.maxTokens === undefined ? {} : { maxTokens: options.maxTokens })
  })

const limited = (options: RateLimit.Options, extra: Layer.Layer<never> = Layer.empty) => {
  const fake = FakeLlm.layer(FakeLlm.reply("ok"))
  const decorated = LlmClient.layerWith(RateLimit.policy(options)).pipe(Layer.provide(fake))
  return Layer.merge(fake, decorated).pipe(Layer.provide(RateLimit.layerStoreMemory), Layer.provide(extra))
}

const callTimes = Effect.map(FakeLlm.calls, (calls) => calls.map((c) => c.at))

const rateLimitedCount = (labels: Record<string, string>) =>
  Metric.value(Object.entries(labels).reduce((m, [k, v]) => Metric.tagged(m, k, v), LlmMetrics.rateLimited)).pipe(
    Effect.map((s) => s.count)
  )

describe("RateLimit requests per minute", () => {
  it.effect("wait: a burst of rpm passes at once, the next waits one refill (60 s / rpm)", () =>
    Effect.gen(function* () {
      const fiber = yield* Effect.fork(Effect.replicateEffect(LlmClient.complete(request()), 3))
      yield* TestClock.adjust("29999 millis")
      expect(yield* callTimes).toEqual([0, 0])
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(fiber)
      expect(yield* callTimes).toEqual([0, 0, 30_000])
    }).pipe(Effect.provide(limited({ rpm: 2, onLimit: "wait" }))))

  it.effect("refills after the window without accumulating beyond the limit", () =>
    Effect.gen(function* () {
      yield* LlmClient.complete(request())
      yield* LlmClient.complete(request())
      yield* TestClock.adjust("5 minutes")
      const fiber = yield* Effect.fork(Effect.replicateEffect(LlmClient.complete(request()), 3))
      yield* TestClock.adjust("30 seconds")
      yield* Fiber.join(fiber)
      // two at once (a full burst, not ten), the third one refill later
      expect(yield* callTimes).toEqual([0, 0, 300_000, 300_000, 330_000])
    }).pipe(Effect.provide(limited({ rpm: 2 }))))

  it.effect("fail: the request over the limit fails with RateLimited from the client and its retryAfter", () =>
    Effect.gen(function* () {
      const before = yield* rateLimitedCount({ key: "model", action: "rejected" })
      yield* LlmClient.complete(request())
      yield* LlmClient.complete(request())
      const error = yield* Effect.flip(LlmClient.complete(request()))
      expect(error._tag).toBe("RateLimited")
      if (error._tag === "RateLimited") {
        expect(error.source).toBe("client")
        expect(error.model).toBe("gpt-4o")
        expect(Duration.toMillis(error.retryAfter!)).toBe(30_000)
      }
      expect(yield* callTimes).toEqual([0, 0])
      expect((yield* rateLimitedCount({ key: "model", action: "rejected" })) - before).toBe(1)
      yield* TestClock.adjust("30 seconds")
      yield* LlmClient.complete(request())
      expect(yield* callTimes).toEqual([0, 0, 30_000])
    }).pipe(Effect.provide(limited({ rpm: 2, onLimit: "fail" }))))

  it.effect("per user: one user's limit does not touch another's; no user id becomes a metric label", () =>
    Effect.gen(function* () {
      yield* LlmClient.complete(request({ user: "alice@example.com" }))
      const refused = yield* Effect.flip(LlmClient.complete(request({ user: "alice@example.com" })))
      expect(refused._tag).toBe("RateLimited")
      yield* LlmClient.complete(request({ user: "bob@example.com" }))
      expect((yield* FakeLlm.calls).map((c) => c.request.user)).toEqual(["alice@example.com", "bob@example.com"])
      const pairs = yield* Metric.snapshot
      const labelValues = pairs.flatMap((p) => p.metricKey.tags.map((t) => t.value))
      expect(labelValues.some((v) => v.includes("alice") || v.includes("bob"))).toBe(false)
      expect((yield* rateLimitedCount({ key: "user", action: "rejected" }))).toBeGreaterThan(0)
    }).pipe(Effect.provide(limited({ rpm: 1, per: "user", onLimit: "fail" }))))

  it.effect("per model and per custom key are isolated; global is shared", () =>
    Effect.gen(function* () {
      const perModel = limited({ rpm: 1, per: "model", onLimit: "fail" })
      yield* Effect.provide(
        Effect.gen(function* () {
          yield* LlmClient.complete(request({ model: "gpt-4o" }))
          yield* LlmClient.complete(request({ model: "gpt-4o-mini" }))
          expect((yield* Effect.flip(LlmClient.complete(request({ model: "gpt-4o" }))))._tag).toBe("RateLimited")
        }),
        perModel
      )
      const perTenant = limited({ rpm: 1, per: (r) => r.metadata?.tenant ?? "none", onLimit: "fail" })
      yield* Effect.provide(
        Effect.gen(function* () {
          const tenant = (t: string) =>
            new ChatRequest({ model: "m", messages: [{ role: "user", content: "x" }], metadata: { tenant: t } })
          yield* LlmClient.complete(tenant("a"))
          yield* LlmClient.complete(tenant("b"))
          expect((yield* Effect.flip(LlmClient.complete(tenant("a"))))._tag).toBe("RateLimited")
        }),
        perTenant
      )
      const global = limited({ rpm: 1, per: "global", onLimit: "fail" })
      yield* Effect.provide(
        Effect.gen(function* () {
          yield* LlmClient.complete(request({ model: "gpt-4o", user: "a" }))
          expect((yield* Effect.flip(LlmClient.complete(request({ model: "o3", user: "b" }))))._tag).toBe("RateLimited")
        }),
        global
      )
    }))

  it.effect("maxWait: a wait longer than the cap fails and gives its slot back", () =>
    Effect.gen(function* () {
      yield* LlmClient.complete(request())
      const error = yield* Effect.flip(LlmClient.complete(request()))
      expect(error._tag).toBe("RateLimited")
      if (error._tag === "RateLimited") expect(Duration.toMillis(error.retryAfter!)).toBe(60_000)
      yield* TestClock.adjust("60 seconds")
      yield* LlmClient.complete(request()) // immediate: the refused call used nothing
      expect(yield* callTimes).toEqual([0, 60_000])
    }).pipe(Effect.provide(limited({ rpm: 1, maxWait: "10 seconds" }))))

  it.effect("a caller interrupted while waiting gives its slot back", () =>
    Effect.gen(function* () {
      yield* LlmClient.complete(request())
      const waiting = yield* Effect.fork(LlmClient.complete(request()))
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.interrupt(waiting)
      yield* TestClock.adjust("50 seconds")
      const next = yield* Effect.fork(LlmClient.complete(request()))
      yield* TestClock.adjust("0 millis")
      expect(Option.isSome(yield* Fiber.poll(next))).toBe(true)
      expect(yield* callTimes).toEqual([0, 60_000])
    }).pipe(Effect.provide(limited({ rpm: 1 }))))

  it.effect("a caller interrupted during admission, before its call, gives back every slot it took", () => {
    // A store whose tpm step is slow: the caller is interrupted after its rpm slot is taken, mid tpm step.
    const { store } = makeMemoryStore()
    const slowTpm = Layer.succeed(RateLimit.RateLimiterStore, {
      fixedWindow: store.fixedWindow,
      tokenBucket: (o) =>
        o.key.includes(":tpm:") && o.tokens > 0 ? Effect.delay(store.tokenBucket(o), "1 second") : store.tokenBucket(o)
    })
    const fake = FakeLlm.layer(FakeLlm.reply("ok"))
    const decorated = LlmClient.layerWith(RateLimit.policy({ rpm: 1, tpm: 1000, onLimit: "fail" })).pipe(
      Layer.provide(fake)
    )
    return Effect.gen(function* () {
      const fiber = yield* Effect.fork(LlmClient.complete(request()))
      yield* TestClock.adjust("500 millis")
      const interrupting = yield* Effect.fork(Fiber.interrupt(fiber))
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(interrupting)
      expect(yield* FakeLlm.calls).toHaveLength(0)
      // rpm 1: the next call is admitted only if the interrupted one gave its request slot back
      const next = yield* Effect.fork(LlmClient.complete(request()))
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(next)
      expect(yield* callTimes).toEqual([2_500])
    }).pipe(Effect.provide(Layer.merge(fake, decorated).pipe(Layer.provide(slowTpm))))
  })

  it.effect("streams are limited when they start", () =>
    Effect.gen(function* () {
      yield* Stream.runDrain(LlmClient.stream(request()))
      const error = yield* Effect.flip(Stream.runDrain(LlmClient.stream(request())))
      expect(error._tag).toBe("RateLimited")
    }).pipe(Effect.provide(limited({ rpm: 1, onLimit: "fail" }))))
})

describe("RateLimit tokens per minute", () => {
  // Without a Tokenizer: prompt ≈ 3 (priming) + 3 (framing) + ⌈2 / 4⌉ = 7 tokens, + maxTokens 40 = 47 a request.
  it.effect("wait: charges prompt + maxTokens and waits for the deficit to refill (60 s / tpm a token)", () =>
    Effect.gen(function* () {
      const fiber = yield* Effect.fork(Effect.replicateEffect(LlmClient.complete(request({ maxTokens: 40 })), 3))
      yield* TestClock.adjust("1 minute")
      yield* Fiber.join(fiber)
      // after two requests 100 − 94 = 6 tokens are left; 41 more take 41 × 600 ms
      expect(yield* callTimes).toEqual([0, 0, 24_600])
    }).pipe(Effect.provide(limited({ tpm: 100 }))))

  it.effect("fail: retryAfter is the time to refill the deficit", () =>
    Effect.gen(function* () {
      yield* LlmClient.complete(request({ maxTokens: 40 }))
      yield* LlmClient.complete(request({ maxTokens: 40 }))
      const error = yield* Effect.flip(LlmClient.complete(request({ maxTokens: 40 })))
      expect(error._tag).toBe("RateLimited")
      if (error._tag === "RateLimited") expect(Duration.toMillis(error.retryAfter!)).toBe(24_600)
    }).pipe(Effect.provide(limited({ tpm: 100, onLimit: "fail" }))))

  it.effect("counts prompt tokens exactly with the Tokenizer in context", () =>
    Effect.gen(function* () {
      // exact: 3 (framing) + 1 (role) + 1 ("hi") + 3 (priming) = 8, + 40 = 48 a request; 100 − 96 = 4 left
      yield* LlmClient.complete(request({ maxTokens: 40 }))
      yield* LlmClient.complete(request({ maxTokens: 40 }))
      const error = yield* Effect.flip(LlmClient.complete(request({ maxTokens: 40 })))
      if (error._tag === "RateLimited") expect(Duration.toMillis(error.retryAfter!)).toBe(44 * 600)
      else expect.fail(error._tag)
    }).pipe(Effect.provide(limited({ tpm: 100, onLimit: "fail" }, Tokenizer.layer))))

  it.effect("a refused tpm request does not use up its rpm slot", () =>
    Effect.gen(function* () {
      yield* LlmClient.complete(request({ maxTokens: 90 })) // 97 tokens: 3 left; 1 of 2 requests left
      const error = yield* Effect.flip(LlmClient.complete(request({ maxTokens: 90 })))
      expect(error._tag).toBe("RateLimited")
      // 3 s refill 5 tokens (8 in all) but no request slot (one takes 30 s): the small call passes only if the
      // refused call gave its request slot back
      yield* TestClock.adjust("3 seconds")
      yield* LlmClient.complete(request({ maxTokens: 1 }))
      expect(yield* callTimes).toEqual([0, 3_000])
    }).pipe(Effect.provide(limited({ rpm: 2, tpm: 100, onLimit: "fail" }))))

  it.effect("a request larger than the whole tpm fails with BadRequest request_too_large", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(LlmClient.complete(request({ maxTokens: 500 })))
      expect(error._tag).toBe("BadRequest")
      if (error._tag === "BadRequest") expect(error.code).toBe("request_too_large")
      expect(yield* FakeLlm.calls).toHaveLength(0)
    }).pipe(Effect.provide(limited({ tpm: 100 }))))
})

describe("RateLimit memory store", () => {
  it.effect("forgets keys whose bucket has refilled, so per-user keys do not pile up", () =>
    Effect.gen(function* () {
      const { size, store } = makeMemoryStore()
      const take = (key: string) =>
        store.tokenBucket({ key, tokens: 1, limit: 10, refillRate: Duration.seconds(6), allowOverflow: false })
      for (let minute = 0; minute < 10; minute++) {
        for (let user = 0; user < 3000; user++) yield* take(`user:${minute}-${user}`)
        yield* TestClock.adjust("1 minute")
      }
      // 30,000 users over ten minutes; at most two minutes' worth (live keys, plus one doubling) are held.
      expect(size()).toBeLessThanOrEqual(6000)
      // A forgotten key starts full again: exactly `limit` tokens, then a refusal.
      const results = yield* Effect.forEach(Array.from({ length: 11 }), () => take("user:0-0"))
      expect(results.slice(0, 10).every((remaining) => remaining >= 0)).toBe(true)
      expect(results[10]).toBeLessThan(0)
    }))

  it.effect("a refund never fills a bucket beyond its limit", () =>
    Effect.gen(function* () {
      const { store } = makeMemoryStore()
      const bucket = (tokens: number) =>
        store.tokenBucket({ key: "k", tokens, limit: 2, refillRate: Duration.seconds(30), allowOverflow: true })
      yield* bucket(1)
      yield* TestClock.adjust("1 minute")
      yield* bucket(-1) // a late refund after the bucket refilled
      expect(yield* bucket(1)).toBe(1)
      expect(yield* bucket(1)).toBe(0)
      expect(yield* bucket(1)).toBe(-1)
    }))
})

/**
 * A provider that keeps `rpm` requests (and `tpm` tokens: prompt + maxTokens, as OpenAI counts) a 10-second window
 * on the Effect clock and reports x-ratelimit-* headers on every answer and 429, as a real one does.
 */
const quotaProvider = (quota: { readonly rpm?: number; readonly tpm?: number }) => {
  let window = { start: 0, requests: 0, tokens: 0 }
  let rejected = 0
  const step = (r: ChatRequest) =>
    Effect.flatMap(Effect.clock, (clock) => {
      const now = clock.unsafeCurrentTimeMillis()
      if (now >= window.start + 10_000) window = { start: now, requests: 0, tokens: 0 }
      const tokens = 7 + (r.maxTokens ?? 0)
      const fits = (quota.rpm === undefined || window.requests < quota.rpm) &&
        (quota.tpm === undefined || window.tokens + tokens <= quota.tpm)
      if (fits) window = { ...window, requests: window.requests + 1, tokens: window.tokens + tokens }
      const reset = `${window.start + 10_000 - now}ms`
      const headers: Record<string, string> = {}
      if (quota.rpm !== undefined) {
        Object.assign(headers, { "x-ratelimit-remaining-requests": String(quota.rpm - window.requests), "x-ratelimit-reset-requests": reset })
      }
      if (quota.tpm !== undefined) {
        Object.assign(headers, { "x-ratelimit-remaining-tokens": String(quota.tpm - window.tokens), "x-ratelimit-reset-tokens": reset })
      }
      return Effect.zipRight(
        RateLimit.reportQuotaHeaders(headers),
        fits ? Effect.void : Effect.sync(() => rejected++).pipe(Effect.zipRight(Effect.fail(new LlmError.RateLimited({}))))
      )
    })
  const layer = (options: RateLimit.Options) => {
    const fake = FakeLlm.layer(FakeLlm.reply("ok"))
    const wrapped = Layer.effect(LlmClient.LlmClient, Effect.map(LlmClient.LlmClient, (inner): LlmClient.Service => ({
      complete: (r) => Effect.zipRight(step(r), inner.complete(r)),
      stream: (r) => Stream.unwrap(Effect.as(step(r), inner.stream(r)))
    }))).pipe(Layer.provide(fake))
    const decorated = LlmClient.layerWith(RateLimit.policy(options)).pipe(Layer.provide(wrapped))
    return Layer.merge(fake, decorated).pipe(Layer.provide(RateLimit.layerStoreMemory))
  }
  return { layer, rejected: () => rejected }
}

describe("RateLimit providerQuota", () => {
  it.effect("wait: a spent quota is waited out before sending (until the headers' reset), so no call meets a 429", () => {
    const provider = quotaProvider({ rpm: 2 })
    return Effect.gen(function* () {
      const fiber = yield* Effect.fork(Effect.replicateEffect(LlmClient.complete(request()), 5))
      yield* TestClock.adjust("9999 millis")
      expect(yield* callTimes).toEqual([0, 0])
      yield* TestClock.adjust("1 millis")
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.join(fiber)
      expect(yield* callTimes).toEqual([0, 0, 10_000, 10_000, 20_000])
      expect(provider.rejected()).toBe(0)
      expect(yield* rateLimitedCount({ key: "model", action: "waited" })).toBeGreaterThanOrEqual(2)
    }).pipe(Effect.provide(provider.layer({ providerQuota: true })))
  })

  it.effect("fail: RateLimited from the client with the time until the reset, nothing sent", () => {
    const provider = quotaProvider({ rpm: 1 })
    return Effect.gen(function* () {
      yield* LlmClient.complete(request())
      yield* TestClock.adjust("4 seconds")
      const error = yield* Effect.flip(LlmClient.complete(request()))
      expect(error._tag).toBe("RateLimited")
      if (error._tag !== "RateLimited") return
      expect(error.source).toBe("client")
      expect(Option.map(LlmError.retryAfter(error), Duration.toMillis)).toEqual(Option.some(6_000))
      expect((yield* FakeLlm.calls).length).toBe(1)
      expect(provider.rejected()).toBe(0)
    }).pipe(Effect.provide(provider.layer({ providerQuota: true, onLimit: "fail" })))
  })

  it.effect("tokens: a call the remaining tokens cannot hold waits for the reset; a small one goes at once", () => {
    const provider = quotaProvider({ tpm: 100 })
    return Effect.gen(function* () {
      yield* LlmClient.complete(request({ maxTokens: 60 })) // 67 of 100: 33 left
      yield* LlmClient.complete(request({ maxTokens: 20 })) // 27 fits: 6 left
      const big = yield* Effect.fork(LlmClient.complete(request({ maxTokens: 40 })))
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.join(big)
      expect(yield* callTimes).toEqual([0, 0, 10_000])
      expect(provider.rejected()).toBe(0)
    }).pipe(Effect.provide(provider.layer({ providerQuota: true })))
  })

  it.effect("without it the provider's 429 is the first the client hears of a full quota", () => {
    const provider = quotaProvider({ rpm: 1 })
    return Effect.gen(function* () {
      yield* LlmClient.complete(request())
      expect((yield* Effect.flip(LlmClient.complete(request())))._tag).toBe("RateLimited")
      expect(provider.rejected()).toBe(1)
    }).pipe(Effect.provide(provider.layer({ rpm: 1_000 })))
  })
})

describe("RateLimit options", () => {
  it.effect("lists every failing path", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(RateLimit.policy({
        rpm: -1,
        tpm: 1.5,
        per: "tenant" as never,
        onLimit: "queue" as never,
        maxWait: "soon" as never,
        tpmCharge: "all" as never,
        providerQuota: "yes" as never
      }))
      expect(error._tag).toBe("InvalidOptions")
      expect(error.issues.map((i) => i.path).sort()).toEqual(["maxWait", "onLimit", "per", "providerQuota", "rpm", "tpm", "tpmCharge"])
      // providerQuota alone is a limit
      yield* RateLimit.policy({ providerQuota: true })
      const neither = yield* Effect.flip(RateLimit.policy({ per: "model" }))
      expect(neither.issues.map((i) => i.path)).toEqual(["rpm"])
      // A misspelt option is reported (here it would have silently switched "fail" back to the default "wait").
      const typo = yield* Effect.flip(RateLimit.policy({ rpm: 10, onlimit: "fail" } as never))
      expect(typo.issues.map((i) => i.path)).toEqual(["onlimit"])
    }).pipe(Effect.provide(RateLimit.layerStoreMemory)))
})
