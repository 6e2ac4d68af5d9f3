import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Logger, Metric, Schema, Stream, TestClock } from "effect"
import * as Fallback from "../src/Fallback.js"
import * as FakeLlm from "../src/FakeLlm.js"
import { InvalidOptions } from "../src/InvalidOptions.js"
import { ChatRequest, ChatResponse } from "../src/Llm.js"
import * as LlmClient from "../src/LlmClient.js"
import * as LlmError from "../src/LlmError.js"
import * as LlmMetrics from "../src/LlmMetrics.js"
import * as ModelTier from "../src/ModelTier.js"

const tiers = [
  { name: "simple", model: "gpt-4o-mini" },
  { name: "medium", model: "gpt-4.1-mini" },
  { name: "complex", model: "gpt-4o" }
] as const

const ask = (content: string, fields: Partial<ConstructorParameters<typeof ChatRequest>[0]> = {}) =>
  new ChatRequest({ model: "auto", messages: [{ role: "user", content }], ...fields })

/** A prompt of about `tokens` approximate tokens (≈ 4 characters a token). */
const promptOf = (tokens: number) => "x".repeat(tokens * 4)

const stack = (script: FakeLlm.Script, ...policies: Array<LlmClient.Policy>) =>
  LlmClient.layerWith(...policies).pipe(Layer.provideMerge(FakeLlm.layer(script)))

/** Each model replies with its own step; others answer "from <model>". */
const perModel = (steps: Record<string, FakeLlm.Step>): FakeLlm.Script => ({ request }) =>
  steps[request.model] ?? FakeLlm.reply(`from ${request.model}`)

const calledModels = Effect.map(FakeLlm.calls, (calls) => calls.map((c) => c.request.model))

const routesOf = (tier: string, reason: ModelTier.Reason) =>
  Effect.map(
    Metric.value(LlmMetrics.tierRoutes.pipe(Metric.tagged("tier", tier), Metric.tagged("reason", reason))),
    (state) => state.count
  )

/** Runs `effect` and returns how much each (tier, reason) counter moved. */
const routedDuring = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  watched: ReadonlyArray<readonly [string, ModelTier.Reason]>
) =>
  Effect.gen(function* () {
    const before = yield* Effect.forEach(watched, ([tier, reason]) => routesOf(tier, reason))
    const value = yield* effect
    const after = yield* Effect.forEach(watched, ([tier, reason]) => routesOf(tier, reason))
    const moved: Record<string, number> = {}
    watched.forEach(([tier, reason], i) => {
      if (after[i] !== before[i]) moved[`${tier}/${reason}`] = after[i] - before[i]
    })
    return { value, moved }
  })

const modelFor = (request: ChatRequest, options: ModelTier.Options = { tiers }) =>
  Effect.map(LlmClient.complete(request), (response) => response.model).pipe(
    Effect.provide(stack(perModel({}), ModelTier.policy(options)))
  )

describe("ModelTier.policy: routing", () => {
  it.effect("metadata.tier picks the tier; the request's model is rewritten and the response names the model", () =>
    Effect.gen(function* () {
      const { moved, value } = yield* routedDuring(
        LlmClient.complete(ask("hi", { metadata: { tier: "complex" } })),
        [["complex", "metadata"], ["simple", "heuristic"]]
      )
      expect(value.model).toBe("gpt-4o")
      expect(value.content).toBe("from gpt-4o")
      expect(yield* calledModels).toEqual(["gpt-4o"])
      expect(moved).toEqual({ "complex/metadata": 1 })
    }).pipe(Effect.provide(stack(perModel({}), ModelTier.policy({ tiers })))))

  it.effect("metadata.tier wins over the request's model and over the heuristic", () =>
    Effect.gen(function* () {
      expect(yield* modelFor(ask(promptOf(20_000), { model: "gpt-4o", metadata: { tier: "simple" } })))
        .toBe("gpt-4o-mini")
    }))

  it.effect("a metadata.tier that names no tier is routed as if it were absent, with a warning (without the name)", () =>
    Effect.gen(function* () {
      const logs: Array<string> = []
      const recorder = Logger.make(({ logLevel, message }) => {
        logs.push(`${logLevel.label} ${Array.isArray(message) ? message.join(" ") : String(message)}`)
      })
      const quiet = Effect.provide(Logger.replace(Logger.defaultLogger, recorder))
      expect(yield* quiet(modelFor(ask("hi", { metadata: { tier: "huge" } })))).toBe("gpt-4o-mini")
      expect(yield* quiet(modelFor(ask("hi", { model: "gpt-4o", metadata: { tier: "constructor" } })))).toBe("gpt-4o")
      expect(logs).toHaveLength(2)
      for (const log of logs) {
        expect(log).toBe(
          "WARN ModelTier: request metadata.tier names no tier; the request was routed by its model or the heuristic"
        )
      }
      // no warning without metadata.tier, nor for other metadata
      expect(yield* quiet(modelFor(ask("hi", { metadata: { team: "support" } })))).toBe("gpt-4o-mini")
      expect(logs).toHaveLength(2)
    }))

  it.effect("a request naming a tier's model starts at that tier (reason model)", () =>
    Effect.gen(function* () {
      const { moved, value } = yield* routedDuring(
        LlmClient.complete(ask("hi", { model: "gpt-4.1-mini" })),
        [["medium", "model"], ["simple", "heuristic"]]
      )
      expect(value.model).toBe("gpt-4.1-mini")
      expect(moved).toEqual({ "medium/model": 1 })
    }).pipe(Effect.provide(stack(perModel({}), ModelTier.policy({ tiers })))))

  it.effect("heuristic: a short prompt goes to the cheapest tier, a long one up, a very long one to the top", () =>
    Effect.gen(function* () {
      const { moved } = yield* routedDuring(
        Effect.gen(function* () {
          expect((yield* LlmClient.complete(ask("What is 2 + 2?"))).model).toBe("gpt-4o-mini")
          expect((yield* LlmClient.complete(ask(promptOf(2_000)))).model).toBe("gpt-4.1-mini")
          expect((yield* LlmClient.complete(ask(promptOf(10_000)))).model).toBe("gpt-4o")
        }),
        [["simple", "heuristic"], ["medium", "heuristic"], ["complex", "heuristic"]]
      )
      expect(moved).toEqual({ "simple/heuristic": 1, "medium/heuristic": 1, "complex/heuristic": 1 })
    }).pipe(Effect.provide(stack(perModel({}), ModelTier.policy({ tiers })))))

  it.effect("heuristic: the thresholds are inclusive and count chat framing (3 per message + 3 priming)", () =>
    Effect.gen(function* () {
      // 994 characters of content = 249 tokens, + 6 framing = 255
      const request = ask("x".repeat(994))
      expect(ModelTier.promptTokens(request)).toBe(255)
      expect(ModelTier.complexity(request, { mediumTokens: 255 })).toBe("medium")
      expect(ModelTier.complexity(request, { mediumTokens: 256 })).toBe("simple")
      expect(ModelTier.complexity(request, { mediumTokens: 100, complexTokens: 255 })).toBe("complex")
    }))

  it.effect("heuristic: tools or a JSON response format make a short request at least the middle tier", () =>
    Effect.gen(function* () {
      const tool = { name: "lookup", parameters: { type: "object" } }
      expect(yield* modelFor(ask("hi", { tools: [tool] }))).toBe("gpt-4.1-mini")
      expect(yield* modelFor(ask("hi", { responseFormat: { type: "json_object" } }))).toBe("gpt-4.1-mini")
      expect(yield* modelFor(ask("hi", { responseFormat: { type: "json_schema", jsonSchema: {} } })))
        .toBe("gpt-4.1-mini")
      expect(yield* modelFor(ask("hi", { responseFormat: { type: "text" } }))).toBe("gpt-4o-mini")
      // "at least": a very long prompt with tools still goes to the top
      expect(yield* modelFor(ask(promptOf(10_000), { tools: [tool] }))).toBe("gpt-4o")
    }))

  it.effect("heuristic: tool definitions count towards the prompt size", () =>
    Effect.gen(function* () {
      const big = { name: "search", description: "d".repeat(40_000) }
      const request = ask("hi", { tools: [big] })
      expect(ModelTier.promptTokens(request)).toBeGreaterThan(10_000)
      expect(ModelTier.complexity(request)).toBe("complex")
    }))

  it.effect("heuristic: medium is the middle tier, rounded down (the first of two, the second of four)", () =>
    Effect.gen(function* () {
      const json = ask("hi", { responseFormat: { type: "json_object" } })
      const two = { tiers: [{ name: "small", model: "s" }, { name: "large", model: "l" }] }
      expect(yield* modelFor(json, two)).toBe("s")
      expect(yield* modelFor(ask(promptOf(10_000)), two)).toBe("l")
      const four = { tiers: ["a", "b", "c", "d"].map((m) => ({ name: m, model: m })) }
      expect(yield* modelFor(json, four)).toBe("b")
      const one = { tiers: [{ name: "only", model: "o" }] }
      expect(yield* modelFor(ask(promptOf(10_000)), one)).toBe("o")
    }))

  it.effect("heuristic: custom thresholds", () =>
    Effect.gen(function* () {
      const options = { tiers, heuristic: { mediumTokens: 50, complexTokens: 100 } }
      expect(yield* modelFor(ask(promptOf(10)), options)).toBe("gpt-4o-mini")
      expect(yield* modelFor(ask(promptOf(60)), options)).toBe("gpt-4.1-mini")
      expect(yield* modelFor(ask(promptOf(200)), options)).toBe("gpt-4o")
    }))

  it.effect("never looks at the user id: the same request from any user goes to the same tier", () =>
    Effect.gen(function* () {
      for (const user of ["user-1", "vip-user", "admin"]) {
        expect(yield* modelFor(ask("hi", { user }))).toBe("gpt-4o-mini")
        expect(yield* modelFor(ask(promptOf(2_000), { user }))).toBe("gpt-4.1-mini")
      }
    }))

  it.effect("a custom classifier (sync) replaces the default one, metadata.tier included", () =>
    Effect.gen(function* () {
      const { moved, value } = yield* routedDuring(
        LlmClient.complete(ask("summarise", { metadata: { tier: "simple" } })),
        [["medium", "classifier"], ["simple", "metadata"]]
      )
      expect(value.model).toBe("gpt-4.1-mini")
      expect(moved).toEqual({ "medium/classifier": 1 })
    }).pipe(Effect.provide(stack(
      perModel({}),
      ModelTier.policy({ tiers, classify: (request) => request.messages[0].content.startsWith("sum") ? "medium" : "simple" })
    ))))

  it.effect("a custom classifier returning an Effect (a 100 ms lookup on the Effect clock)", () =>
    Effect.gen(function* () {
      const fiber = yield* Effect.fork(LlmClient.complete(ask("hi")))
      yield* TestClock.adjust("99 millis")
      expect(yield* calledModels).toEqual([])
      yield* TestClock.adjust("1 milli")
      const response = yield* Fiber.join(fiber)
      expect(response.model).toBe("gpt-4o")
      const calls = yield* FakeLlm.calls
      expect(calls.map((c) => c.at)).toEqual([100])
    }).pipe(Effect.provide(stack(
      perModel({}),
      ModelTier.policy({ tiers, classify: () => Effect.as(Effect.sleep("100 millis"), "complex" as const) })
    ))))

  it.effect("a classifier that returns an unknown name: the default classifier routes, with a warning", () =>
    Effect.gen(function* () {
      const logs: Array<string> = []
      const recorder = Logger.make(({ logLevel, message }) => {
        logs.push(`${logLevel.label} ${Array.isArray(message) ? message.join(" ") : String(message)}`)
      })
      const response = yield* LlmClient.complete(ask("hi", { metadata: { tier: "complex" } })).pipe(
        Effect.provide(Logger.replace(Logger.defaultLogger, recorder))
      )
      expect(response.model).toBe("gpt-4o")
      expect(logs).toHaveLength(1)
      expect(logs[0]).toMatch(/^WARN ModelTier: the classifier returned a name that is not a tier's/)
      expect(logs[0]).not.toContain("gigantic") // a classifier may be a model: its output is never logged
    }).pipe(Effect.provide(stack(
      perModel({}),
      ModelTier.policy({ tiers: tiers as ReadonlyArray<ModelTier.Tier>, classify: () => "gigantic" })
    ))))

  it.effect("defaultClassify reuses the default rules inside a custom classifier", () =>
    Effect.gen(function* () {
      const byDefault = ModelTier.defaultClassify(tiers)
      expect(byDefault(ask("hi"))).toBe("simple")
      expect(byDefault(ask("hi", { model: "gpt-4o" }))).toBe("complex")
      expect(byDefault(ask("hi", { metadata: { tier: "medium" } }))).toBe("medium")
      const options: ModelTier.Options<"simple" | "medium" | "complex"> = {
        tiers,
        classify: (request) => request.messages.length > 2 ? "complex" : byDefault(request)
      }
      expect(yield* modelFor(ask("hi"), options)).toBe("gpt-4o-mini")
      const long = new ChatRequest({ model: "auto", messages: [1, 2, 3].map(() => ({ role: "user" as const, content: "hi" })) })
      expect(yield* modelFor(long, options)).toBe("gpt-4o")
    }))
})

describe("ModelTier.policy: escalation", () => {
  const escalating = (escalate: ModelTier.Escalate) => ModelTier.policy({ tiers, escalate })

  it.effect("an empty answer is asked again of the next tier up: two provider calls, the second answer returned", () =>
    Effect.gen(function* () {
      const { moved, value } = yield* routedDuring(
        LlmClient.complete(ask("hi")),
        [["simple", "heuristic"], ["medium", "escalated"], ["complex", "escalated"]]
      )
      expect(value.model).toBe("gpt-4.1-mini")
      expect(value.content).toBe("from gpt-4.1-mini")
      expect(yield* calledModels).toEqual(["gpt-4o-mini", "gpt-4.1-mini"])
      expect(moved).toEqual({ "simple/heuristic": 1, "medium/escalated": 1 })
    }).pipe(Effect.provide(stack(perModel({ "gpt-4o-mini": FakeLlm.reply("  ") }), escalating({ when: ModelTier.isEmpty })))))

  it.effect("a good answer is returned at once: one provider call", () =>
    Effect.gen(function* () {
      expect((yield* LlmClient.complete(ask("hi"))).model).toBe("gpt-4o-mini")
      expect(yield* calledModels).toEqual(["gpt-4o-mini"])
    }).pipe(Effect.provide(stack(perModel({}), escalating({ when: ModelTier.isEmpty })))))

  const Answer = Schema.Struct({ colours: Schema.Array(Schema.String) })

  it.effect("a JSON answer that fails to decode escalates; `when` sees the tier's request", () =>
    Effect.gen(function* () {
      const seen: Array<string> = []
      const response = yield* LlmClient.complete(ask("List colours", { responseFormat: { type: "json_object" } })).pipe(
        Effect.provide(stack(
          perModel({
            "gpt-4.1-mini": FakeLlm.reply("{\"colours\": \"red\"}"), // wrong shape
            "gpt-4o": FakeLlm.reply("{\"colours\": [\"red\", \"blue\"]}")
          }),
          escalating({
            when: (answer: ChatResponse, request: ChatRequest) => {
              seen.push(request.model)
              return ModelTier.failsToDecode(Answer)(answer)
            }
          })
        ))
      )
      expect(response.model).toBe("gpt-4o")
      expect(JSON.parse(response.content)).toEqual({ colours: ["red", "blue"] })
      expect(seen).toEqual(["gpt-4.1-mini"]) // the top tier's answer is not judged: there is nowhere to go
    }))

  it.effect("failsToDecode: not JSON, the wrong shape and the right shape", () =>
    Effect.sync(() => {
      const reply = (content: string, toolCalls?: ChatResponse["toolCalls"]) =>
        new ChatResponse({
          id: "1",
          model: "m",
          content,
          finishReason: "stop",
          usage: { inputTokens: 1, outputTokens: 1 },
          servedFrom: "provider",
          toolCalls
        })
      const fails = ModelTier.failsToDecode(Answer)
      expect(fails(reply("Sure! Here are colours"))).toBe(true)
      expect(fails(reply("{\"colours\": 3}"))).toBe(true)
      expect(fails(reply("{\"colours\": [\"red\"]}"))).toBe(false)
      expect(ModelTier.isEmpty(reply(" \n"))).toBe(true)
      expect(ModelTier.isEmpty(reply("", [{ id: "1", name: "f", arguments: "{}" }]))).toBe(false)
      expect(ModelTier.isEmpty(reply("ok"))).toBe(false)
    }))

  it.effect("a `when` returning an Effect", () =>
    Effect.gen(function* () {
      expect((yield* LlmClient.complete(ask("hi"))).model).toBe("gpt-4.1-mini")
      expect(yield* calledModels).toEqual(["gpt-4o-mini", "gpt-4.1-mini"])
    }).pipe(Effect.provide(stack(
      perModel({}),
      escalating({ when: (response) => Effect.succeed(response.model === "gpt-4o-mini") })
    ))))

  it.effect("every tier answering badly climbs to the top, and the top's answer is returned: one call a tier", () =>
    Effect.gen(function* () {
      const response = yield* LlmClient.complete(ask("hi"))
      expect(response.model).toBe("gpt-4o")
      expect(response.content).toBe("")
      expect(yield* calledModels).toEqual(["gpt-4o-mini", "gpt-4.1-mini", "gpt-4o"])
    }).pipe(Effect.provide(stack(FakeLlm.reply(""), escalating({ when: ModelTier.isEmpty })))))

  it.effect("maxSteps bounds the climb: maxSteps 1 makes at most two calls and returns the second answer", () =>
    Effect.gen(function* () {
      const response = yield* LlmClient.complete(ask("hi"))
      expect(response.model).toBe("gpt-4.1-mini")
      expect(yield* calledModels).toEqual(["gpt-4o-mini", "gpt-4.1-mini"])
    }).pipe(Effect.provide(stack(FakeLlm.reply(""), escalating({ when: ModelTier.isEmpty, maxSteps: 1 })))))

  it.effect("maxSteps 0 switches escalation off; maxSteps past the top is capped", () =>
    Effect.gen(function* () {
      const calls = (escalate: ModelTier.Escalate) =>
        Effect.gen(function* () {
          yield* LlmClient.complete(ask("hi"))
          return yield* calledModels
        }).pipe(Effect.provide(stack(FakeLlm.reply(""), escalating(escalate))))
      expect(yield* calls({ when: ModelTier.isEmpty, maxSteps: 0 })).toEqual(["gpt-4o-mini"])
      expect(yield* calls({ when: ModelTier.isEmpty, maxSteps: 10 })).toEqual(["gpt-4o-mini", "gpt-4.1-mini", "gpt-4o"])
    }))

  it.effect("a request that starts higher climbs from there (metadata.tier medium → complex)", () =>
    Effect.gen(function* () {
      const { moved, value } = yield* routedDuring(
        LlmClient.complete(ask("hi", { metadata: { tier: "medium" } })),
        [["medium", "metadata"], ["complex", "escalated"]]
      )
      expect(value.model).toBe("gpt-4o")
      expect(yield* calledModels).toEqual(["gpt-4.1-mini", "gpt-4o"])
      expect(moved).toEqual({ "medium/metadata": 1, "complex/escalated": 1 })
    }).pipe(Effect.provide(stack(perModel({ "gpt-4.1-mini": FakeLlm.reply("") }), escalating({ when: ModelTier.isEmpty })))))

  it.effect("errors are never escalated: the tier's error is returned after one call", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(LlmClient.complete(ask("hi")))
      expect(error._tag).toBe("ServerError")
      expect(yield* calledModels).toEqual(["gpt-4o-mini"])
    }).pipe(Effect.provide(stack(
      perModel({ "gpt-4o-mini": FakeLlm.fail(new LlmError.ServerError({ status: 503 })) }),
      escalating({ when: () => true })
    ))))

  it.effect("an escalated call that fails returns its error, not the rejected answer below it", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(LlmClient.complete(ask("hi")))
      expect(error._tag).toBe("RateLimited")
      expect(yield* calledModels).toEqual(["gpt-4o-mini", "gpt-4.1-mini"])
    }).pipe(Effect.provide(stack(
      perModel({ "gpt-4o-mini": FakeLlm.reply(""), "gpt-4.1-mini": FakeLlm.fail(new LlmError.RateLimited({})) }),
      escalating({ when: ModelTier.isEmpty })
    ))))

  it.effect("an escalation takes the time of both calls, on the Effect clock", () =>
    Effect.gen(function* () {
      const fiber = yield* Effect.fork(LlmClient.complete(ask("hi")))
      yield* TestClock.adjust("1 second")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("2 seconds")
      expect((yield* Fiber.join(fiber)).model).toBe("gpt-4.1-mini")
      expect((yield* FakeLlm.calls).map((c) => [c.request.model, c.at])).toEqual([["gpt-4o-mini", 0], ["gpt-4.1-mini", 1000]])
    }).pipe(Effect.provide(stack(
      perModel({
        "gpt-4o-mini": FakeLlm.delay("1 second", FakeLlm.reply("")),
        "gpt-4.1-mini": FakeLlm.delay("2 seconds", FakeLlm.reply("done"))
      }),
      escalating({ when: ModelTier.isEmpty })
    ))))
})

describe("ModelTier.policy: streams", () => {
  const collect = (request: ChatRequest) =>
    Effect.gen(function* () {
      const seen: Array<string> = []
      const exit = yield* Effect.exit(LlmClient.stream(request).pipe(
        Stream.runForEach((c) => Effect.sync(() => seen.push(`${c.model}:${c.content}`)))
      ))
      return { exit, seen }
    })

  it.effect("a stream is routed by tier (metadata and heuristic) and counted", () =>
    Effect.gen(function* () {
      const { moved, value } = yield* routedDuring(
        Effect.all([collect(ask("hi", { metadata: { tier: "medium" } })), collect(ask(promptOf(10_000)))]),
        [["medium", "metadata"], ["complex", "heuristic"]]
      )
      expect(Exit.isSuccess(value[0].exit)).toBe(true)
      expect(value[0].seen).toEqual(["gpt-4.1-mini:streamed ", "gpt-4.1-mini:answer", "gpt-4.1-mini:"])
      expect(value[1].seen[0]).toBe("gpt-4o:streamed ")
      expect(yield* Effect.map(FakeLlm.calls, (calls) => calls.map((c) => [c.kind, c.request.model]))).toEqual([
        ["stream", "gpt-4.1-mini"],
        ["stream", "gpt-4o"]
      ])
      expect(moved).toEqual({ "medium/metadata": 1, "complex/heuristic": 1 })
    }).pipe(Effect.provide(stack(FakeLlm.stream(["streamed ", "answer"]), ModelTier.policy({ tiers })))))

  it.effect("a stream is never escalated: an empty streamed answer is returned as is, after one call", () =>
    Effect.gen(function* () {
      const { exit, seen } = yield* collect(ask("hi"))
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(seen).toEqual(["gpt-4o-mini:"])
      expect(yield* calledModels).toEqual(["gpt-4o-mini"])
    }).pipe(Effect.provide(stack(FakeLlm.stream([]), ModelTier.policy({ tiers, escalate: { when: () => true } })))))
})

describe("ModelTier.policy: telemetry", () => {
  it.effect("llm_tier_routes_total is labelled tier and reason only: never a user id or prompt text", () =>
    Effect.gen(function* () {
      const user = "user-8c1f2e"
      const prompt = "my secret prompt"
      yield* LlmClient.complete(ask(prompt, { user }))
      yield* LlmClient.complete(ask(prompt, { user, metadata: { tier: "complex" } }))
      const pairs = (yield* Metric.snapshot).filter((p) => p.metricKey.name === LlmMetrics.names.tierRoutes)
      expect(LlmMetrics.names.tierRoutes).toBe("llm_tier_routes_total")
      expect(pairs.length).toBeGreaterThan(0)
      for (const pair of pairs) {
        expect(pair.metricKey.tags.map((t) => t.key)).toEqual(["tier", "reason"])
        for (const tag of pair.metricKey.tags) {
          expect(tag.value).not.toContain(user)
          expect(tag.value).not.toContain(prompt)
        }
        expect(["metadata", "model", "heuristic", "classifier", "escalated"])
          .toContain(pair.metricKey.tags[1].value)
      }
    }).pipe(Effect.provide(stack(perModel({}), ModelTier.policy({ tiers })))))

  it.effect("the current span gets llm.tier and llm.tier.reason (the tier that answered)", () =>
    Effect.gen(function* () {
      yield* LlmClient.complete(ask("hi"))
      const span = yield* Effect.currentSpan
      expect(span.attributes.get("llm.tier")).toBe("medium")
      expect(span.attributes.get("llm.tier.reason")).toBe("escalated")
    }).pipe(
      Effect.withSpan("request"),
      Effect.provide(stack(
        perModel({ "gpt-4o-mini": FakeLlm.reply("") }),
        ModelTier.policy({ tiers, escalate: { when: ModelTier.isEmpty } })
      ))
    ))
})

describe("ModelTier.policy: composition with Fallback (ModelTier → Fallback)", () => {
  const composed = (script: FakeLlm.Script, escalate?: ModelTier.Escalate) =>
    stack(script, ModelTier.policy({ tiers, escalate }), Fallback.policy({ models: ["gpt-4o", "gpt-4o-mini"] }))

  it.effect("the tier's model fails: Fallback's chain takes over from that model", () =>
    Effect.gen(function* () {
      const response = yield* LlmClient.complete(ask("hi", { metadata: { tier: "complex" } }))
      expect(response.model).toBe("gpt-4o-mini")
      expect(yield* calledModels).toEqual(["gpt-4o", "gpt-4o-mini"])
    }).pipe(Effect.provide(composed(perModel({ "gpt-4o": FakeLlm.fail(new LlmError.ServerError({ status: 503 })) })))))

  it.effect("a tier's model outside Fallback's list is tried first, then the whole list", () =>
    Effect.gen(function* () {
      const response = yield* LlmClient.complete(ask(promptOf(2_000))) // medium: gpt-4.1-mini
      expect(response.model).toBe("gpt-4o")
      expect(yield* calledModels).toEqual(["gpt-4.1-mini", "gpt-4o"])
    }).pipe(Effect.provide(composed(perModel({ "gpt-4.1-mini": FakeLlm.fail(new LlmError.ModelNotFound({})) })))))

  it.effect("an escalation goes through Fallback too; a fallback answer is judged like any other", () =>
    Effect.gen(function* () {
      const response = yield* LlmClient.complete(ask("hi"))
      // simple answers empty → escalate to medium, which is down → Fallback: gpt-4o answers
      expect(response.model).toBe("gpt-4o")
      expect(yield* calledModels).toEqual(["gpt-4o-mini", "gpt-4.1-mini", "gpt-4o"])
    }).pipe(Effect.provide(composed(
      perModel({ "gpt-4o-mini": FakeLlm.reply(""), "gpt-4.1-mini": FakeLlm.fail(new LlmError.ServerError({ status: 500 })) }),
      { when: ModelTier.isEmpty }
    ))))
})

describe("ModelTier.policy: options", () => {
  const thrown = (options: unknown): InvalidOptions => {
    try {
      ModelTier.policy(options as ModelTier.Options)
    } catch (error) {
      expect(error).toBeInstanceOf(InvalidOptions)
      return error as InvalidOptions
    }
    throw new Error("expected InvalidOptions")
  }

  it("an empty tier list is rejected", () => {
    const error = thrown({ tiers: [] })
    expect(error.target).toBe("ModelTier")
    expect(error.issues).toEqual([{ path: "tiers", message: "Expected at least one tier" }])
  })

  it("every failing path is listed at once, a misspelt key included", () => {
    const error = thrown({
      tiers: [
        { name: "simple", model: "gpt-4o-mini" },
        { name: "simple", model: "" },
        { name: "complex", model: "gpt-4o-mini", price: 3 },
        { name: "", model: "gpt-4o" }
      ],
      classify: "medium",
      heuristic: { mediumTokens: 0, complexTokenz: 10 },
      escalate: { when: true, maxSteps: -1 },
      escalte: {}
    })
    const paths = error.issues.map((i) => i.path)
    expect(paths).toEqual(expect.arrayContaining([
      "tiers.1.model",
      "tiers.2.price",
      "tiers.3.name",
      "classify",
      "heuristic.mediumTokens",
      "heuristic.complexTokenz",
      "escalate.when",
      "escalate.maxSteps",
      "escalte",
      "tiers.1.name", // duplicate name
      "tiers.2.model", // duplicate model
      "heuristic" // only the default classifier uses it
    ]))
    expect(error.message).toContain("Duplicate name \"simple\" (also tiers.0.name)")
  })

  it("mediumTokens above complexTokens is rejected", () => {
    const error = thrown({ tiers, heuristic: { mediumTokens: 9_000 } })
    expect(error.issues).toEqual([
      { path: "heuristic.mediumTokens", message: "Expected at most complexTokens (8000), actual 9000" }
    ])
  })

  it("valid options build a policy named model-tier", () => {
    expect(ModelTier.policy({ tiers }).name).toBe("ModelTier")
    expect(ModelTier.policy({ tiers, heuristic: { complexTokens: 20_000 }, escalate: { when: ModelTier.isEmpty } }).stream)
      .toBeDefined()
  })

  it("defaultClassify validates its tiers", () => {
    expect(() => ModelTier.defaultClassify([])).toThrow(InvalidOptions)
  })
})
