import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as cl100k from "gpt-tokenizer/encoding/cl100k_base"
import * as o200k from "gpt-tokenizer/encoding/o200k_base"
import { approximateMessageTokens } from "../src/internal/approximateTokens.js"
import type { ChatMessage } from "../src/Llm.js"
import * as PromptTrim from "../src/PromptTrim.js"
import * as Tokenizer from "../src/Tokenizer.js"

const texts = [
  "",
  "Hello world",
  "The quick brown fox jumps over the lazy dog.",
  "Unicode: héllo wörld — 你好，世界 🌍🚀 ñandú",
  "function add(a: number, b: number): number {\n  return a + b\n}\n",
  "1234567890 3.14159 1e-9 0xDEADBEEF",
  "   leading and trailing whitespace\t\t\n\n",
  "a".repeat(5000),
  "lorem ipsum dolor sit amet ".repeat(400)
]

const transcripts: ReadonlyArray<ReadonlyArray<ChatMessage>> = [
  [{ role: "user", content: "Hi" }],
  [
    { role: "system", content: "You are a helpful assistant that answers briefly." },
    { role: "user", content: "What is the capital of France?" },
    { role: "assistant", content: "Paris." },
    { role: "user", content: "And of Japan? 日本の首都は？" }
  ],
  [
    { role: "system", content: "" },
    { role: "user", content: "```json\n{\"a\": [1, 2, 3]}\n```" },
    { role: "assistant", content: "Parsed: three numbers." }
  ]
]

describe("Tokenizer", () => {
  it("maps models to encodings", () => {
    expect(Tokenizer.encodingFor("gpt-4o")).toBe("o200k_base")
    expect(Tokenizer.encodingFor("gpt-4o-mini-2024-07-18")).toBe("o200k_base")
    expect(Tokenizer.encodingFor("gpt-4.1-nano")).toBe("o200k_base")
    expect(Tokenizer.encodingFor("o3-mini")).toBe("o200k_base")
    expect(Tokenizer.encodingFor("gpt-5")).toBe("o200k_base")
    expect(Tokenizer.encodingFor("openai/gpt-4o")).toBe("o200k_base")
    expect(Tokenizer.encodingFor("gpt-4")).toBe("cl100k_base")
    expect(Tokenizer.encodingFor("gpt-4-turbo")).toBe("cl100k_base")
    expect(Tokenizer.encodingFor("gpt-3.5-turbo-0125")).toBe("cl100k_base")
    expect(Tokenizer.encodingFor("llama-3-70b")).toBe("o200k_base")
    // fine-tuned models count with their base model's encoding
    expect(Tokenizer.encodingFor("ft:gpt-3.5-turbo-0125:acme::abc123")).toBe("cl100k_base")
    expect(Tokenizer.encodingFor("ft:gpt-4o-mini-2024-07-18:acme:support:xyz")).toBe("o200k_base")
  })

  it.effect("text counts equal gpt-tokenizer's for both encodings", () =>
    Effect.gen(function* () {
      for (const text of texts) {
        expect(yield* Tokenizer.count(text, "gpt-4o")).toBe(o200k.encode(text).length)
        expect(yield* Tokenizer.count(text, "gpt-4o")).toBe(o200k.countTokens(text))
        expect(yield* Tokenizer.count(text, "gpt-4")).toBe(cl100k.encode(text).length)
      }
    }).pipe(Effect.provide(Tokenizer.layer)))

  it.effect("long texts counted again (a conversation's earlier turns) give the same counts, per encoding", () =>
    Effect.gen(function* () {
      // long enough to be remembered, and tokenised differently by the two encodings
      const long = Array.from({ length: 40 }, (_, i) => `Turn ${i}: 你好，世界 — naïve café déjà vu ${"ab".repeat(i)}`)
      for (let round = 0; round < 3; round++) {
        for (const text of long) {
          expect(yield* Tokenizer.count(text, "gpt-4o")).toBe(o200k.countTokens(text))
          expect(yield* Tokenizer.count(text, "gpt-4")).toBe(cl100k.countTokens(text))
          const message: ChatMessage = { role: "user", content: text }
          expect(yield* Tokenizer.countMessage(message, "gpt-4")).toBe(
            yield* Tokenizer.countMessage(message, "gpt-4").pipe(Effect.provide(Tokenizer.layer))
          )
        }
      }
      // past the memo's bound the counts stay exact: 4 MB of distinct long texts, then the first ones again
      const many = Array.from({ length: 1100 }, (_, i) => `${i} `.repeat(1000))
      for (const text of many) yield* Tokenizer.count(text, "gpt-4o")
      for (const text of many.slice(0, 5)) expect(yield* Tokenizer.count(text, "gpt-4o")).toBe(o200k.countTokens(text))
    }).pipe(Effect.provide(Tokenizer.layer)))

  it.effect("chat transcripts count exactly as gpt-tokenizer's encodeChat", () =>
    Effect.gen(function* () {
      for (const chat of transcripts) {
        const plain = chat.map((m) => ({ role: m.role, content: m.content }))
        expect(yield* Tokenizer.countMessages(chat, "gpt-4o")).toBe(o200k.encodeChat(plain, "gpt-4o").length)
        expect(yield* Tokenizer.countMessages(chat, "gpt-4o-mini")).toBe(o200k.encodeChat(plain, "gpt-4o-mini").length)
        expect(yield* Tokenizer.countMessages(chat, "gpt-4")).toBe(cl100k.encodeChat(plain, "gpt-4").length)
        // gpt-tokenizer renders gpt-3.5 in the legacy 0301 format (one extra "\n" token a message); current
        // gpt-3.5-turbo snapshots use the gpt-4 framing, which is what OpenAI bills.
        expect(yield* Tokenizer.countMessages(chat, "gpt-3.5-turbo")).toBe(cl100k.encodeChat(plain, "gpt-4").length)
      }
    }).pipe(Effect.provide(Tokenizer.layer)))

  it.effect("countMessages is the sum of countMessage plus the reply priming", () =>
    Effect.gen(function* () {
      for (const chat of transcripts) {
        const each = yield* Effect.forEach(chat, (m) => Tokenizer.countMessage(m, "gpt-4o"))
        const sum = each.reduce((a, b) => a + b, 0)
        expect(yield* Tokenizer.countMessages(chat, "gpt-4o")).toBe(sum + Tokenizer.replyPrimingTokens)
      }
    }).pipe(Effect.provide(Tokenizer.layer)))

  it.effect("a name costs its tokens plus one; tool calls cost name + arguments + 3", () =>
    Effect.gen(function* () {
      const plain = yield* Tokenizer.countMessage({ role: "user", content: "hi" }, "gpt-4o")
      const named = yield* Tokenizer.countMessage({ role: "user", content: "hi", name: "alice" }, "gpt-4o")
      expect(named - plain).toBe(1 + o200k.countTokens("alice"))
      const call = { id: "call_1", name: "get_weather", arguments: "{\"city\":\"Paris\"}" }
      const withCall = yield* Tokenizer.countMessage({ role: "assistant", content: "", toolCalls: [call] }, "gpt-4o")
      const bare = yield* Tokenizer.countMessage({ role: "assistant", content: "" }, "gpt-4o")
      expect(withCall - bare).toBe(3 + o200k.countTokens("get_weather") + o200k.countTokens(call.arguments))
    }).pipe(Effect.provide(Tokenizer.layer)))

  it.effect("special-token markers in user text count as plain text instead of throwing", () =>
    Effect.gen(function* () {
      const text = "ignore <|endoftext|> and <|im_start|>"
      expect(yield* Tokenizer.count(text, "gpt-4o")).toBe(o200k.encode(text, { disallowedSpecial: new Set() }).length)
    }).pipe(Effect.provide(Tokenizer.layer)))

  it.effect("the approximate layer is deterministic and agrees with the shared approximation", () =>
    Effect.gen(function* () {
      expect(yield* Tokenizer.count("12345678", "any")).toBe(2)
      expect(yield* Tokenizer.count("123456789", "any")).toBe(3)
      for (const chat of transcripts) {
        const first = yield* Tokenizer.countMessages(chat, "llama")
        const second = yield* Tokenizer.countMessages(chat, "llama")
        expect(first).toBe(second)
        expect(first).toBe(approximateMessageTokens(chat))
      }
    }).pipe(Effect.provide(Tokenizer.layerApproximate)))

  it.effect("without a Tokenizer in context, counting is exact; a provided one replaces it", () =>
    Effect.gen(function* () {
      const text = "The quick brown fox jumps over the lazy dog."
      expect(yield* Tokenizer.count(text, "gpt-4o")).toBe(o200k.countTokens(text))
      const approximate = yield* Tokenizer.count(text, "gpt-4o").pipe(Effect.provide(Tokenizer.layerApproximate))
      expect(approximate).toBe(Math.ceil(text.length / 4))
      const trimmed = yield* PromptTrim.trim(
        [{ role: "system", content: "be brief" }, { role: "user", content: text }],
        { maxInputTokens: 1_000, model: "gpt-4o" }
      )
      expect(trimmed.droppedMessages).toBe(0)
    }))
})
