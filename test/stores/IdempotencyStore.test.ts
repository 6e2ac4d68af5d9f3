import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Schema } from "effect"
import * as Idempotency from "../../src/Idempotency.js"
import { ChatResponse } from "../../src/Llm.js"
import { idempotencyStoreContract } from "./IdempotencyStore.contract.js"

idempotencyStoreContract("memory", Idempotency.layerStoreMemory)

describe("IdempotencyStore memory capacity", () => {
  it.effect("beyond capacity the oldest settled entry is evicted, never a live claim", () =>
    Effect.gen(function* () {
      const store = yield* Idempotency.makeStoreMemory({ capacity: 2 })
      const record = Schema.encodeSync(Idempotency.StoredRecord)({
        fingerprint: "fp",
        exit: Exit.succeed(new ChatResponse({
          id: "1", model: "m", content: "x", finishReason: "stop", usage: { inputTokens: 1, outputTokens: 1 }, servedFrom: "provider"
        }))
      })
      yield* store.claim("live", "fp", 0, 60_000, "a")
      yield* store.claim("done", "fp", 0, 60_000, "b")
      yield* store.complete("done", record, 1, 60_000, "b")
      yield* store.claim("third", "fp", 2, 60_000, "c")
      expect((yield* store.claim("live", "fp", 3, 60_000, "d"))._tag).toBe("InFlight")
      expect((yield* store.claim("third", "fp", 3, 60_000, "d"))._tag).toBe("InFlight")
      expect((yield* store.get("done", 3))._tag).toBe("None")
    }))
})
