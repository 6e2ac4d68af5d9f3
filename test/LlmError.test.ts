import { describe, expect, it } from "@effect/vitest"
import { Duration, Option, Schema } from "effect"
import * as LlmError from "../src/LlmError.js"

const all: ReadonlyArray<LlmError.LlmError> = [
  new LlmError.RateLimited({ model: "m", retryAfter: Duration.seconds(2) }),
  new LlmError.QuotaExhausted({ model: "m" }),
  new LlmError.ServerError({ model: "m", status: 503 }),
  new LlmError.Timeout({ model: "m", phase: "attempt", after: Duration.seconds(1) }),
  new LlmError.ConnectionError({ model: "m", reason: "ECONNRESET" }),
  new LlmError.BadRequest({ model: "m", status: 400 }),
  new LlmError.ContextTooLong({ model: "m", contextWindow: 10, requestedTokens: 20 }),
  new LlmError.ContentFiltered({ model: "m" }),
  new LlmError.AuthError({ model: "m", status: 401 }),
  new LlmError.ModelNotFound({ model: "m" }),
  new LlmError.MalformedResponse({ model: "m", reason: "invalid JSON" }),
  new LlmError.StreamTruncated({ model: "m", receivedChunks: 2 }),
  new LlmError.CircuitOpen({ model: "m", key: "m", retryAfter: Duration.seconds(30) }),
  new LlmError.BulkheadRejected({ key: "m", maxConcurrent: 1, maxQueue: 0 }),
  new LlmError.BudgetExceeded({ scope: "user", requested: 100, remaining: 5 }),
  new LlmError.IdempotencyConflict({ key: "k", reason: "in-flight" }),
  new LlmError.AllModelsFailed({ failures: [new LlmError.ServerError({ model: "a", status: 500 })] })
]

describe("LlmError", () => {
  it("classifies exactly the six retryable tags", () => {
    const retryable = all.filter(LlmError.isRetryable).map((e) => e._tag)
    expect(retryable).toEqual([
      "RateLimited",
      "ServerError",
      "Timeout",
      "ConnectionError",
      "MalformedResponse",
      "StreamTruncated"
    ])
  })

  it("reads Retry-After from RateLimited, ServerError and CircuitOpen only", () => {
    expect(LlmError.retryAfter(all[0])).toEqual(Option.some(Duration.seconds(2)))
    expect(LlmError.retryAfter(all[2])).toEqual(Option.none())
    expect(LlmError.retryAfter(all[12])).toEqual(Option.some(Duration.seconds(30)))
    expect(LlmError.retryAfter(all[1])).toEqual(Option.none())
  })

  it("round-trips every error through its Schema (so records can cross processes)", () => {
    for (const error of all) {
      const encoded = Schema.encodeSync(LlmError.LlmError)(error)
      const json = JSON.parse(JSON.stringify(encoded))
      const decoded = Schema.decodeUnknownSync(LlmError.LlmError)(json)
      expect(decoded._tag).toBe(error._tag)
      expect(decoded).toEqual(error)
      expect(LlmError.isLlmError(decoded)).toBe(true)
    }
  })

  it("has a readable message on every error", () => {
    for (const error of all) {
      expect(error.message.length).toBeGreaterThan(5)
    }
    expect(all[16].message).toBe("All models failed: a → ServerError")
  })

  it("isLlmError rejects other values", () => {
    expect(LlmError.isLlmError(new Error("x"))).toBe(false)
    expect(LlmError.isLlmError({ _tag: "RateLimited" })).toBe(false)
    expect(LlmError.isLlmError(null)).toBe(false)
  })
})
