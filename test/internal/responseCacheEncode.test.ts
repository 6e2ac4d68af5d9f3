import { describe, expect, it } from "vitest"
import { Option, Schema } from "effect"
import { encodeResponse, ResponseFields } from "../../src/internal/responseCache.js"
import { ChatResponse } from "../../src/Llm.js"

const full = new ChatResponse({
  id: "r1",
  model: "gpt-4o-mini",
  content: "Paris",
  finishReason: "tool_calls",
  usage: { inputTokens: 12, outputTokens: 3, estimated: true, cachedInputTokens: 4, reasoningTokens: 2, cacheWriteInputTokens: 1 },
  servedFrom: "provider",
  toolCalls: [{ id: "c1", name: "lookup", arguments: "{\"q\":\"x\"}" }],
  deployment: "east"
})

describe("the response cache's encoding of a ChatResponse instance", () => {
  it("is exactly the Schema encoding, for a response with every field set and one with only the required ones", () => {
    const minimal = new ChatResponse({
      id: "r2", model: "m", content: "", finishReason: "stop", usage: { inputTokens: 0, outputTokens: 0 }, servedFrom: "cache"
    })
    for (const response of [full, minimal]) {
      expect(encodeResponse(response)).toEqual(Schema.encodeUnknownOption(ResponseFields)(response))
    }
  })

  it("covers every field of ChatResponse and of its usage (a field added later fails here until it is copied)", () => {
    const encoded = Option.getOrThrow(encodeResponse(full)) as unknown as Record<string, Record<string, unknown>>
    expect(Object.keys(encoded).sort()).toEqual(Object.keys(ChatResponse.fields).sort())
    const usageFields = Object.keys((ChatResponse.fields.usage as unknown as { fields: object }).fields).sort()
    expect(Object.keys(encoded.usage).sort()).toEqual(usageFields)
  })
})
