import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as Net from "node:net"
import * as FakeLlm from "../src/FakeLlm.js"
import { ChatRequest } from "../src/Llm.js"
import * as LlmClient from "../src/LlmClient.js"
import * as LlmError from "../src/LlmError.js"
import * as Prometheus from "../src/Prometheus.js"

const freePort = Effect.async<number>((resume) => {
  const server = Net.createServer()
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

const scrape = (port: number) => Effect.promise(() => fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text()))

describe("Prometheus.layer", () => {
  it.live("serves the library's metrics with their labels, never prompt text", () =>
    Effect.gen(function* () {
      const port = yield* freePort
      const text = yield* Effect.scoped(Effect.gen(function* () {
        yield* Layer.build(Prometheus.layer({ port }))
        const secret = "my private prompt text"
        const request = new ChatRequest({ model: "gpt-4o-mini", messages: [{ role: "user", content: secret }] })
        yield* LlmClient.complete(request)
        yield* Effect.flip(LlmClient.complete(request))
        const body = yield* scrape(port)
        expect(body).not.toContain(secret)
        return body
      }).pipe(Effect.provide(FakeLlm.layer([
        FakeLlm.reply("ok"),
        FakeLlm.fail(new LlmError.ServerError({ status: 503 }))
      ]))))
      expect(text).toMatch(/llm_requests_total\{[^}]*model="gpt-4o-mini"[^}]*\} 2/)
      expect(text).toMatch(/llm_failures_total\{[^}]*error="ServerError"[^}]*\} 1/)
      expect(text).toContain("llm_request_latency_ms_bucket")
      // The GenAI-convention histograms, their dots served as underscores (attribute names too)
      expect(text).toMatch(/gen_ai_client_operation_duration_bucket\{[^}]*gen_ai_request_model="gpt-4o-mini"[^}]*\}/)
      expect(text).toMatch(/gen_ai_client_operation_duration_count\{[^}]*error_type="ServerError"[^}]*\} 1/)
      expect(text).toMatch(/gen_ai_client_token_usage_sum\{.*gen_ai_token_type="input"/)
      expect(text).toMatch(/# TYPE llm_cost_usd_total counter/)
    }))

  it.effect("rejects bad options with every failing path", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        Layer.build(Prometheus.layer({ port: 70_000, endpoint: "metrics", hots: "x" } as Prometheus.Options)).pipe(Effect.scoped)
      )
      expect(error._tag).toBe("InvalidOptions")
      expect(error.issues.map((i) => i.path).sort()).toEqual(["endpoint", "hots", "port"])
    }))
})
