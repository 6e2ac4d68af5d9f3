import { describe, expect, it } from "@effect/vitest"
import { Duration, Either } from "effect"
import * as fc from "fast-check"
import * as Content from "../../src/internal/chaosContent.js"
import * as Faults from "../../src/internal/chaosFaults.js"
import { forRequest, mulberry32 } from "../../src/internal/chaosRandom.js"

const faults = (input: unknown): Faults.Faults => Either.getOrThrow(Faults.decodeStrict(Faults.Faults, input))

describe("chaosRandom", () => {
  it("mulberry32 is deterministic, in [0, 1), and seeds differ", () => {
    const a = mulberry32(42)
    const b = mulberry32(42)
    const c = mulberry32(43)
    const xs = Array.from({ length: 1000 }, () => a())
    expect(Array.from({ length: 1000 }, () => b())).toEqual(xs)
    expect(Array.from({ length: 1000 }, () => c())).not.toEqual(xs)
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true)
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length
    expect(mean).toBeGreaterThan(0.45)
    expect(mean).toBeLessThan(0.55)
  })

  it("the generator of request n depends only on the seed and n", () => {
    expect(forRequest(7, 3)()).toBe(forRequest(7, 3)())
    expect(forRequest(7, 3)()).not.toBe(forRequest(7, 4)())
    expect(forRequest(7, 3)()).not.toBe(forRequest(8, 3)())
  })
})

describe("chaosFaults.decide", () => {
  const set = faults({
    hangRate: 0.1,
    errors: [{ status: 503, rate: 0.2 }, { status: 429, rate: 0.1 }],
    malformedRate: 0.1,
    cutRate: 0.05,
    contentFilterRate: 0.05
  })

  it("splits the unit interval in order: hang, errors, malformed, cut, filtered, ok", () => {
    const label = (u: number) => Faults.outcomeLabel(Faults.decide(set, u))
    expect([0, 0.099, 0.101, 0.299, 0.301, 0.399, 0.401, 0.499, 0.501, 0.549, 0.551, 0.599, 0.601, 0.999].map(label)).toEqual([
      "hang", "hang", "error:503", "error:503", "error:429", "error:429", "malformed", "malformed",
      "cut", "cut", "filtered", "filtered", "ok", "ok"
    ])
  })

  it("each rate is the frequency of its outcome over a seeded run", () => {
    const counts: Record<string, number> = {}
    const n = 20_000
    for (let i = 0; i < n; i++) {
      const label = Faults.outcomeLabel(Faults.decide(set, forRequest(1, i)()))
      counts[label] = (counts[label] ?? 0) + 1
    }
    const expected = { hang: 0.1, "error:503": 0.2, "error:429": 0.1, malformed: 0.1, cut: 0.05, filtered: 0.05, ok: 0.4 }
    for (const [label, rate] of Object.entries(expected)) expect(Math.abs(counts[label] / n - rate)).toBeLessThan(0.015)
  })

  it("an outage wins over every rate and defaults to 503", () => {
    const down = faults({ outage: {}, errors: [{ status: 429, rate: 1 }] })
    for (const u of [0, 0.5, 0.99]) expect(Faults.decide(down, u)).toMatchObject({ _tag: "error", error: { status: 503 } })
    const custom = faults({ outage: { status: 502, retryAfter: { seconds: 1 } } })
    expect(Faults.decide(custom, 0.3)).toMatchObject({ error: { status: 502, retryAfter: { seconds: 1 } } })
  })

  it("no faults: every request is ok", () => {
    fc.assert(fc.property(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (u) => Faults.decide({}, u)._tag === "ok"))
  })

  it("per-model settings override the defaults field by field", () => {
    const config = Either.getOrThrow(Faults.decodeStrict(Faults.FaultConfig, {
      faults: { latency: 10, errors: [{ status: 503, rate: 0.5 }] },
      perModel: { cheap: { errors: [] } }
    }))
    expect(Faults.resolve(config, "cheap").errors).toEqual([])
    expect(Duration.toMillis(Faults.resolve(config, "cheap").latency ?? Duration.zero)).toBe(10)
    expect(Faults.resolve(config, "other").errors).toHaveLength(1)
  })

  it("the delay is latency plus a uniform share of jitter", () => {
    const slow = faults({ latency: "10 millis", jitter: 20 })
    expect(Duration.toMillis(Faults.delayOf(slow, 0))).toBe(10)
    expect(Duration.toMillis(Faults.delayOf(slow, 0.5))).toBe(20)
    expect(Duration.toMillis(Faults.delayOf({}, 0.9))).toBe(0)
  })
})

describe("chaosFaults validation", () => {
  it("explicit undefined fields read as left out", () => {
    expect(Either.isRight(Faults.decodeStrict(Faults.Options, { port: undefined, faults: { hangRate: undefined } }))).toBe(true)
  })

  it("rejects unknown keys (a misspelt option is not silently ignored)", () => {
    const result = Faults.decodeStrict(Faults.Options, { faults: { hangrate: 0.5 } })
    expect(Either.isLeft(result) && result.left.issues.map((i) => i.path)).toEqual(["faults.hangrate"])
  })

  it("rejects per-model overrides whose rates, merged over the defaults, add up to more than 1", () => {
    const input = {
      faults: { errors: [{ status: 503, rate: 0.3 }] },
      perModel: { fine: { hangRate: 0.7 }, over: { hangRate: 0.8 }, replaced: { errors: [], hangRate: 0.9 } }
    }
    for (const schema of [Faults.FaultConfig, Faults.Options]) {
      const result = Faults.decodeStrict(schema, input)
      expect(Either.isLeft(result) && result.left.issues.map((i) => i.path)).toEqual(["perModel.over"])
      expect(Either.isLeft(result) && result.left.message).toContain("merged")
    }
  })

  it("a model named like an Object.prototype key gets the defaults", () => {
    const config = Either.getOrThrow(Faults.decodeStrict(Faults.FaultConfig, { faults: { hangRate: 0.5 } }))
    for (const model of ["constructor", "toString", "__proto__", "hasOwnProperty"]) {
      expect(Faults.resolve(config, model)).toEqual({ hangRate: 0.5 })
    }
  })

  it("a Retry-After is finite (and a date within Date's range)", () => {
    const result = Faults.decodeStrict(Faults.Faults, {
      errors: [
        { status: 503, rate: 0.1, retryAfter: { seconds: Infinity } },
        { status: 503, rate: 0.1, retryAfter: { date: 1e20 } },
        { status: 503, rate: 0.1, retryAfter: { ms: Number.NaN } }
      ]
    })
    expect(Either.isLeft(result) && result.left.issues.map((i) => i.path)).toEqual([
      "errors.0.retryAfter.seconds",
      "errors.1.retryAfter.date",
      "errors.2.retryAfter.ms"
    ])
  })

  it("a Retry-After names exactly one of seconds, ms or date", () => {
    const result = Faults.decodeStrict(Faults.Faults, { errors: [{ status: 503, rate: 0.1, retryAfter: { seconds: 1, ms: 5 } }] })
    expect(Either.isLeft(result) && result.left.issues.map((i) => i.path)).toEqual(["errors.0.retryAfter"])
  })
})

describe("chaosContent", () => {
  it("answers depend on the seed and the prompt only", () => {
    const base = { seed: 1, prompt: "user:hi", words: 5, json: false, maxTokens: undefined }
    expect(Content.answer(base)).toEqual(Content.answer(base))
    expect(Content.answer(base).content).not.toBe(Content.answer({ ...base, seed: 2 }).content)
    expect(Content.answer(base).content).not.toBe(Content.answer({ ...base, prompt: "user:hello" }).content)
    expect(Content.answer(base).content.split(" ")).toHaveLength(5)
  })

  it("pieces join back to the content", () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 50 }), fc.string(), fc.boolean(), (words, prompt, json) => {
      const { content } = Content.answer({ seed: 3, prompt, words, json, maxTokens: undefined })
      return Content.pieces(content).join("") === content
    }))
  })

  it("error bodies follow the code, else the status", () => {
    expect(Content.errorBody(429, "insufficient_quota", "m").error).toMatchObject({ code: "insufficient_quota", type: "insufficient_quota" })
    expect(Content.errorBody(429, undefined, "m").error).toMatchObject({ code: "rate_limit_exceeded", type: "requests" })
    expect(Content.errorBody(400, "context_length_exceeded", "m").error.code).toBe("context_length_exceeded")
    expect(Content.errorBody(503, undefined, "m").error).toMatchObject({ type: "server_error", code: null })
    expect(Content.errorBody(418, "custom", "m").error).toMatchObject({ type: "invalid_request_error", code: "custom" })
  })
})
