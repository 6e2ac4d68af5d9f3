import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import * as Llm from "../src/Llm.js"

describe("Llm", () => {
  it.effect("decodes a ChatRequest from a plain object, messages included", () =>
    Effect.gen(function* () {
      const request = yield* Schema.decodeUnknown(Llm.ChatRequest)({
        model: "gpt-4o",
        messages: [{ role: "system", content: "be brief" }, { role: "user", content: "hi" }],
        maxTokens: 10,
        temperature: 0,
        user: "u1"
      })
      expect(request).toBeInstanceOf(Llm.ChatRequest)
      expect(request.messages[1].content).toBe("hi")
    }))

  it.effect("lists every failing path of a bad request", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        Llm.decodeRequest({
          model: "",
          messages: [{ role: "robot", content: 1 }],
          maxTokens: -1,
          temperature: 3
        })
      )
      expect(error._tag).toBe("InvalidOptions")
      const paths = error.issues.map((i) => i.path).sort()
      expect(paths).toEqual(["maxTokens", "messages.0.content", "messages.0.role", "model", "temperature"])
      expect(error.message).toContain("ChatRequest options are invalid")
    }))

  it("joins chunks", () => {
    expect(Llm.joinChunks([new Llm.ChatChunk({ content: "a", model: "m" }), new Llm.ChatChunk({ content: "b", model: "m" })]))
      .toBe("ab")
  })
})
