import { beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Layer, Metric, pipe, Stream } from "effect"
import * as fc from "fast-check"
import * as FakeLlm from "../src/FakeLlm.js"
import type { InvalidOptions } from "../src/InvalidOptions.js"
import { type ChatMessage, ChatRequest } from "../src/Llm.js"
import * as LlmClient from "../src/LlmClient.js"
import * as LlmMetrics from "../src/LlmMetrics.js"
import * as Pricing from "../src/Pricing.js"
import * as PromptTrim from "../src/PromptTrim.js"
import * as Tokenizer from "../src/Tokenizer.js"

const MODEL = "gpt-4o"

beforeAll(() => Effect.runPromise(Tokenizer.preload("o200k_base")))

const run = <A, E>(effect: Effect.Effect<A, E, Tokenizer.Tokenizer>) =>
  Effect.runSyncExit(Effect.provide(effect, Tokenizer.layer))

const countOf = (messages: ReadonlyArray<ChatMessage>) =>
  Effect.runSync(Effect.provide(Tokenizer.countMessages(messages, MODEL), Tokenizer.layer))

const words = (n: number, seed = 0) =>
  Array.from({ length: n }, (_, i) => ["alpha", "beta", "gamma", "delta", "omega"][(i + seed) % 5]).join(" ")

const sys: ChatMessage = { role: "system", content: "You are a careful assistant." }
const history = (turns: number): Array<ChatMessage> => {
  const out: Array<ChatMessage> = [sys]
  for (let t = 0; t < turns; t++) {
    out.push({ role: "user", content: `question ${t}: ${words(40, t)}` })
    out.push({ role: "assistant", content: `answer ${t}: ${words(60, t)}` })
  }
  out.push({ role: "user", content: "final question?" })
  return out
}

const isMarker = (m: ChatMessage) => m.role === "system" && m.content.includes("removed to fit the context window")

describe("PromptTrim.trim", () => {
  it("passes a conversation that fits through untouched", () => {
    const messages = history(2)
    const result = Effect.runSync(Effect.provide(PromptTrim.trim(messages, { maxInputTokens: 10_000, model: MODEL }), Tokenizer.layer))
    expect(result.messages).toBe(messages)
    expect(result.droppedMessages).toBe(0)
    expect(result.droppedTokens).toBe(0)
    expect(result.inputTokens).toBe(countOf(messages))
    // data-last form
    const piped = Effect.runSync(Effect.provide(pipe(messages, PromptTrim.trim({ maxInputTokens: 100, model: MODEL })), Tokenizer.layer))
    expect(piped.inputTokens).toBeLessThanOrEqual(100)
    expect(piped.droppedMessages).toBeGreaterThan(0)
  })

  it("keeps the system message, drops the oldest turns, inserts a marker and reports what it dropped", () => {
    const messages = history(10)
    const budget = Math.floor(countOf(messages) / 2)
    const result = Effect.runSync(Effect.provide(PromptTrim.trim(messages, { maxInputTokens: budget, model: MODEL }), Tokenizer.layer))
    expect(result.messages[0]).toBe(sys)
    expect(isMarker(result.messages[1])).toBe(true)
    expect(result.messages[result.messages.length - 1]).toBe(messages[messages.length - 1])
    expect(result.inputTokens).toBe(countOf(result.messages))
    expect(result.inputTokens).toBeLessThanOrEqual(budget)
    // The dropped messages are the oldest non-system ones, in order, and the counts match them.
    expect(result.dropped).toEqual(messages.slice(1, 1 + result.droppedMessages))
    const droppedTokens = result.dropped.reduce((n, m) => n + countOf([m]) - Tokenizer.replyPrimingTokens, 0)
    expect(result.droppedTokens).toBe(droppedTokens)
    expect(result.messages[1].content).toBe(
      `[${result.droppedMessages} earlier messages (${droppedTokens.toLocaleString("en-US")} tokens) removed to fit the context window]`
    )
  })

  it("hits the target within the marker's size: putting back the newest dropped message would not fit", () => {
    const messages = history(10)
    for (const fraction of [0.2, 0.4, 0.6, 0.8, 0.95]) {
      const budget = Math.floor(countOf(messages) * fraction)
      const result = Effect.runSync(Effect.provide(PromptTrim.trim(messages, { maxInputTokens: budget, model: MODEL }), Tokenizer.layer))
      expect(result.inputTokens).toBeLessThanOrEqual(budget)
      expect(result.droppedMessages).toBeGreaterThan(0)
      const newestDropped = result.dropped[result.dropped.length - 1]
      const withoutMarker = result.messages.filter((m) => !isMarker(m))
      const putBack = [sys, newestDropped, ...withoutMarker.slice(1)]
      expect(countOf(putBack)).toBeGreaterThan(budget - (result.inputTokens - countOf(withoutMarker)))
    }
  })

  it("never separates a tool call from its results", () => {
    const call = { id: "call_1", name: "search", arguments: JSON.stringify({ q: words(5) }) }
    const messages: Array<ChatMessage> = [
      sys,
      { role: "user", content: words(30) },
      { role: "assistant", content: "", toolCalls: [call, { ...call, id: "call_2" }] },
      { role: "tool", content: words(80), toolCallId: "call_1" },
      { role: "tool", content: words(80, 1), toolCallId: "call_2" },
      { role: "assistant", content: words(20) },
      { role: "user", content: "and now?" }
    ]
    const total = countOf(messages)
    // Budgets that would cut between the assistant call and its results if messages were dropped one by one.
    for (let budget = total - 1; budget > 60; budget -= 7) {
      const exit = run(PromptTrim.trim(messages, { maxInputTokens: budget, model: MODEL }))
      if (Exit.isFailure(exit)) continue
      const kept = exit.value.messages
      const hasCall = kept.includes(messages[2])
      expect(kept.includes(messages[3])).toBe(hasCall)
      expect(kept.includes(messages[4])).toBe(hasCall)
    }
  })

  it("middle-out keeps the first and the last turns and drops the middle", () => {
    const messages = history(10)
    const budget = Math.floor(countOf(messages) / 2)
    const result = Effect.runSync(Effect.provide(
      PromptTrim.trim(messages, { maxInputTokens: budget, model: MODEL, strategy: "middle-out" }),
      Tokenizer.layer
    ))
    const kept = result.messages
    expect(kept[0]).toBe(sys)
    expect(kept[1]).toBe(messages[1]) // first user turn
    expect(kept[2]).toBe(messages[2]) // its answer
    expect(kept.slice(-3)).toEqual(messages.slice(-3)) // most recent turn
    const markerAt = kept.findIndex(isMarker)
    expect(markerAt).toBeGreaterThan(2)
    expect(result.dropped).toEqual(messages.slice(kept.indexOf(kept[markerAt - 1]) + 1, kept.indexOf(kept[markerAt - 1]) + 1 + result.droppedMessages))
    expect(result.inputTokens).toBeLessThanOrEqual(budget)
  })

  it("keep-recent keeps only the first system message; keep-system-and-recent keeps them all", () => {
    const injected: ChatMessage = { role: "system", content: `Context: ${words(100)}` }
    const messages: Array<ChatMessage> = [sys, injected, ...history(6).slice(1)]
    const budget = countOf(messages) - 50
    const recent = Effect.runSync(Effect.provide(
      PromptTrim.trim(messages, { maxInputTokens: budget, model: MODEL, strategy: "keep-recent" }),
      Tokenizer.layer
    ))
    expect(recent.messages[0]).toBe(sys)
    expect(recent.dropped).toContain(injected)
    const all = Effect.runSync(Effect.provide(
      PromptTrim.trim(messages, { maxInputTokens: budget, model: MODEL, strategy: "keep-system-and-recent" }),
      Tokenizer.layer
    ))
    expect(all.messages.slice(0, 2)).toEqual([sys, injected])
    expect(all.dropped).not.toContain(injected)
  })

  it("uses a custom marker, or none with marker: false", () => {
    const messages = history(8)
    const budget = 600
    const custom = Effect.runSync(Effect.provide(
      PromptTrim.trim(messages, { maxInputTokens: budget, model: MODEL, marker: ({ messages: n }) => `(${n} omitted)` }),
      Tokenizer.layer
    ))
    expect(custom.messages[1]).toEqual({ role: "system", content: `(${custom.droppedMessages} omitted)` })
    expect(custom.inputTokens).toBeLessThanOrEqual(budget)
    const none = Effect.runSync(Effect.provide(
      PromptTrim.trim(messages, { maxInputTokens: budget, model: MODEL, marker: false }),
      Tokenizer.layer
    ))
    expect(none.messages.some(isMarker)).toBe(false)
    expect(none.messages.length).toBe(messages.length - none.droppedMessages)
    expect(none.inputTokens).toBe(countOf(none.messages))
  })

  it("fails with ContextTooLong when even the system message and the current turn do not fit", () => {
    const messages: Array<ChatMessage> = [sys, { role: "user", content: "hi" }, { role: "user", content: words(500) }]
    const exit = run(PromptTrim.trim(messages, { maxInputTokens: 100, model: MODEL }))
    expect(Exit.isFailure(exit)).toBe(true)
    const error = Effect.runSync(Effect.flip(Effect.provide(PromptTrim.trim(messages, { maxInputTokens: 100, model: MODEL }), Tokenizer.layer)))
    expect(error._tag).toBe("ContextTooLong")
    if (error._tag === "ContextTooLong") {
      expect(error.contextWindow).toBe(100)
      expect(error.requestedTokens).toBe(countOf([sys, messages[2]]))
    }
  })

  it("without a user message the last message is the current turn and is kept", () => {
    const messages: Array<ChatMessage> = [
      sys,
      { role: "assistant", content: words(200) },
      { role: "assistant", content: words(200, 1) },
      { role: "assistant", content: "Draft: the last message, to be continued." }
    ]
    const result = Effect.runSync(Effect.provide(PromptTrim.trim(messages, { maxInputTokens: 100, model: MODEL }), Tokenizer.layer))
    expect(result.messages[0]).toBe(sys)
    expect(result.messages[result.messages.length - 1]).toBe(messages[3])
    expect(result.dropped).toEqual([messages[1], messages[2]])
    expect(result.inputTokens).toBeLessThanOrEqual(100)
  })

  it("lists every failing option path", () => {
    const error = Effect.runSync(Effect.flip(Effect.provide(
      PromptTrim.trim([], { maxInputTokens: -1, model: "", strategy: "bogus" as PromptTrim.Strategy, marker: 3 as never }),
      Tokenizer.layer
    ))) as InvalidOptions
    expect(error._tag).toBe("InvalidOptions")
    expect(error.issues.map((i) => i.path).sort()).toEqual(["marker", "maxInputTokens", "model", "strategy"])
    const typo = Effect.runSync(Effect.flip(Effect.provide(
      PromptTrim.trim([], { maxInputTokens: 10, model: MODEL, stratgy: "middle-out" } as never),
      Tokenizer.layer
    ))) as InvalidOptions
    expect(typo.issues.map((i) => i.path)).toEqual(["stratgy"])
  })
})

// ---------------------------------------------------------------------------------------------------------
// Property test: random conversations with tool calls, every strategy, random budgets.

const text = fc.array(fc.constantFrom("alpha", "beta", "γάμμα", "数据", "42", "\n", "{\"k\":1}", "🙂"), { maxLength: 60 })
  .map((parts) => parts.join(" "))

type Turn = ReadonlyArray<ChatMessage>
const turnArb = (index: number): fc.Arbitrary<Turn> =>
  fc.oneof(
    text.map((content): Turn => [{ role: "user", content }]),
    text.map((content): Turn => [{ role: "assistant", content }]),
    text.map((content): Turn => [{ role: "system", content }]),
    fc.tuple(text, fc.array(text, { minLength: 1, maxLength: 3 })).map(([content, results]): Turn => {
      const calls = results.map((_, i) => ({ id: `call_${index}_${i}`, name: "tool", arguments: `{"i":${i}}` }))
      return [
        { role: "assistant", content, toolCalls: calls },
        ...results.map((r, i): ChatMessage => ({ role: "tool", content: r, toolCallId: calls[i].id }))
      ]
    })
  )

const conversation = fc.integer({ min: 0, max: 24 }).chain((n) =>
  fc.tuple(...Array.from({ length: n }, (_, i) => turnArb(i))).map((turns) => turns.flat())
)

describe("PromptTrim property", () => {
  it("fits the budget, keeps system messages and the last user message, preserves order and tool pairs", () => {
    const seen = { trimmed: 0, tooLong: 0, untouched: 0 }
    fc.assert(
      fc.property(
        conversation,
        fc.constantFrom<PromptTrim.Strategy>("keep-recent", "keep-system-and-recent", "middle-out"),
        fc.integer({ min: 1, max: 110 }),
        fc.boolean(),
        (messages, strategy, percent, withMarker) => {
          const budget = Math.max(1, Math.floor((countOf(messages) * percent) / 100))
          const exit = run(PromptTrim.trim(messages, {
            maxInputTokens: budget,
            model: MODEL,
            strategy,
            ...(withMarker ? {} : { marker: false as const })
          }))
          if (Exit.isFailure(exit)) {
            const failure = Effect.runSync(Effect.flip(Effect.provide(
              PromptTrim.trim(messages, { maxInputTokens: budget, model: MODEL, strategy }),
              Tokenizer.layer
            )))
            seen.tooLong++
            expect(failure._tag).toBe("ContextTooLong")
            if (failure._tag === "ContextTooLong") {
              expect(failure.requestedTokens!).toBeGreaterThan(budget)
              expect(failure.requestedTokens!).toBeLessThanOrEqual(countOf(messages))
            }
            return
          }
          const result = exit.value
          const out = result.messages
          if (result.droppedMessages > 0) seen.trimmed++
          else seen.untouched++
          // Within budget, and the reported size is exact.
          expect(result.inputTokens).toBe(countOf(out))
          expect(result.inputTokens).toBeLessThanOrEqual(budget)
          if (countOf(messages) <= budget) expect(out).toBe(messages)
          // Order preserved: the non-marker messages are a subsequence of the input (by identity).
          const originals = out.filter((m) => messages.includes(m))
          const positions = originals.map((m) => messages.indexOf(m))
          for (let i = 1; i < positions.length; i++) expect(positions[i]).toBeGreaterThan(positions[i - 1])
          expect(out.length - originals.length).toBeLessThanOrEqual(1)
          if (!withMarker) expect(out.length).toBe(originals.length)
          expect(result.droppedMessages).toBe(messages.length - originals.length)
          expect([...result.dropped, ...originals].length).toBe(messages.length)
          // System messages kept (keep-recent: the first one).
          const systems = messages.filter((m) => m.role === "system")
          const mustKeep = strategy === "keep-recent" ? systems.slice(0, 1) : systems
          for (const m of mustKeep) expect(originals).toContain(m)
          // The current turn is kept: from the last user message on, or the last message when there is none.
          const lastUser = messages.map((m) => m.role).lastIndexOf("user")
          const currentTurn = lastUser >= 0 ? lastUser : messages.length - 1
          if (currentTurn >= 0) for (const m of messages.slice(currentTurn)) expect(originals).toContain(m)
          // Tool pairs intact.
          for (const m of messages) {
            if (m.toolCalls === undefined) continue
            const ids = new Set(m.toolCalls.map((c) => c.id))
            const results = messages.filter((r) => r.toolCallId !== undefined && ids.has(r.toolCallId))
            for (const r of results) expect(originals.includes(r)).toBe(originals.includes(m))
          }
        }
      ),
      { numRuns: 300, seed: 42 }
    )
    // The generator exercises all three outcomes.
    expect(seen.trimmed).toBeGreaterThan(60) // 84 with this seed
    expect(seen.tooLong).toBeGreaterThan(10)
    expect(seen.untouched).toBeGreaterThan(10)
  })
})

// ---------------------------------------------------------------------------------------------------------
// The policy

const tinyModel = { "tiny-model": { inputPerMillion: 1, outputPerMillion: 1, contextWindow: 400, maxOutputTokens: 100 } }
const request = (messages: ReadonlyArray<ChatMessage>, model = "tiny-model", maxTokens?: number) =>
  new ChatRequest({ model, messages, ...(maxTokens === undefined ? {} : { maxTokens }) })

const policyLayer = (options: PromptTrim.PolicyOptions = {}) => {
  const fake = FakeLlm.layer(FakeLlm.reply("ok"))
  const decorated = LlmClient.layerWith(PromptTrim.policy(options)).pipe(Layer.provide(fake))
  return Layer.merge(fake, decorated).pipe(Layer.provide(Tokenizer.layer), Layer.provide(Pricing.layer(tinyModel)))
}

const metricValue = (metric: typeof LlmMetrics.trimmedRequests, model: string) =>
  Metric.value(Metric.tagged(metric, "model", model)).pipe(Effect.map((s) => s.count))

describe("PromptTrim.policy", () => {
  it.effect("fits a request into the context window minus the output reserve and records it", () =>
    Effect.gen(function* () {
      const beforeRequests = yield* metricValue(LlmMetrics.trimmedRequests, "tiny-model")
      const beforeTokens = yield* metricValue(LlmMetrics.trimmedTokens, "tiny-model")
      const messages = history(6)
      yield* LlmClient.complete(request(messages))
      const [call] = yield* FakeLlm.calls
      const sent = call.request.messages
      expect(sent.length).toBeLessThan(messages.length)
      expect(sent[0]).toEqual(sys)
      expect(countOf(sent)).toBeLessThanOrEqual(400 - 100)
      expect((yield* metricValue(LlmMetrics.trimmedRequests, "tiny-model")) - beforeRequests).toBe(1)
      expect((yield* metricValue(LlmMetrics.trimmedTokens, "tiny-model")) - beforeTokens).toBeGreaterThan(0)
    }).pipe(Effect.provide(policyLayer())))

  it.effect("records the trim on the current span (counts only, no text)", () =>
    Effect.gen(function* () {
      yield* LlmClient.complete(request(history(6)))
      const span = yield* Effect.currentSpan
      const attributes = Object.fromEntries(span.attributes)
      expect(attributes["llm.trim.dropped_messages"]).toBeGreaterThan(0)
      expect(attributes["llm.trim.dropped_tokens"]).toBeGreaterThan(0)
      expect(attributes["llm.trim.input_tokens"]).toBeLessThanOrEqual(300)
      expect(Object.values(attributes).every((v) => typeof v === "number")).toBe(true)
    }).pipe(Effect.withSpan("caller"), Effect.provide(policyLayer())))

  it.effect("request.maxTokens takes precedence over reserveForOutput", () =>
    Effect.gen(function* () {
      const messages = history(6)
      yield* LlmClient.complete(request(messages, "tiny-model", 300))
      const [call] = yield* FakeLlm.calls
      // 400 − 300 (the request's maxTokens), not 400 − 10 (reserveForOutput)
      expect(countOf(call.request.messages)).toBeLessThanOrEqual(100)
    }).pipe(Effect.provide(policyLayer({ reserveForOutput: 10 }))))

  it.effect("without maxTokens the output reserve is the model's max output, at most half the window", () =>
    Effect.gen(function* () {
      // gpt-4: window 8192, max output 8192 -> reserve 4096, so up to 4096 prompt tokens are sent
      yield* LlmClient.complete(request(history(60), "gpt-4"))
      const [call] = yield* FakeLlm.calls
      const sent = Effect.runSync(Effect.provide(Tokenizer.countMessages(call.request.messages, "gpt-4"), Tokenizer.layer))
      expect(sent).toBeLessThanOrEqual(4096)
      expect(sent).toBeGreaterThan(3500)
    }).pipe(Effect.provide(policyLayer())))

  it.effect("an unknown model without maxInputTokens passes through untouched", () =>
    Effect.gen(function* () {
      const messages = history(30)
      const original = request(messages, "my-local-model")
      yield* LlmClient.complete(original)
      const [call] = yield* FakeLlm.calls
      expect(call.request).toBe(original)
    }).pipe(Effect.provide(policyLayer())))

  it.effect("an unknown model is trimmed to maxInputTokens", () =>
    Effect.gen(function* () {
      yield* LlmClient.complete(request(history(30), "my-local-model"))
      const [call] = yield* FakeLlm.calls
      expect(countOf(call.request.messages)).toBeLessThanOrEqual(500)
    }).pipe(Effect.provide(policyLayer({ maxInputTokens: 500 }))))

  it.effect("fails with ContextTooLong without calling the provider when the current turn cannot fit", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(LlmClient.complete(request([sys, { role: "user", content: words(600) }])))
      expect(error._tag).toBe("ContextTooLong")
      if (error._tag === "ContextTooLong") {
        expect(error.contextWindow).toBe(400)
        expect(error.model).toBe("tiny-model")
      }
      expect(yield* FakeLlm.calls).toHaveLength(0)
    }).pipe(Effect.provide(policyLayer())))

  it.effect("trims streams too", () =>
    Effect.gen(function* () {
      yield* Stream.runDrain(LlmClient.stream(request(history(6))))
      const [call] = yield* FakeLlm.calls
      expect(countOf(call.request.messages)).toBeLessThanOrEqual(300)
    }).pipe(Effect.provide(policyLayer())))

  it.effect("lists every failing option path", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(PromptTrim.policy({
        reserveForOutput: -5,
        strategy: "everything" as PromptTrim.Strategy,
        maxInputTokens: 0
      }))
      expect(error.issues.map((i) => i.path).sort()).toEqual(["maxInputTokens", "reserveForOutput", "strategy"])
      const typo = yield* Effect.flip(PromptTrim.policy({ reserveForOuput: 512 } as never))
      expect(typo.issues.map((i) => i.path)).toEqual(["reserveForOuput"])
    }).pipe(Effect.provide(Tokenizer.layer)))
})
