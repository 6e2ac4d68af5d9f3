import { describe, expect, it, layer } from "@effect/vitest"
import { Cause, ConfigProvider, Duration, Effect, Exit, Fiber, Layer, Option, Redacted, Schema, Stream, Tracer } from "effect"
import * as Http from "node:http"
import * as Net from "node:net"
import * as ChaosServer from "../src/ChaosServer.js"
import { ChatRequest } from "../src/Llm.js"
import * as LlmClient from "../src/LlmClient.js"
import * as LlmError from "../src/LlmError.js"
import * as LlmMetrics from "../src/LlmMetrics.js"
import * as OpenAi from "../src/OpenAi.js"

const apiKey = Redacted.make("sk-test-SECRET-0123456789")

const request = (model: string, extra: Partial<ConstructorParameters<typeof ChatRequest>[0]> = {}) =>
  new ChatRequest({ model, messages: [{ role: "user", content: "Say something" }], ...extra })

const statusCases: ReadonlyArray<{
  readonly model: string
  readonly fault: ChaosServer.ErrorFault
  readonly tag: LlmError.Tag
}> = [
  { model: "s400", fault: { status: 400, rate: 1 }, tag: "BadRequest" },
  { model: "s400-context", fault: { status: 400, rate: 1, code: "context_length_exceeded" }, tag: "ContextTooLong" },
  { model: "s400-filter", fault: { status: 400, rate: 1, code: "content_filter" }, tag: "ContentFiltered" },
  { model: "s400-policy", fault: { status: 400, rate: 1, code: "content_policy_violation" }, tag: "ContentFiltered" },
  { model: "s401", fault: { status: 401, rate: 1 }, tag: "AuthError" },
  { model: "s403", fault: { status: 403, rate: 1 }, tag: "AuthError" },
  { model: "s404", fault: { status: 404, rate: 1 }, tag: "ModelNotFound" },
  { model: "s408", fault: { status: 408, rate: 1 }, tag: "ServerError" },
  { model: "s409", fault: { status: 409, rate: 1 }, tag: "ServerError" },
  { model: "s422", fault: { status: 422, rate: 1 }, tag: "BadRequest" },
  { model: "s429", fault: { status: 429, rate: 1 }, tag: "RateLimited" },
  { model: "s429-quota", fault: { status: 429, rate: 1, code: "insufficient_quota" }, tag: "QuotaExhausted" },
  { model: "s500", fault: { status: 500, rate: 1 }, tag: "ServerError" },
  { model: "s502", fault: { status: 502, rate: 1 }, tag: "ServerError" },
  { model: "s503", fault: { status: 503, rate: 1 }, tag: "ServerError" },
  { model: "s529", fault: { status: 529, rate: 1 }, tag: "ServerError" }
]

const perModel: Record<string, ChaosServer.Faults> = {
  ...Object.fromEntries(statusCases.map((c) => [c.model, { errors: [c.fault] }])),
  "after-seconds": { errors: [{ status: 429, rate: 1, retryAfter: { seconds: 2 } }] },
  "after-ms": { errors: [{ status: 503, rate: 1, retryAfter: { ms: 1500 } }] },
  "after-date": { errors: [{ status: 503, rate: 1, retryAfter: { date: 30 } }] },
  malformed: { malformedRate: 1 },
  cut: { cutRate: 1, cutAfterChunks: 3 },
  hang: { hangRate: 1 },
  filtered: { contentFilterRate: 1 },
  drip: { chunkDelay: 50 }
}

const Chaos = ChaosServer.layer({ seed: 7, words: 8, perModel })

const withClient = <A, E>(f: (client: LlmClient.Service) => Effect.Effect<A, E>) =>
  Effect.gen(function* () {
    const server = yield* ChaosServer.ChaosServer
    const client = yield* OpenAi.make({ apiKey, baseURL: server.baseURL })
    return yield* f(client)
  })

const collect = (stream: Stream.Stream<import("../src/Llm.js").ChatChunk, LlmError.LlmError>) =>
  Effect.map(Stream.runCollect(stream), (chunk) => [...chunk])

layer(Chaos, { excludeTestServices: true })("OpenAi over the ChaosServer", (it) => {
  describe("complete", () => {
    it.effect("maps the request and the answer, usage included", () =>
      withClient((client) =>
        Effect.gen(function* () {
          const response = yield* client.complete(request("gpt-4o-mini", { maxTokens: 500, temperature: 0 }))
          expect(response.servedFrom).toBe("provider")
          expect(response.model).toBe("gpt-4o-mini")
          expect(response.finishReason).toBe("stop")
          expect(response.content.split(" ")).toHaveLength(8)
          expect(response.usage.inputTokens).toBeGreaterThan(0)
          expect(response.usage.outputTokens).toBe(Math.ceil(response.content.length / 4))
          expect(response.id).toMatch(/^chatcmpl-chaos-/)
        })
      ))

    it.effect("the same prompt gets the same answer", () =>
      withClient((client) =>
        Effect.gen(function* () {
          const a = yield* client.complete(request("gpt-4o"))
          const b = yield* client.complete(request("gpt-4o"))
          expect(a.content).toBe(b.content)
        })
      ))

    it.effect("maps a forced tool call", () =>
      withClient((client) =>
        Effect.gen(function* () {
          const response = yield* client.complete(request("gpt-4o", {
            tools: [{ name: "lookup", parameters: { type: "object" } }],
            toolChoice: { name: "lookup" }
          }))
          expect(response.finishReason).toBe("tool_calls")
          expect(response.toolCalls?.[0]?.name).toBe("lookup")
          expect(JSON.parse(response.toolCalls?.[0]?.arguments ?? "")).toHaveProperty("query")
        })
      ))

    it.effect("a finish_reason content_filter on a 200 is ContentFiltered", () =>
      withClient((client) =>
        Effect.gen(function* () {
          const error = yield* Effect.flip(client.complete(request("filtered")))
          expect(error._tag).toBe("ContentFiltered")
          expect(error.model).toBe("filtered")
        })
      ))

    for (const c of statusCases) {
      it.effect(`HTTP ${c.fault.status}${c.fault.code ? ` ${c.fault.code}` : ""} → ${c.tag}`, () =>
        withClient((client) =>
          Effect.gen(function* () {
            const error = yield* Effect.flip(client.complete(request(c.model)))
            expect(error._tag).toBe(c.tag)
            expect(error.model).toBe(c.model)
            if (error._tag === "ServerError") expect(error.status).toBe(c.fault.status)
            if (error._tag === "BadRequest") expect(error.status).toBe(c.fault.status)
            if (error._tag === "AuthError") expect(error.status).toBe(c.fault.status)
          })
        ))
    }

    it.effect("a body that is not JSON is MalformedResponse", () =>
      withClient((client) =>
        Effect.gen(function* () {
          const error = yield* Effect.flip(client.complete(request("malformed")))
          expect(error).toBeInstanceOf(LlmError.MalformedResponse)
          expect(LlmError.isRetryable(error)).toBe(true)
        })
      ))

    it.effect("a response cut halfway is a ConnectionError", () =>
      withClient((client) =>
        Effect.gen(function* () {
          const error = yield* Effect.flip(client.complete(request("cut")))
          expect(error._tag).toBe("ConnectionError")
        })
      ))

    it.effect("Retry-After in seconds", () =>
      withClient((client) =>
        Effect.gen(function* () {
          const error = yield* Effect.flip(client.complete(request("after-seconds")))
          expect(error._tag).toBe("RateLimited")
          expect(LlmError.retryAfter(error)).toEqual(Option.some(Duration.seconds(2)))
        })
      ))

    it.effect("retry-after-ms", () =>
      withClient((client) =>
        Effect.gen(function* () {
          const error = yield* Effect.flip(client.complete(request("after-ms")))
          expect(error._tag).toBe("ServerError")
          expect(LlmError.retryAfter(error)).toEqual(Option.some(Duration.millis(1500)))
        })
      ))

    it.effect("Retry-After as an HTTP date, relative to the clock", () =>
      withClient((client) =>
        Effect.gen(function* () {
          const error = yield* Effect.flip(client.complete(request("after-date")))
          const wait = Option.map(LlmError.retryAfter(error), Duration.toMillis)
          // An HTTP date has a resolution of one second.
          expect(Option.getOrThrow(wait)).toBeGreaterThan(28_000)
          expect(Option.getOrThrow(wait)).toBeLessThanOrEqual(30_000)
        })
      ))

    it.effect("interruption aborts the HTTP request: the server sees the client close", () =>
      Effect.gen(function* () {
        const server = yield* ChaosServer.ChaosServer
        const client = yield* OpenAi.make({ apiKey, baseURL: server.baseURL })
        const before = (yield* server.stats).aborted
        const fiber = yield* Effect.fork(client.complete(request("hang")))
        yield* waitFor(server, (s) => (s.byOutcome.hang ?? 0) > 0 && s.inFlight > 0)
        const exit = yield* Fiber.interrupt(fiber)
        expect(Exit.isInterrupted(exit)).toBe(true)
        const stats = yield* waitFor(server, (s) => s.aborted > before)
        expect(stats.aborted).toBe(before + 1)
      }))

    it.effect("the API key never appears in an error, its JSON or its cause", () =>
      withClient((client) =>
        Effect.gen(function* () {
          const exit = yield* Effect.exit(client.complete(request("s401")))
          expect(Exit.isFailure(exit)).toBe(true)
          if (Exit.isSuccess(exit)) return
          const error = Option.getOrThrow(Cause.failureOption(exit.cause))
          const secret = Redacted.value(apiKey)
          const encoded = Schema.encodeSync(LlmError.LlmError)(error)
          for (const text of [error.message, String(error), JSON.stringify(error), JSON.stringify(encoded), Cause.pretty(exit.cause)]) {
            expect(text).not.toContain(secret)
          }
        })
      ))

    it.effect("records provider metrics", () =>
      withClient((client) =>
        Effect.gen(function* () {
          const before = yield* LlmMetrics.snapshot
          yield* client.complete(request("gpt-4o-mini"))
          yield* Effect.flip(client.complete(request("s503")))
          const after = yield* LlmMetrics.snapshot
          expect(after.requests - before.requests).toBe(2)
          expect(after.failures - before.failures).toBe(1)
          expect(after.outputTokens).toBeGreaterThan(before.outputTokens)
        })
      ))

    it.effect("spans carry the GenAI attributes (provider openai, the server, token counts), never text or the key", () =>
      Effect.gen(function* () {
        const spans: Array<{ name: string; attributes: Map<string, unknown> }> = []
        const tracer = capturingTracer(spans)
        const response = yield* withClient((client) => client.complete(request("gpt-4o"))).pipe(Effect.withTracer(tracer))
        yield* withClient((client) => collect(client.stream(request("gpt-4o")))).pipe(Effect.withTracer(tracer))
        // No policy above: each call's span is the adapter's own, named by the GenAI conventions.
        const [complete, stream] = spans.filter((s) => s.name === "chat gpt-4o")
        expect(complete?.attributes.get("gen_ai.provider.name")).toBe("openai")
        expect(complete?.attributes.get("gen_ai.request.model")).toBe("gpt-4o")
        expect(complete?.attributes.get("server.address")).toBe("127.0.0.1")
        expect(typeof complete?.attributes.get("server.port")).toBe("number")
        expect(complete?.attributes.get("llm.served_from")).toBe("provider")
        expect(complete?.attributes.get("gen_ai.usage.output_tokens")).toBe(response.usage.outputTokens)
        expect(stream?.attributes.get("gen_ai.usage.output_tokens")).toBe(response.usage.outputTokens)
        expect(stream?.attributes.get("llm.stream")).toBe(true)
        const dump = JSON.stringify(spans.map((s) => [...s.attributes.entries()]))
        expect(dump).not.toContain(response.content.split(" ")[0])
        expect(dump).not.toContain(Redacted.value(apiKey))
      }))
  })

  describe("stream", () => {
    it.effect("emits deltas whose text is the JSON answer, with finish reason and usage on the last chunk", () =>
      withClient((client) =>
        Effect.gen(function* () {
          const full = yield* client.complete(request("gpt-4o-mini"))
          const chunks = yield* collect(client.stream(request("gpt-4o-mini")))
          expect(chunks.map((c) => c.content).join("")).toBe(full.content)
          const last = chunks[chunks.length - 1]
          expect(last.finishReason).toBe("stop")
          expect(last.usage).toEqual(full.usage)
          expect(chunks.slice(0, -1).every((c) => c.finishReason === undefined && c.usage === undefined)).toBe(true)
          expect(chunks.every((c) => c.servedFrom === "provider")).toBe(true)
        })
      ))

    it.effect("a cut stream fails with StreamTruncated after the chunks it received", () =>
      withClient((client) =>
        Effect.gen(function* () {
          const received: Array<string> = []
          const error = yield* Effect.flip(
            Stream.runForEach(client.stream(request("cut")), (chunk) => Effect.sync(() => received.push(chunk.content)))
          )
          expect(error._tag).toBe("StreamTruncated")
          if (error._tag !== "StreamTruncated") return
          // three words (the opening role delta is not emitted)
          expect(error.receivedChunks).toBe(3)
          expect(received).toHaveLength(3)
          expect(error.model).toBe("cut")
        })
      ))

    it.effect("an invalid JSON event is MalformedResponse; an error status fails before any chunk", () =>
      withClient((client) =>
        Effect.gen(function* () {
          const malformed = yield* Effect.flip(collect(client.stream(request("malformed"))))
          expect(malformed._tag).toBe("MalformedResponse")
          const limited = yield* Effect.flip(collect(client.stream(request("after-seconds"))))
          expect(limited._tag).toBe("RateLimited")
          expect(LlmError.retryAfter(limited)).toEqual(Option.some(Duration.seconds(2)))
        })
      ))

    it.effect("a content_filter finish reason fails the stream with ContentFiltered", () =>
      withClient((client) =>
        Effect.gen(function* () {
          const error = yield* Effect.flip(collect(client.stream(request("filtered"))))
          expect(error._tag).toBe("ContentFiltered")
        })
      ))

    it.effect("a consumer that stops early closes the connection", () =>
      Effect.gen(function* () {
        const server = yield* ChaosServer.ChaosServer
        const client = yield* OpenAi.make({ apiKey, baseURL: server.baseURL })
        const before = (yield* server.stats).aborted
        const chunks = yield* collect(Stream.take(client.stream(request("drip")), 2))
        expect(chunks).toHaveLength(2)
        const stats = yield* waitFor(server, (s) => s.aborted > before)
        expect(stats.aborted).toBe(before + 1)
        expect(stats.inFlight).toBe(0)
      }))

    it.effect("interrupting a stream closes its connection", () =>
      Effect.gen(function* () {
        const server = yield* ChaosServer.ChaosServer
        const client = yield* OpenAi.make({ apiKey, baseURL: server.baseURL })
        const before = (yield* server.stats).aborted
        const fiber = yield* Effect.fork(collect(client.stream(request("hang"))))
        yield* waitFor(server, (s) => s.inFlight > 0)
        yield* Fiber.interrupt(fiber)
        const stats = yield* waitFor(server, (s) => s.aborted > before)
        expect(stats.aborted).toBe(before + 1)
      }))
  })
})

const waitFor = (server: ChaosServer.Service, predicate: (stats: ChaosServer.Stats) => boolean) =>
  Effect.gen(function* () {
    for (let i = 0; i < 200; i++) {
      const stats = yield* server.stats
      if (predicate(stats)) return stats
      yield* Effect.sleep("5 millis")
    }
    return yield* Effect.dieMessage(`condition not reached: ${JSON.stringify(yield* server.stats)}`)
  })

const capturingTracer = (spans: Array<{ name: string; attributes: Map<string, unknown> }>) =>
  Tracer.make({
    span: (name, parent, context, links, startTime, kind) => {
      const attributes = new Map<string, unknown>()
      spans.push({ name, attributes })
      const span: Tracer.Span = {
        _tag: "Span",
        name,
        spanId: `span-${spans.length}`,
        traceId: "trace",
        parent,
        context,
        status: { _tag: "Started", startTime },
        attributes,
        links,
        sampled: true,
        kind,
        end: () => {},
        attribute: (key, value) => void attributes.set(key, value),
        event: () => {},
        addLinks: () => {}
      }
      return span
    },
    context: (f) => f()
  })

// A bare HTTP server that records what it receives and answers with `reply`, to check the exact request the
// adapter sends and how it reads answers ChaosServer does not produce.
type Seen = { headers: Http.IncomingHttpHeaders; body: unknown }
const completion = JSON.stringify({
  id: "x",
  model: "m",
  choices: [{ index: 0, message: { role: "assistant", content: "fine" }, finish_reason: "stop" }]
})
const answerJson = (res: Http.ServerResponse) => {
  res.writeHead(200, { "content-type": "application/json" })
  res.end(completion)
}
const rawServer = (reply: (res: Http.ServerResponse) => void = answerJson) =>
  Effect.acquireRelease(
    Effect.async<{ url: string; server: Http.Server; seen: Array<Seen> }>((resume) => {
      const seen: Array<Seen> = []
      const server = Http.createServer((req, res) => {
        let text = ""
        req.on("data", (chunk) => (text += chunk))
        req.on("end", () => {
          seen.push({ headers: req.headers, body: JSON.parse(text) })
          reply(res)
        })
      })
      server.listen(0, "127.0.0.1", () => {
        const address = server.address() as Net.AddressInfo
        resume(Effect.succeed({ url: `http://127.0.0.1:${address.port}/v1`, server, seen }))
      })
    }),
    ({ server }) =>
      Effect.async<void>((resume) => {
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
  )
const recordingServer = rawServer()

const sseChunk = (content: string | undefined, finish: string | null = null) =>
  `data: ${JSON.stringify({
    id: "s",
    object: "chat.completion.chunk",
    created: 0,
    model: "m",
    choices: [{ index: 0, delta: content === undefined ? {} : { content }, finish_reason: finish }]
  })}\n\n`

const sseServer = (events: ReadonlyArray<string>, end: "end" | "destroy") =>
  rawServer((res) => {
    res.writeHead(200, { "content-type": "text/event-stream" })
    for (const event of events) res.write(event)
    if (end === "end") res.end()
    else setTimeout(() => res.socket?.destroy(), 10)
  })

const closedPort = Effect.async<number>((resume) => {
  const server = Net.createServer()
  server.listen(0, "127.0.0.1", () => {
    const port = (server.address() as Net.AddressInfo).port
    server.close(() => resume(Effect.succeed(port)))
  })
})

describe("OpenAi request mapping", () => {
  it.scopedLive("sends every option, the idempotency key as a header, and never metadata", () =>
    Effect.gen(function* () {
      const recorder = yield* recordingServer
      const client = yield* OpenAi.make({ apiKey, baseURL: recorder.url, defaultHeaders: { "x-team": "search" } })
      const response = yield* client.complete(new ChatRequest({
        model: "gpt-4o",
        messages: [
          { role: "system", content: "Be brief" },
          { role: "user", content: "Find x", name: "ann" },
          { role: "assistant", content: "", toolCalls: [{ id: "call_1", name: "lookup", arguments: "{\"q\":\"x\"}" }] },
          { role: "tool", content: "{\"hit\":1}", toolCallId: "call_1" }
        ],
        maxTokens: 64,
        temperature: 0.2,
        topP: 0.9,
        seed: 3,
        stop: ["END"],
        presencePenalty: 0.1,
        frequencyPenalty: 0.2,
        responseFormat: { type: "json_object" },
        tools: [{ name: "lookup", description: "Looks up", parameters: { type: "object" } }],
        toolChoice: "auto",
        user: "tenant-1",
        idempotencyKey: "order-42",
        metadata: { trace: "abc" }
      }))
      // A body without usage is charged the library's own count (the prompt exactly, the answer from its text).
      expect(response.usage).toMatchObject({ estimated: true, outputTokens: 1 })
      expect(response.usage.inputTokens).toBeGreaterThan(0)
      const [{ body, headers }] = recorder.seen
      expect(headers["idempotency-key"]).toBe("order-42")
      expect(headers["x-team"]).toBe("search")
      expect(headers.authorization).toBe(`Bearer ${Redacted.value(apiKey)}`)
      expect(body).toEqual({
        model: "gpt-4o",
        messages: [
          { role: "system", content: "Be brief" },
          { role: "user", content: "Find x", name: "ann" },
          {
            role: "assistant",
            content: null,
            tool_calls: [{ id: "call_1", type: "function", function: { name: "lookup", arguments: "{\"q\":\"x\"}" } }]
          },
          { role: "tool", content: "{\"hit\":1}", tool_call_id: "call_1" }
        ],
        max_tokens: 64,
        temperature: 0.2,
        top_p: 0.9,
        seed: 3,
        stop: ["END"],
        presence_penalty: 0.1,
        frequency_penalty: 0.2,
        response_format: { type: "json_object" },
        tools: [{ type: "function", function: { name: "lookup", description: "Looks up", parameters: { type: "object" } } }],
        tool_choice: "auto",
        user: "tenant-1"
      })
    }))

  it.scopedLive("an idempotency key that cannot be a header fails with BadRequest before any request is sent", () =>
    Effect.gen(function* () {
      const recorder = yield* recordingServer
      const client = yield* OpenAi.make({ apiKey, baseURL: recorder.url })
      const bad = request("gpt-4o", { idempotencyKey: "order\n42" })
      const error = yield* Effect.flip(client.complete(bad))
      expect(error).toMatchObject({ _tag: "BadRequest", param: "idempotencyKey" })
      expect(LlmError.isRetryable(error)).toBe(false)
      const streamError = yield* Effect.flip(collect(client.stream(bad)))
      expect(streamError._tag).toBe("BadRequest")
      expect(recorder.seen).toHaveLength(0)
    }))

  it.scopedLive("maxTokensParam: max_completion_tokens", () =>
    Effect.gen(function* () {
      const recorder = yield* recordingServer
      const client = yield* OpenAi.make({ apiKey, baseURL: recorder.url, maxTokensParam: "max_completion_tokens" })
      yield* client.complete(request("o3", { maxTokens: 10 }))
      expect(recorder.seen[0].body).toMatchObject({ max_completion_tokens: 10 })
      expect(recorder.seen[0].body).not.toHaveProperty("max_tokens")
    }))

  it.live("a refused connection is a ConnectionError", () =>
    Effect.gen(function* () {
      const port = yield* closedPort
      const client = yield* OpenAi.make({ apiKey, baseURL: `http://127.0.0.1:${port}/v1` })
      const error = yield* Effect.flip(client.complete(request("gpt-4o")))
      expect(error._tag).toBe("ConnectionError")
      if (error._tag === "ConnectionError") expect(error.reason).toBe("ECONNREFUSED")
      expect(error.model).toBe("gpt-4o")
      const streamError = yield* Effect.flip(collect(client.stream(request("gpt-4o"))))
      expect(streamError._tag).toBe("ConnectionError")
    }))

  it.effect("rejects bad options with every failing path, without printing a plain key", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        OpenAi.make({ apiKey: "sk-plain" as unknown as Redacted.Redacted<string>, baseURL: "not a url", maxTokensParam: "tokens" as never })
      )
      expect(error._tag).toBe("InvalidOptions")
      expect(error.issues.map((i) => i.path)).toEqual(["apiKey", "baseURL", "maxTokensParam"])
      expect(error.message).not.toContain("sk-plain")
    }))

  it.effect("rejects headers fetch would refuse, listing each and quoting none", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(OpenAi.make({
        apiKey,
        baseURL: undefined,
        organization: "org-zq7\n1",
        defaultHeaders: { "bad name": "x", Authorization: "Bearer sk-header-secret\r\n", "x-ok": "fine" }
      }))
      expect(error.issues.map((i) => i.path)).toEqual(["organization", "defaultHeaders.bad name", "defaultHeaders.Authorization"])
      expect(error.message).not.toContain("sk-header-secret")
      expect(error.message).not.toContain("org-zq7")
    }))

  it.effect("rejects a misspelt option instead of ignoring it", () =>
    Effect.gen(function* () {
      const options = { apiKey, baseUrl: "http://127.0.0.1:1/v1" } as unknown as OpenAi.Options
      const error = yield* Effect.flip(OpenAi.make(options))
      expect(error.issues.map((i) => i.path)).toEqual(["baseUrl"])
      expect(error.message).not.toContain(Redacted.value(apiKey))
    }))

  it.scopedLive("accepts the SDK's timeout, maxRetries 0, a custom fetch and defaultQuery; rejects SDK retries", () =>
    Effect.gen(function* () {
      const server = yield* ChaosServer.make({ seed: 1 })
      const urls: Array<string> = []
      const countingFetch = (input: string | URL | Request, init?: RequestInit) => {
        urls.push(String(input instanceof Request ? input.url : input))
        return fetch(input, init)
      }
      const client = yield* OpenAi.make({
        apiKey,
        baseURL: server.baseURL,
        timeout: "5 seconds",
        maxRetries: 0,
        fetch: countingFetch,
        defaultQuery: { "api-version": "2024-10-21" }
      })
      const response = yield* client.complete(request("gpt-4o-mini"))
      expect(response.servedFrom).toBe("provider")
      expect(urls).toHaveLength(1)
      expect(urls[0]).toContain("api-version=2024-10-21")
      const error = yield* Effect.flip(
        OpenAi.make({ apiKey, maxRetries: 2 as unknown as 0, timeout: -1 as unknown as Duration.DurationInput })
      )
      expect(error.issues.map((i) => i.path).sort()).toEqual(["maxRetries", "timeout"])
      expect(error.message).toContain("retries belong to Retry.policy")
      // a zero SDK timeout would abort every request at once
      const zero = yield* Effect.flip(OpenAi.make({ apiKey, timeout: 0 }))
      expect(zero.issues.map((i) => i.path)).toEqual(["timeout"])
    }))

  it.live("layerConfig reads OPENAI_API_KEY and OPENAI_BASE_URL", () =>
    Effect.gen(function* () {
      const port = yield* closedPort
      const provider = ConfigProvider.fromMap(new Map([
        ["OPENAI_API_KEY", "sk-from-env"],
        ["OPENAI_BASE_URL", `http://127.0.0.1:${port}/v1`]
      ]))
      const error = yield* LlmClient.complete(request("gpt-4o")).pipe(
        Effect.provide(OpenAi.layerConfig()),
        Effect.withConfigProvider(provider),
        Effect.flip
      )
      // The base URL came from the config: the call went to the closed port.
      expect(error._tag).toBe("ConnectionError")
      const missing = yield* Layer.build(OpenAi.layerConfig()).pipe(
        Effect.scoped,
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map())),
        Effect.flip
      )
      expect(missing._tag).toBe("ConfigError")
    }))

  it.scopedLive("a stream the server ends cleanly without a finish reason or [DONE] is StreamTruncated", () =>
    Effect.gen(function* () {
      const server = yield* sseServer([sseChunk("a"), sseChunk("b")], "end")
      const client = yield* OpenAi.make({ apiKey, baseURL: server.url })
      const error = yield* Effect.flip(collect(client.stream(request("m"))))
      expect(error).toMatchObject({ _tag: "StreamTruncated", receivedChunks: 2 })
    }))

  it.scopedLive("a connection lost after the finish reason ends the stream (only usage and [DONE] are missing)", () =>
    Effect.gen(function* () {
      const server = yield* sseServer([sseChunk("a"), sseChunk(undefined, "stop")], "destroy")
      const client = yield* OpenAi.make({ apiKey, baseURL: server.url })
      const chunks = yield* collect(client.stream(request("m")))
      expect(chunks.map((c) => c.content)).toEqual(["a", ""])
      expect(chunks[1]).toMatchObject({ finishReason: "stop" })
      // the usage event never came: the last chunk carries the library's own count
      expect(chunks[1].usage).toMatchObject({ estimated: true, outputTokens: 1 })
    }))

  it.scopedLive("a connection lost before the finish reason is StreamTruncated", () =>
    Effect.gen(function* () {
      const server = yield* sseServer([sseChunk("a")], "destroy")
      const client = yield* OpenAi.make({ apiKey, baseURL: server.url })
      const error = yield* Effect.flip(collect(client.stream(request("m"))))
      expect(error).toMatchObject({ _tag: "StreamTruncated", receivedChunks: 1 })
    }))
})
