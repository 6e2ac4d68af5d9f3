import { describe, expect, it } from "@effect/vitest"
import { Duration } from "effect"
import { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError, OpenAIError } from "openai"
import * as Errors from "../../src/internal/openaiErrors.js"

const model = "gpt-4o"

describe("openaiErrors.fromStatus", () => {
  const table: ReadonlyArray<readonly [number, string | undefined, string]> = [
    [400, undefined, "BadRequest"],
    [400, "context_length_exceeded", "ContextTooLong"],
    [400, "content_filter", "ContentFiltered"],
    [400, "content_policy_violation", "ContentFiltered"],
    [422, undefined, "BadRequest"],
    [413, undefined, "BadRequest"],
    [401, undefined, "AuthError"],
    [403, undefined, "AuthError"],
    [404, undefined, "ModelNotFound"],
    [408, undefined, "ServerError"],
    [409, undefined, "ServerError"],
    [429, undefined, "RateLimited"],
    [429, "rate_limit_exceeded", "RateLimited"],
    [429, "insufficient_quota", "QuotaExhausted"],
    [500, undefined, "ServerError"],
    [502, undefined, "ServerError"],
    [503, undefined, "ServerError"],
    [529, undefined, "ServerError"]
  ]
  for (const [status, code, tag] of table) {
    it(`${status}${code ? ` ${code}` : ""} → ${tag}`, () => {
      const error = Errors.fromStatus({ status, code }, model)
      expect(error._tag).toBe(tag)
      expect(error.model).toBe(model)
    })
  }

  it("keeps the status, Retry-After and the safe error fields", () => {
    const server = Errors.fromStatus({ status: 503, retryAfter: Duration.seconds(2) }, model)
    expect(server).toMatchObject({ _tag: "ServerError", status: 503, retryAfter: Duration.seconds(2) })
    const limited = Errors.fromStatus({ status: 429, retryAfter: Duration.millis(300) }, model)
    expect(limited).toMatchObject({ _tag: "RateLimited", source: "provider", retryAfter: Duration.millis(300) })
    const bad = Errors.fromStatus({ status: 400, code: "invalid_value", type: "invalid_request_error", param: "temperature" }, model)
    expect(bad).toMatchObject({ status: 400, code: "invalid_value", type: "invalid_request_error", param: "temperature" })
    const quotaByType = Errors.fromStatus({ status: 429, type: "insufficient_quota" }, model)
    expect(quotaByType._tag).toBe("QuotaExhausted")
  })
})

describe("openaiErrors.fromUnknown", () => {
  const now = Date.UTC(2025, 0, 1)

  it("reads the status, code and Retry-After of an SDK APIError", () => {
    const headers = new Headers({ "retry-after": "4" })
    const error = APIError.generate(429, { error: { code: "rate_limit_exceeded", message: "Slow down, key sk-abc" } }, undefined, headers)
    const mapped = Errors.fromUnknown(error, model, now)
    expect(mapped).toMatchObject({ _tag: "RateLimited", retryAfter: Duration.seconds(4), model })
    // the provider's free text is never copied
    expect(JSON.stringify(mapped)).not.toContain("sk-abc")
    expect(mapped.message).not.toContain("sk-abc")
  })

  it("maps connection failures with their network code", () => {
    const refused = new TypeError("fetch failed", { cause: Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }) })
    expect(Errors.fromUnknown(new APIConnectionError({ cause: refused }), model, now)).toMatchObject({
      _tag: "ConnectionError",
      reason: "ECONNREFUSED"
    })
    expect(Errors.fromUnknown(new APIConnectionTimeoutError(), model, now)).toMatchObject({ _tag: "ConnectionError", reason: "timeout" })
    expect(Errors.fromUnknown(new APIUserAbortError(), model, now)).toMatchObject({ _tag: "ConnectionError", reason: "aborted" })
    const terminated = new TypeError("terminated", { cause: Object.assign(new Error("other side closed"), { code: "UND_ERR_SOCKET" }) })
    expect(Errors.fromUnknown(terminated, model, now)).toMatchObject({ _tag: "ConnectionError", reason: "UND_ERR_SOCKET" })
  })

  it("maps an undecodable body to MalformedResponse", () => {
    let syntax: unknown
    try {
      JSON.parse("{\"id\":")
    } catch (error) {
      syntax = error
    }
    expect(Errors.fromUnknown(syntax, model, now)).toMatchObject({ _tag: "MalformedResponse", reason: "invalid JSON" })
    expect(Errors.fromUnknown(new OpenAIError("no body"), model, now)._tag).toBe("MalformedResponse")
    expect(Errors.fromUnknown(new APIError(undefined, { message: "boom" }, undefined, undefined), model, now)._tag).toBe(
      "MalformedResponse"
    )
  })
})
