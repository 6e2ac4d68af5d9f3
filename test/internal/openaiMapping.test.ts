import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import type OpenAI from "openai"
import * as Mapping from "../../src/internal/openaiMapping.js"
import { ChatRequest } from "../../src/Llm.js"

const chunk = (choices: OpenAI.Chat.ChatCompletionChunk["choices"], usage?: OpenAI.CompletionUsage): OpenAI.Chat.ChatCompletionChunk => ({
  id: "c",
  object: "chat.completion.chunk",
  created: 0,
  model: "gpt-4o-2024-08-06",
  choices,
  ...(usage === undefined ? {} : { usage })
})

const delta = (content: string | undefined, finish: OpenAI.Chat.ChatCompletionChunk.Choice["finish_reason"] = null) =>
  chunk([{ index: 0, delta: content === undefined ? {} : { content }, finish_reason: finish }])

const fresh = (): Mapping.StreamState => ({ received: 0, final: undefined, usage: undefined, model: "gpt-4o" })

describe("openaiMapping.fromCompletion", () => {
  it("a body without choices[0].message is MalformedResponse naming the paths only", () => {
    const result = Mapping.fromCompletion({ id: "x", choices: [{ finish_reason: "stop" }], secret: "text" }, "m")
    expect(Either.isLeft(result)).toBe(true)
    if (Either.isRight(result)) return
    expect(result.left._tag).toBe("MalformedResponse")
    expect(result.left.message).toContain("choices.0.message")
    const empty = Mapping.fromCompletion({ choices: [] }, "m")
    expect(Either.isLeft(empty) && empty.left._tag).toBe("MalformedResponse")
    const text = Mapping.fromCompletion("<html>busy</html>", "m")
    expect(Either.isLeft(text) && text.left._tag).toBe("MalformedResponse")
  })

  it("a body without usage counts 0 / 0 and falls back to the requested model", () => {
    const result = Mapping.fromCompletion({ choices: [{ message: { content: "hi" }, finish_reason: "stop" }] }, "m")
    expect(Either.getOrThrow(result)).toMatchObject({ model: "m", content: "hi", usage: { inputTokens: 0, outputTokens: 0 } })
  })
})

describe("openaiMapping stream state", () => {
  it("holds the finish chunk back until the usage chunk, then ends with both", () => {
    const state = fresh()
    // the opening role delta carries no text: it is not emitted (an empty chunk would count as the stream's start)
    expect(Mapping.onChunk(state, chunk([{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }]))).toBeUndefined()
    expect(Mapping.onChunk(state, delta("Hel"))?.content).toBe("Hel")
    expect(Mapping.onChunk(state, delta("lo", "stop"))).toBeUndefined()
    expect(Mapping.onChunk(state, chunk([], { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 }))).toBeUndefined()
    const last = Either.getOrThrow(Mapping.onEnd(state, "gpt-4o"))
    expect(last).toMatchObject({ content: "lo", finishReason: "stop", usage: { inputTokens: 3, outputTokens: 2 } })
    expect(last.model).toBe("gpt-4o-2024-08-06")
    expect(state.received).toBe(1)
  })

  it("ends without a finish reason → StreamTruncated with the chunks received", () => {
    const state = fresh()
    Mapping.onChunk(state, delta("a"))
    Mapping.onChunk(state, delta("b"))
    const result = Mapping.onEnd(state, "gpt-4o")
    expect(Either.isLeft(result) && result.left).toMatchObject({ _tag: "StreamTruncated", receivedChunks: 2, model: "gpt-4o" })
  })

  it("tool-call deltas are assembled, by index, onto the last chunk", () => {
    const state = fresh()
    const toolDelta = (tool_calls: OpenAI.Chat.ChatCompletionChunk.Choice.Delta["tool_calls"]) =>
      chunk([{ index: 0, delta: { tool_calls }, finish_reason: null }])
    Mapping.onChunk(state, toolDelta([{ index: 0, id: "call_a", type: "function", function: { name: "lookup", arguments: "" } }]))
    Mapping.onChunk(state, toolDelta([{ index: 1, id: "call_b", type: "function", function: { name: "weather", arguments: "{\"c" } }]))
    Mapping.onChunk(state, toolDelta([{ index: 0, function: { arguments: "{\"q\":" } }]))
    Mapping.onChunk(state, toolDelta([{ index: 0, function: { arguments: "\"x\"}" } }, { index: 1, function: { arguments: "ity\":\"Oslo\"}" } }]))
    Mapping.onChunk(state, delta(undefined, "tool_calls"))
    const last = Either.getOrThrow(Mapping.onEnd(state, "gpt-4o"))
    expect(last.finishReason).toBe("tool_calls")
    expect(last.toolCalls).toEqual([
      { id: "call_a", name: "lookup", arguments: "{\"q\":\"x\"}" },
      { id: "call_b", name: "weather", arguments: "{\"city\":\"Oslo\"}" }
    ])
  })

  it("tool-call deltas without an index (some compatible servers): a new id starts the next call, none continues it", () => {
    const state = fresh()
    // the SDK types `index` as required; these servers leave it out
    const toolDelta = (tool_calls: ReadonlyArray<Record<string, unknown>>) =>
      chunk([{ index: 0, delta: { tool_calls: tool_calls as unknown as OpenAI.Chat.ChatCompletionChunk.Choice.Delta["tool_calls"] }, finish_reason: null }])
    Mapping.onChunk(state, toolDelta([{ id: "call_a", type: "function", function: { name: "lookup", arguments: "{\"q\":" } }]))
    Mapping.onChunk(state, toolDelta([{ function: { arguments: "\"x\"}" } }]))
    Mapping.onChunk(state, toolDelta([{ id: "call_b", type: "function", function: { name: "weather", arguments: "{}" } }]))
    Mapping.onChunk(state, delta(undefined, "tool_calls"))
    const last = Either.getOrThrow(Mapping.onEnd(state, "gpt-4o"))
    expect(last.toolCalls).toEqual([
      { id: "call_a", name: "lookup", arguments: "{\"q\":\"x\"}" },
      { id: "call_b", name: "weather", arguments: "{}" }
    ])
  })

  it("a content_filter finish reason → ContentFiltered", () => {
    const state = fresh()
    Mapping.onChunk(state, delta(undefined, "content_filter"))
    const result = Mapping.onEnd(state, "gpt-4o")
    expect(Either.isLeft(result) && result.left._tag).toBe("ContentFiltered")
  })
})

describe("openaiMapping.unsendable", () => {
  const withKey = (idempotencyKey: string) =>
    new ChatRequest({ model: "m", messages: [{ role: "user", content: "hi" }], idempotencyKey })

  it("an idempotency key fetch would refuse as a header is a BadRequest, never quoting the key", () => {
    for (const key of ["a\nb", "a\rb", "a\u0000b", "ключ-42", "emoji-\u{1F600}"]) {
      const error = Mapping.unsendable(withKey(key))
      expect(error).toMatchObject({ _tag: "BadRequest", param: "idempotencyKey", model: "m" })
      expect(error?.message).not.toContain(key)
    }
  })

  it("any key made of printable Latin-1 passes, as does no key", () => {
    for (const key of ["order-42", "a b\tc", "caf\u00e9", "x".repeat(300)]) expect(Mapping.unsendable(withKey(key))).toBeUndefined()
    expect(Mapping.unsendable(new ChatRequest({ model: "m", messages: [] }))).toBeUndefined()
  })
})
