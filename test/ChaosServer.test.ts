import { describe, expect, it, layer } from "@effect/vitest"
import { Effect } from "effect"
import { spawn } from "node:child_process"
import * as ChaosServer from "../src/ChaosServer.js"

interface Reply {
  readonly status: number
  readonly headers: Headers
  readonly text: string | undefined
}

// `text` is undefined when the server cut the connection mid-body.
const send = (url: string, body: unknown, init: RequestInit = {}) =>
  Effect.promise(async (): Promise<Reply> => {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: typeof body === "string" ? body : JSON.stringify(body),
      ...init
    })
    const text = await response.text().catch(() => undefined)
    return { status: response.status, headers: response.headers, text }
  })

const getJson = (url: string) => Effect.promise(() => fetch(url).then((r) => r.json() as Promise<unknown>))

const chat = (server: ChaosServer.Service, model: string, extra: Record<string, unknown> = {}, prompt = "hello") =>
  send(`${server.baseURL}/chat/completions`, { model, messages: [{ role: "user", content: prompt }], ...extra })

const outcome = (reply: Reply): string => {
  if (reply.text === undefined) return "cut"
  if (reply.status !== 200) return `error:${reply.status}`
  try {
    JSON.parse(reply.text)
    return "ok"
  } catch {
    return "malformed"
  }
}

const sseData = (text: string): Array<string> =>
  text.split("\n\n").filter((block) => block.startsWith("data: ")).map((block) => block.slice("data: ".length))

const mixed: ChaosServer.Faults = {
  errors: [{ status: 503, rate: 0.2 }, { status: 429, rate: 0.1 }],
  malformedRate: 0.1,
  cutRate: 0.1
}

const sequence = (seed: number, count: number) =>
  Effect.scoped(Effect.gen(function* () {
    const server = yield* ChaosServer.make({ seed, faults: mixed })
    const outcomes: Array<string> = []
    for (let i = 0; i < count; i++) outcomes.push(outcome(yield* chat(server, "gpt-4o", {}, `prompt ${i % 3}`)))
    return { outcomes, stats: yield* server.stats }
  }))

type Dialect = "chat" | "responses" | "messages"

const ask = (server: ChaosServer.Service, dialect: Dialect, model: string, prompt: string, extra: Record<string, unknown> = {}) => {
  switch (dialect) {
    case "chat":
      return chat(server, model, extra, prompt)
    case "responses":
      return send(`${server.baseURL}/responses`, { model, input: prompt, ...extra })
    case "messages":
      return send(`${server.url}/v1/messages`, { model, max_tokens: 256, messages: [{ role: "user", content: prompt }], ...extra })
  }
}

const dialectSequence = (seed: number, dialects: ReadonlyArray<Dialect>) =>
  Effect.scoped(Effect.gen(function* () {
    const server = yield* ChaosServer.make({ seed, faults: mixed })
    const outcomes: Array<string> = []
    for (const [i, dialect] of dialects.entries()) outcomes.push(outcome(yield* ask(server, dialect, "gpt-4o", `prompt ${i % 3}`)))
    return { outcomes, stats: yield* server.stats }
  }))

const Chaos = ChaosServer.layer({
  seed: 11,
  models: ["alpha", "beta"],
  words: 6,
  perModel: {
    quota: { errors: [{ status: 429, rate: 1, code: "insufficient_quota", retryAfter: { seconds: 3 } }] },
    context: { errors: [{ status: 400, rate: 1, code: "context_length_exceeded" }] },
    filter: { errors: [{ status: 400, rate: 1, code: "content_filter" }] },
    s401: { errors: [{ status: 401, rate: 1 }] },
    s404: { errors: [{ status: 404, rate: 1 }] },
    s429: { errors: [{ status: 429, rate: 1, retryAfter: { ms: 250 } }] },
    s529: { errors: [{ status: 529, rate: 1, retryAfter: { date: 10 } }] },
    slow: { latency: 40 },
    drip: { firstTokenDelay: 30, chunkDelay: 5 },
    hang: { hangRate: 1 },
    down: { outage: { status: 502, retryAfter: { seconds: 1 } } }
  }
})

layer(Chaos, { excludeTestServices: true })("ChaosServer", (it) => {
  it.effect("lists its models", () =>
    Effect.gen(function* () {
      const server = yield* ChaosServer.ChaosServer
      expect(server.baseURL).toBe(`http://127.0.0.1:${server.port}/v1`)
      expect(server.port).toBeGreaterThan(0)
      const list = yield* getJson(`${server.baseURL}/models`)
      expect(list).toMatchObject({ object: "list", data: [{ id: "alpha", object: "model" }, { id: "beta", object: "model" }] })
    }))

  it.effect("answers a chat.completion with usage, deterministic per prompt", () =>
    Effect.gen(function* () {
      const server = yield* ChaosServer.ChaosServer
      const a = JSON.parse((yield* chat(server, "alpha")).text ?? "")
      const b = JSON.parse((yield* chat(server, "alpha")).text ?? "")
      const other = JSON.parse((yield* chat(server, "alpha", {}, "something else entirely")).text ?? "")
      expect(a.object).toBe("chat.completion")
      expect(a.choices[0].message.role).toBe("assistant")
      expect(a.choices[0].finish_reason).toBe("stop")
      expect(a.choices[0].message.content.split(" ")).toHaveLength(6)
      expect(a.choices[0].message.content).toBe(b.choices[0].message.content)
      expect(other.choices[0].message.content).not.toBe(a.choices[0].message.content)
      expect(a.usage.completion_tokens).toBe(Math.ceil(a.choices[0].message.content.length / 4))
      expect(a.usage.total_tokens).toBe(a.usage.prompt_tokens + a.usage.completion_tokens)
    }))

  it.effect("honours max_tokens (finish_reason length) and JSON mode", () =>
    Effect.gen(function* () {
      const server = yield* ChaosServer.ChaosServer
      const short = JSON.parse((yield* chat(server, "alpha", { max_tokens: 2 })).text ?? "")
      expect(short.choices[0].finish_reason).toBe("length")
      expect(short.choices[0].message.content.length).toBeLessThanOrEqual(8)
      const json = JSON.parse((yield* chat(server, "alpha", { response_format: { type: "json_object" } })).text ?? "")
      expect(JSON.parse(json.choices[0].message.content)).toHaveProperty("answer")
    }))

  it.effect("streams chat.completion.chunk events, a finish chunk, a usage chunk and [DONE]", () =>
    Effect.gen(function* () {
      const server = yield* ChaosServer.ChaosServer
      const full = JSON.parse((yield* chat(server, "alpha")).text ?? "")
      const reply = yield* chat(server, "alpha", { stream: true, stream_options: { include_usage: true } })
      expect(reply.headers.get("content-type")).toContain("text/event-stream")
      const events = sseData(reply.text ?? "")
      expect(events[events.length - 1]).toBe("[DONE]")
      const chunks = events.slice(0, -1).map((e) => JSON.parse(e))
      expect(chunks.every((c) => c.object === "chat.completion.chunk")).toBe(true)
      expect(chunks[0].choices[0].delta.role).toBe("assistant")
      const text = chunks.map((c) => c.choices[0]?.delta.content ?? "").join("")
      expect(text).toBe(full.choices[0].message.content)
      const finish = chunks[chunks.length - 2]
      expect(finish.choices[0].finish_reason).toBe("stop")
      const usage = chunks[chunks.length - 1]
      expect(usage.choices).toEqual([])
      expect(usage.usage).toEqual(full.usage)
      const noUsage = sseData((yield* chat(server, "alpha", { stream: true })).text ?? "")
      expect(noUsage.slice(0, -1).map((e) => JSON.parse(e)).some((c) => c.usage !== undefined)).toBe(false)
    }))

  it.effect("special statuses get OpenAI's error bodies and Retry-After headers", () =>
    Effect.gen(function* () {
      const server = yield* ChaosServer.ChaosServer
      const body = (reply: Reply) => JSON.parse(reply.text ?? "").error
      const quota = yield* chat(server, "quota")
      expect(quota.status).toBe(429)
      expect(body(quota)).toMatchObject({ code: "insufficient_quota", type: "insufficient_quota" })
      expect(quota.headers.get("retry-after")).toBe("3")
      expect(body(yield* chat(server, "context"))).toMatchObject({ code: "context_length_exceeded", param: "messages" })
      expect(body(yield* chat(server, "filter"))).toMatchObject({ code: "content_filter" })
      expect(body(yield* chat(server, "s401"))).toMatchObject({ code: "invalid_api_key" })
      expect(body(yield* chat(server, "s404"))).toMatchObject({ code: "model_not_found", param: "model" })
      const limited = yield* chat(server, "s429")
      expect(body(limited)).toMatchObject({ code: "rate_limit_exceeded" })
      expect(limited.headers.get("retry-after-ms")).toBe("250")
      const overloaded = yield* chat(server, "s529")
      expect(overloaded.status).toBe(529)
      expect(body(overloaded)).toMatchObject({ type: "overloaded_error" })
      const at = Date.parse(overloaded.headers.get("retry-after") ?? "")
      expect(at - Date.now()).toBeGreaterThan(8_000)
      expect(at - Date.now()).toBeLessThanOrEqual(10_000)
    }))

  it.effect("an outage fails every request of its model", () =>
    Effect.gen(function* () {
      const server = yield* ChaosServer.ChaosServer
      for (let i = 0; i < 3; i++) {
        const reply = yield* chat(server, "down")
        expect(reply.status).toBe(502)
        expect(reply.headers.get("retry-after")).toBe("1")
      }
    }))

  it.effect("waits the configured latency, time to first token and chunk gaps", () =>
    Effect.gen(function* () {
      const server = yield* ChaosServer.ChaosServer
      const start = performance.now()
      yield* chat(server, "slow")
      expect(performance.now() - start).toBeGreaterThanOrEqual(38)
      const streamStart = performance.now()
      const reply = yield* chat(server, "drip", { stream: true })
      // 30 ms to the first chunk, then 5 ms before each of the 6 words and the finish chunk.
      expect(performance.now() - streamStart).toBeGreaterThanOrEqual(30 + 7 * 5 - 3)
      expect(sseData(reply.text ?? "").at(-1)).toBe("[DONE]")
    }))

  it.effect("rejects a bad body with 400 and the failing paths", () =>
    Effect.gen(function* () {
      const server = yield* ChaosServer.ChaosServer
      const notJson = yield* send(`${server.baseURL}/chat/completions`, "{nope")
      expect(notJson.status).toBe(400)
      const invalid = yield* send(`${server.baseURL}/chat/completions`, { model: "", messages: "x" })
      expect(invalid.status).toBe(400)
      const error = JSON.parse(invalid.text ?? "").error
      expect(error.type).toBe("invalid_request_error")
      expect(error.message).toContain("model")
      expect(error.message).toContain("messages")
      for (const limit of [0, -5, 1.5]) {
        const reply = yield* chat(server, "alpha", { max_tokens: limit })
        expect(reply.status).toBe(400)
        expect(JSON.parse(reply.text ?? "").error.param).toBe("max_tokens")
      }
    }))

  it.effect("opens a stream with OpenAI's first chunk; with include_usage every chunk but the last has usage: null", () =>
    Effect.gen(function* () {
      const server = yield* ChaosServer.ChaosServer
      const plain = sseData((yield* chat(server, "alpha", { stream: true })).text ?? "").slice(0, -1).map((e) => JSON.parse(e))
      expect(plain[0].choices).toEqual([{ index: 0, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }])
      expect(plain.some((c) => "usage" in c)).toBe(false)
      const withUsage = sseData((yield* chat(server, "alpha", { stream: true, stream_options: { include_usage: true } })).text ?? "")
        .slice(0, -1).map((e) => JSON.parse(e))
      expect(withUsage.slice(0, -1).every((c) => c.usage === null)).toBe(true)
      expect(withUsage.at(-1).usage.total_tokens).toBeGreaterThan(0)
    }))

  it.effect("a json_schema response format gets a value of the schema; json_object gets { answer }", () =>
    Effect.gen(function* () {
      const server = yield* ChaosServer.ChaosServer
      const schema = {
        type: "object",
        properties: { city: { type: "string" }, days: { type: "integer", minimum: 2 }, tags: { type: "array", items: { enum: ["a", "b"] } } },
        required: ["city", "days", "tags"],
        additionalProperties: false
      }
      const reply = JSON.parse((yield* chat(server, "alpha", { response_format: { type: "json_schema", json_schema: { name: "x", schema } } })).text ?? "")
      expect(JSON.parse(reply.choices[0].message.content)).toEqual({ city: expect.any(String), days: 2, tags: ["a"] })
      const responses = JSON.parse((yield* ask(server, "responses", "alpha", "hi", { text: { format: { type: "json_schema", name: "x", schema } } })).text ?? "")
      expect(JSON.parse(responses.output[0].content[0].text)).toMatchObject({ days: 2, tags: ["a"] })
    }))

  it.effect("a forced tool streams as tool_calls deltas (id and name first, then the arguments)", () =>
    Effect.gen(function* () {
      const server = yield* ChaosServer.ChaosServer
      const tools = [{ type: "function", function: { name: "lookup", parameters: { type: "object", properties: { q: { type: "string" } } } } }]
      const events = sseData((yield* chat(server, "alpha", { stream: true, tools, tool_choice: "required" })).text ?? "")
      expect(events.at(-1)).toBe("[DONE]")
      const chunks = events.slice(0, -1).map((e) => JSON.parse(e))
      const head = chunks[0].choices[0].delta
      expect(head).toMatchObject({ role: "assistant", content: null, tool_calls: [{ index: 0, id: expect.stringMatching(/^call_chaos_/), function: { name: "lookup", arguments: "" } }] })
      const args = chunks.slice(1, -1).map((c) => c.choices[0].delta.tool_calls[0].function.arguments).join("")
      expect(JSON.parse(args)).toEqual({ q: expect.any(String) })
      expect(chunks.at(-1).choices[0].finish_reason).toBe("tool_calls")
    }))

  it.effect("Anthropic and Responses bodies that are not valid requests get a 400 in their own format", () =>
    Effect.gen(function* () {
      const server = yield* ChaosServer.ChaosServer
      const messages = yield* send(`${server.url}/v1/messages`, { model: "", messages: [{ role: "system", content: "x" }] })
      expect(messages.status).toBe(400)
      const error = JSON.parse(messages.text ?? "")
      expect(error).toMatchObject({ type: "error", error: { type: "invalid_request_error" } })
      for (const path of ["model", "max_tokens", "messages.0.role"]) expect(error.error.message).toContain(path)
      expect((yield* send(`${server.url}/v1/messages`, "{nope")).status).toBe(400)
      const responses = yield* send(`${server.baseURL}/responses`, { model: "m", max_output_tokens: 0 })
      expect(responses.status).toBe(400)
      expect(JSON.parse(responses.text ?? "").error).toMatchObject({ type: "invalid_request_error", param: "max_output_tokens" })
    }))

  it.effect("lists the models in Anthropic's shape for Anthropic clients", () =>
    Effect.gen(function* () {
      const server = yield* ChaosServer.ChaosServer
      const list = yield* Effect.promise(() =>
        fetch(`${server.url}/v1/models`, { headers: { "anthropic-version": "2023-06-01", "x-api-key": "sk-ant-chaos" } })
          .then((r) => r.json() as Promise<unknown>)
      )
      expect(list).toEqual({
        data: [
          { type: "model", id: "alpha", display_name: "alpha", created_at: "1970-01-01T00:00:00Z" },
          { type: "model", id: "beta", display_name: "beta", created_at: "1970-01-01T00:00:00Z" }
        ],
        has_more: false,
        first_id: "alpha",
        last_id: "beta"
      })
    }))

  it.effect("counts client aborts of a hanging request", () =>
    Effect.gen(function* () {
      const server = yield* ChaosServer.ChaosServer
      const before = yield* server.stats
      const controller = new AbortController()
      const pending = fetch(`${server.baseURL}/chat/completions`, {
        method: "POST",
        body: JSON.stringify({ model: "hang", messages: [] }),
        signal: controller.signal
      }).catch(() => "aborted")
      for (let i = 0; i < 100 && (yield* server.stats).inFlight === before.inFlight; i++) yield* Effect.sleep("5 millis")
      controller.abort()
      expect(yield* Effect.promise(() => pending)).toBe("aborted")
      let after = yield* server.stats
      for (let i = 0; i < 100 && after.aborted === before.aborted; i++) {
        yield* Effect.sleep("5 millis")
        after = yield* server.stats
      }
      expect(after.aborted).toBe(before.aborted + 1)
      expect(after.byOutcome.hang).toBe((before.byOutcome.hang ?? 0) + 1)
      expect(after.inFlight).toBe(before.inFlight)
    }))
})

describe("ChaosServer faults", () => {
  it.live("the same seed and the same requests give the same faults; another seed others", () =>
    Effect.gen(function* () {
      const a = yield* sequence(42, 40)
      const b = yield* sequence(42, 40)
      const c = yield* sequence(43, 40)
      expect(a.outcomes).toEqual(b.outcomes)
      expect(c.outcomes).not.toEqual(a.outcomes)
      // every fault kind showed up, and the server's own counters agree with what the client saw
      for (const kind of ["ok", "error:503", "error:429", "malformed", "cut"]) expect(a.outcomes).toContain(kind)
      const seen: Record<string, number> = {}
      for (const o of a.outcomes) seen[o] = (seen[o] ?? 0) + 1
      expect(a.stats.byOutcome).toEqual(seen)
      expect(a.stats.requests).toBe(40)
      expect(a.stats.byModel).toEqual({ "gpt-4o": 40 })
    }))

  it.live("the dialects share one fault sequence: request n gets the same fault whatever its dialect", () =>
    Effect.gen(function* () {
      const dialects: ReadonlyArray<Dialect> = ["chat", "responses", "messages"]
      const mixedDialects = Array.from({ length: 30 }, (_, i) => dialects[i % 3])
      const chatOnly = yield* dialectSequence(42, mixedDialects.map(() => "chat"))
      const interleaved = yield* dialectSequence(42, mixedDialects)
      expect(interleaved.outcomes).toEqual(chatOnly.outcomes)
      expect(interleaved.stats.byOutcome).toEqual(chatOnly.stats.byOutcome)
      expect(interleaved.stats.byDialect).toEqual({ chat: 10, responses: 10, messages: 10 })
    }))

  it.live("usage: false leaves usage out of chat completions, their streams and Responses; Anthropic keeps it", () =>
    Effect.scoped(Effect.gen(function* () {
      const server = yield* ChaosServer.make({ usage: false })
      const body = JSON.parse((yield* chat(server, "m")).text ?? "")
      expect(body.choices[0].message.content.length).toBeGreaterThan(0)
      expect("usage" in body).toBe(false)
      const events = sseData((yield* chat(server, "m", { stream: true, stream_options: { include_usage: true } })).text ?? "")
      expect(events.at(-1)).toBe("[DONE]")
      const chunks = events.slice(0, -1).map((e) => JSON.parse(e))
      expect(chunks.some((c) => "usage" in c || c.choices.length === 0)).toBe(false)
      expect(chunks.at(-1).choices[0].finish_reason).toBe("stop")
      const response = JSON.parse((yield* ask(server, "responses", "m", "hi")).text ?? "")
      expect(response.status).toBe("completed")
      expect("usage" in response).toBe(false)
      const streamed = (yield* ask(server, "responses", "m", "hi", { stream: true })).text ?? ""
      expect(streamed).toContain("response.completed")
      expect(streamed).not.toContain("input_tokens")
      expect(JSON.parse((yield* ask(server, "messages", "m", "hi")).text ?? "").usage.output_tokens).toBeGreaterThan(0)
    })))

  it.live("toolCalls: 'named' calls a tool the prompt names, 'offered' any offered tool, 'forced' only forced ones", () =>
    Effect.scoped(Effect.gen(function* () {
      const tools = [{ type: "function", function: { name: "lookup" } }]
      const calls = (server: ChaosServer.Service, prompt: string, extra: Record<string, unknown> = {}) =>
        Effect.map(chat(server, "m", { tools, ...extra }, prompt), (reply) => JSON.parse(reply.text ?? "").choices[0].finish_reason === "tool_calls")
      const named = yield* ChaosServer.make()
      expect(yield* calls(named, "hello")).toBe(false)
      expect(yield* calls(named, "please use lookup")).toBe(true)
      expect(yield* calls(named, "please use lookup", { tool_choice: "none" })).toBe(false)
      expect(yield* calls(named, "hello", { tool_choice: { type: "function", function: { name: "lookup" } } })).toBe(true)
      const offered = yield* ChaosServer.make({ toolCalls: "offered" })
      expect(yield* calls(offered, "hello")).toBe(true)
      // After the tool's result, the answer is text.
      const afterResult = yield* send(`${offered.baseURL}/chat/completions`, {
        model: "m",
        tools,
        messages: [
          { role: "user", content: "hello" },
          { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "lookup", arguments: "{}" } }] },
          { role: "tool", tool_call_id: "call_1", content: "{\"hits\":1}" }
        ]
      })
      expect(JSON.parse(afterResult.text ?? "").choices[0].finish_reason).toBe("stop")
      const forced = yield* ChaosServer.make({ toolCalls: "forced" })
      expect(yield* calls(forced, "please use lookup")).toBe(false)
      expect(yield* calls(forced, "hello", { tool_choice: "required" })).toBe(true)
    })))

  it.live("streams are cut before their finish chunk and [DONE]", () =>
    Effect.scoped(Effect.gen(function* () {
      const server = yield* ChaosServer.make({ faults: { cutRate: 1, cutAfterChunks: 2 } })
      const reply = yield* send(`${server.baseURL}/chat/completions`, {
        model: "m",
        messages: [{ role: "user", content: "x" }],
        stream: true
      })
      // fetch's body read fails when the connection closes mid-stream
      expect(reply.text).toBeUndefined()
      const stats = yield* server.stats
      expect(stats.byOutcome).toEqual({ cut: 1 })
      expect(stats.aborted).toBe(0)
    })))

  it.live("lists every failing option path", () =>
    Effect.scoped(Effect.gen(function* () {
      const error = yield* Effect.flip(ChaosServer.make({
        port: -1,
        seed: 1.5,
        models: [""],
        faults: {
          errors: [{ status: 200, rate: 2 }],
          hangRate: Number.NaN,
          latency: "soon" as never,
          outage: { status: 302 }
        },
        perModel: { a: { cutRate: 0.7, malformedRate: 0.7 }, b: { retryAfter: 1 } as never },
        usage: "no" as never,
        toolCalls: "always" as never
      }))
      expect(error._tag).toBe("InvalidOptions")
      if (error._tag !== "InvalidOptions") return
      expect(error.issues.map((i) => i.path).sort()).toEqual([
        "faults.errors.0.rate",
        "faults.errors.0.status",
        "faults.hangRate",
        "faults.latency",
        "faults.outage.status",
        "models.0",
        "perModel.a",
        "perModel.b.retryAfter",
        "port",
        "seed",
        "toolCalls",
        "usage"
      ])
      expect(error.message).toContain("add up to at most 1")
    })))

  it.live("/_chaos/config swaps the faults at run time and rejects bad settings with every path", () =>
    Effect.scoped(Effect.gen(function* () {
      const server = yield* ChaosServer.make({ seed: 5 })
      expect((yield* chat(server, "m")).status).toBe(200)
      const swap = yield* send(`${server.url}/_chaos/config`, { faults: { outage: {} } })
      expect(swap.status).toBe(200)
      expect((yield* chat(server, "m")).status).toBe(503)
      const bad = yield* send(`${server.url}/_chaos/config`, { faults: { hangRate: 3, errors: [{ status: 503 }] } })
      expect(bad.status).toBe(400)
      const issues = JSON.parse(bad.text ?? "").error.issues as Array<{ path: string }>
      expect(issues.map((i) => i.path).sort()).toEqual(["faults.errors.0.rate", "faults.hangRate"])
      // the bad settings were not installed
      expect((yield* chat(server, "m")).status).toBe(503)
      yield* server.setConfig({ perModel: { m: { errors: [{ status: 418, rate: 1 }] } } })
      expect((yield* chat(server, "m")).status).toBe(418)
      expect((yield* chat(server, "other")).status).toBe(200)
      const invalid = yield* Effect.flip(server.setConfig({ faults: { cutRate: -1 } }))
      expect(invalid.issues.map((i) => i.path)).toEqual(["faults.cutRate"])
    })))

  it.live("/_chaos/stats counts by model and outcome; /_chaos/reset zeroes it", () =>
    Effect.scoped(Effect.gen(function* () {
      const server = yield* ChaosServer.make({ perModel: { bad: { errors: [{ status: 500, rate: 1 }] } } })
      yield* chat(server, "good")
      yield* chat(server, "good")
      yield* chat(server, "bad")
      const stats = yield* getJson(`${server.url}/_chaos/stats`)
      expect(stats).toEqual({
        requests: 3,
        byModel: { good: 2, bad: 1 },
        byDialect: { chat: 3 },
        byOutcome: { ok: 2, "error:500": 1 },
        aborted: 0,
        inFlight: 0
      })
      expect((yield* send(`${server.url}/_chaos/reset`, {})).status).toBe(200)
      expect(yield* server.stats).toEqual({ requests: 0, byModel: {}, byDialect: {}, byOutcome: {}, aborted: 0, inFlight: 0 })
    })))

  it.live("counts models named like Object.prototype keys like any other", () =>
    Effect.scoped(Effect.gen(function* () {
      const server = yield* ChaosServer.make()
      for (const model of ["constructor", "__proto__", "constructor"]) expect((yield* chat(server, model)).status).toBe(200)
      const stats = yield* server.stats
      expect(stats.requests).toBe(3)
      expect(Object.entries(stats.byModel)).toEqual([["constructor", 2], ["__proto__", 1]])
      expect(JSON.parse(JSON.stringify(yield* getJson(`${server.url}/_chaos/stats`))).byModel.constructor).toBe(2)
    })))

  it.live("the CLI starts a server with the given faults and stops on SIGINT", () =>
    Effect.scoped(Effect.gen(function* () {
      // Killed on the way out if an assertion fails first, so a failing run leaves no server behind.
      const child = yield* Effect.acquireRelease(
        Effect.sync(() =>
          spawn(process.execPath, ["bin/cli.js", "chaos-server", "--port", "0", "--seed", "3", "--outage", "502"], {
            stdio: ["ignore", "pipe", "pipe"]
          })
        ),
        (child) => Effect.sync(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"))
      )
      const baseURL = yield* Effect.async<string, Error>((resume) => {
        let out = ""
        child.stdout.on("data", (data) => {
          out += String(data)
          const match = /listening on (\S+)/.exec(out)
          if (match) resume(Effect.succeed(match[1]))
        })
        child.on("exit", (code) => resume(Effect.fail(new Error(`exited with ${code}`))))
      })
      const reply = yield* send(`${baseURL}/chat/completions`, { model: "m", messages: [] })
      expect(reply.status).toBe(502)
      const code = yield* Effect.async<number | null>((resume) => {
        child.on("exit", (exitCode) => resume(Effect.succeed(exitCode)))
        child.kill("SIGINT")
      })
      expect(code).toBe(0)
    })), 20_000)
})
