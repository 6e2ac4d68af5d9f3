import { describe, expect, it } from "@effect/vitest"
import { Schema } from "effect"
import fc from "fast-check"
import {
  ANONYMOUS_SCOPE,
  answeredByRequestedModel,
  canonicalJson,
  defaultScope,
  isDeterministic,
  requestHash,
  scopedKey
} from "../../src/internal/requestKey.js"
import { ChatRequest } from "../../src/Llm.js"

const decodeRequest = Schema.decodeUnknownSync(ChatRequest)

const base = {
  model: "gpt-4o",
  messages: [
    { role: "system", content: "You are terse." },
    { role: "user", content: "Capital of France?", name: "alice" }
  ],
  temperature: 0,
  tools: [{ name: "lookup", description: "find", parameters: { type: "object", properties: { q: { type: "string" }, n: { type: "integer" } } } }],
  responseFormat: { type: "json_schema", jsonSchema: { name: "answer", schema: { type: "object", required: ["a"] } } }
}

/** Rebuilds every plain object with its keys in the order `order` gives (a permutation seed). */
const permuteKeys = (value: unknown, seed: number): unknown => {
  if (Array.isArray(value)) return value.map((v, i) => permuteKeys(v, seed + i))
  if (value === null || typeof value !== "object") return value
  const entries = Object.entries(value as Record<string, unknown>)
  const rotated = entries.map((_, i) => entries[(i + seed) % entries.length])
  if (seed % 2 === 1) rotated.reverse()
  return Object.fromEntries(rotated.map(([k, v]) => [k, permuteKeys(v, seed * 7 + 3)]))
}

// One change per output-affecting field; each must change the hash.
const changes: ReadonlyArray<readonly [string, (r: Record<string, any>) => Record<string, any>]> = [
  ["model", (r) => ({ ...r, model: "gpt-4o-mini" })],
  ["message content", (r) => ({ ...r, messages: [r.messages[0], { ...r.messages[1], content: "Capital of Spain?" }] })],
  ["message role", (r) => ({ ...r, messages: [{ ...r.messages[0], role: "user" }, r.messages[1]] })],
  ["message name", (r) => ({ ...r, messages: [r.messages[0], { ...r.messages[1], name: "bob" }] })],
  ["message order", (r) => ({ ...r, messages: [r.messages[1], r.messages[0]] })],
  ["tool calls", (r) => ({
    ...r,
    messages: [...r.messages, { role: "assistant", content: "", toolCalls: [{ id: "c1", name: "lookup", arguments: "{}" }] }]
  })],
  ["tool call id", (r) => ({ ...r, messages: [...r.messages, { role: "tool", content: "x", toolCallId: "c1" }] })],
  ["temperature", (r) => ({ ...r, temperature: 0.2 })],
  ["topP", (r) => ({ ...r, topP: 0.5 })],
  ["seed", (r) => ({ ...r, seed: 7 })],
  ["maxTokens", (r) => ({ ...r, maxTokens: 10 })],
  ["stop", (r) => ({ ...r, stop: ["\n"] })],
  ["presencePenalty", (r) => ({ ...r, presencePenalty: 0.5 })],
  ["frequencyPenalty", (r) => ({ ...r, frequencyPenalty: -0.5 })],
  ["responseFormat", (r) => ({ ...r, responseFormat: { type: "json_object" } })],
  ["json schema", (r) => ({ ...r, responseFormat: { type: "json_schema", jsonSchema: { name: "answer", schema: { type: "array" } } } })],
  ["tools", (r) => ({ ...r, tools: [{ name: "search" }] })],
  ["tool parameters", (r) => ({ ...r, tools: [{ ...r.tools[0], parameters: { type: "object" } }] })],
  ["toolChoice", (r) => ({ ...r, toolChoice: "required" })]
]

describe("requestKey", () => {
  it("canonical JSON sorts keys at every depth and drops undefined members", () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { f: 2, e: 3 }], c: undefined } })).toBe('{"a":{"d":[1,{"e":3,"f":2}]},"b":1}')
  })

  it("canonical JSON is exactly JSON.stringify with every object's keys sorted (the keys of stored entries never move)", () => {
    // The former definition, through a replacer: a stored cache or idempotency key must stay the same.
    const sortedKeys = (_key: string, value: unknown): unknown => {
      if (typeof value !== "object" || value === null || Array.isArray(value)) return value
      const sorted: Record<string, unknown> = Object.create(null)
      for (const key of Object.keys(value).sort()) sorted[key] = (value as Record<string, unknown>)[key]
      return sorted
    }
    const reference = (value: unknown) => JSON.stringify(value, sortedKeys) ?? "null"
    const leaf = fc.oneof(
      fc.string(),
      fc.double(),
      fc.integer(),
      fc.boolean(),
      fc.constant(null),
      fc.constant(undefined),
      fc.constant(-0),
      fc.constant(() => 1),
      fc.date({ noInvalidDate: true }),
      fc.constant({ toJSON: (key: string) => ({ z: key, a: [undefined] }) })
    )
    const { tree } = fc.letrec((tie) => ({
      tree: fc.oneof({ depthSize: "small" }, leaf, fc.array(tie("tree")), fc.dictionary(fc.oneof(fc.string(), fc.nat().map(String), fc.constantFrom("4294967294", "4294967295", "01", "-1")), tie("tree")))
    }))
    fc.assert(fc.property(tree, (value) => {
      expect(canonicalJson(value)).toBe(reference(value))
    }), { numRuns: 2000 })
    expect(canonicalJson({ ["__proto__"]: 1, b: [Number.NaN, Infinity] })).toBe(reference({ ["__proto__"]: 1, b: [Number.NaN, Infinity] }))
    expect(canonicalJson(JSON.parse('{"__proto__":{"x":1},"a":2}'))).toBe('{"__proto__":{"x":1},"a":2}')
  })

  it("reordering JSON keys (request, messages, tool schemas) never changes the hash", () => {
    const reference = requestHash(decodeRequest(base))
    fc.assert(
      fc.property(fc.nat(1000), (seed) => requestHash(decodeRequest(permuteKeys(base, seed))) === reference),
      { numRuns: 300 }
    )
  })

  it.each(changes)("changing %s changes the hash", (_, change) => {
    expect(requestHash(decodeRequest(change(base)))).not.toBe(requestHash(decodeRequest(base)))
  })

  it("any change of an output field changes the hash (property)", () => {
    const arbitraryRequest = fc.record({
      model: fc.constantFrom("gpt-4o", "gpt-4o-mini"),
      messages: fc.array(
        fc.record({ role: fc.constantFrom("system", "user", "assistant"), content: fc.string({ maxLength: 20 }) }),
        { minLength: 1, maxLength: 4 }
      ),
      temperature: fc.option(fc.double({ min: 0, max: 2, noNaN: true }), { nil: undefined }),
      seed: fc.option(fc.integer({ min: 0, max: 100 }), { nil: undefined }),
      maxTokens: fc.option(fc.integer({ min: 1, max: 1000 }), { nil: undefined })
    })
    fc.assert(
      fc.property(arbitraryRequest, fc.integer({ min: 0, max: changes.length - 1 }), (raw, index) => {
        const request = decodeRequest({ ...base, ...raw, messages: [...raw.messages, ...base.messages] })
        const changed = decodeRequest(changes[index][1]({ ...base, ...raw, messages: [...raw.messages, ...base.messages] }))
        const same = canonicalJson(Schema.encodeSync(ChatRequest)(request)) ===
          canonicalJson(Schema.encodeSync(ChatRequest)(changed))
        return same || requestHash(request) !== requestHash(changed)
      }),
      { numRuns: 500 }
    )
  })

  it("user, idempotencyKey and metadata are not part of the request hash (the scope carries the user)", () => {
    const plain = requestHash(decodeRequest(base))
    expect(requestHash(decodeRequest({ ...base, user: "u1", idempotencyKey: "k", metadata: { team: "a" } }))).toBe(plain)
  })

  it("normalises only spellings every provider treats alike", () => {
    const h = (extra: object) => requestHash(decodeRequest({ ...base, ...extra }))
    const plain = h({})
    expect(h({ stop: [] })).toBe(plain)
    expect(h({ presencePenalty: 0, frequencyPenalty: 0 })).toBe(plain)
    expect(h({ stop: ["b", "a", "a"] })).toBe(h({ stop: ["a", "b"] }))
    expect(h({ tools: [] })).toBe(requestHash(decodeRequest({ ...base, tools: undefined })))
    expect(h({ responseFormat: { type: "text" } })).toBe(requestHash(decodeRequest({ ...base, responseFormat: undefined })))
    // Provider defaults differ (OpenAI temperature 1, Ollama 0.8): absent stays apart from explicit.
    expect(requestHash(decodeRequest({ ...base, temperature: undefined }))).not.toBe(h({ temperature: 1 }))
    expect(requestHash(decodeRequest({ ...base, toolChoice: "auto" }))).not.toBe(plain)
  })

  it("scoped keys hold neither prompt text nor a user id", () => {
    const request = decodeRequest({ ...base, user: "alice@example.com" })
    const key = scopedKey("llm-cache:v1", defaultScope(request), requestHash(request))
    expect(key).toMatch(/^llm-cache:v1:[0-9a-f]{32}:[0-9a-f]{64}$/)
    expect(key).not.toContain("alice")
    expect(key).not.toContain("France")
  })

  it("anonymous is a scope of its own, distinct from every user (even one named 'anonymous')", () => {
    const anonymous = decodeRequest(base)
    expect(defaultScope(anonymous)).toBe(ANONYMOUS_SCOPE)
    expect(defaultScope(decodeRequest({ ...base, user: "anonymous" }))).not.toBe(ANONYMOUS_SCOPE)
    expect(defaultScope(decodeRequest({ ...base, user: "" }))).not.toBe(ANONYMOUS_SCOPE)
  })

  it("a dated snapshot is the requested model; any other name is a fallback", () => {
    expect(answeredByRequestedModel("gpt-4o", "gpt-4o")).toBe(true)
    expect(answeredByRequestedModel("gpt-4o", "gpt-4o-2024-08-06")).toBe(true)
    expect(answeredByRequestedModel("gpt-4", "gpt-4-0613")).toBe(true)
    expect(answeredByRequestedModel("gpt-4o", "gpt-4o-mini")).toBe(false)
    expect(answeredByRequestedModel("gpt-4o", "gpt-4o-mini-2024-07-18")).toBe(false)
    expect(answeredByRequestedModel("gpt-4o", "claude-3-5-sonnet")).toBe(false)
  })

  it("deterministic = temperature 0 or a seed", () => {
    expect(isDeterministic(decodeRequest({ ...base, temperature: 0 }))).toBe(true)
    expect(isDeterministic(decodeRequest({ ...base, temperature: 0.7, seed: 1 }))).toBe(true)
    expect(isDeterministic(decodeRequest({ ...base, temperature: 0.7 }))).toBe(false)
    expect(isDeterministic(decodeRequest({ ...base, temperature: undefined }))).toBe(false)
  })
})
