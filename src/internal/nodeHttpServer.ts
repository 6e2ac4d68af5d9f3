/**
 * A `@effect/platform` HttpServer on plain `node:http`, so the ChaosServer needs no `@effect/platform-node`.
 *
 * Each Node request (its body read whole) becomes a web `Request` wrapped by `HttpServerRequest.fromWeb`; the app's
 * response is written back to the Node response chunk by chunk (a stream body as it is produced, with back-pressure). A client
 * that closes its connection before the end interrupts the handler; a stream body that fails after its headers went
 * out closes the connection (the client sees a cut response). Closing the scope closes every connection and
 * interrupts every handler still running.
 */
import { HttpApp, HttpServer, HttpServerError, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import type { HttpMiddleware } from "@effect/platform"
import { Cookies } from "@effect/platform"
import { Chunk, Effect, Fiber, Runtime, Stream } from "effect"
import type { Scope } from "effect"
import type * as Http from "node:http"
import type * as Net from "node:net"
import { Readable } from "node:stream"

// The Node response of each request, keyed by its web Request (`source`), which survives `request.modify`.
const responses = new WeakMap<object, Http.ServerResponse>()

/** The Node response a request served by this server answers on. */
export const toServerResponse = (request: HttpServerRequest.HttpServerRequest): Http.ServerResponse => {
  const response = responses.get(request.source as object)
  if (response === undefined) throw new Error("toServerResponse: the request was not served by the node:http server")
  return response
}

/** The most a request body may hold (as with `@effect/platform-node`'s server): beyond it the answer is a 413. */
const maxBodyBytes = 10 * 1024 * 1024

/** The 413's body, in OpenAI's error shape. */
const tooLarge = JSON.stringify({
  error: { message: "The request body is larger than 10 MiB", type: "invalid_request_error", code: "request_too_large", param: null }
})

const webRequest = (incoming: Http.IncomingMessage, body: Uint8Array | undefined): Request => {
  const headers = new Headers()
  for (const [name, value] of Object.entries(incoming.headers)) {
    if (Array.isArray(value)) value.forEach((v) => headers.append(name, v))
    else if (value !== undefined) headers.set(name, value)
  }
  const url = new URL(incoming.url ?? "/", "http://127.0.0.1")
  return new Request(url, { method: incoming.method ?? "GET", headers, ...(body === undefined ? {} : { body }) })
}

/**
 * Reads the whole body first (the requests this server answers are small), so the handler starts with it at hand:
 * a web body stream over the socket costs more than the request itself on a cold start.
 */
const withBody = (
  incoming: Http.IncomingMessage,
  node: Http.ServerResponse,
  onBody: (body: Uint8Array | undefined) => void
): void => {
  const method = incoming.method ?? "GET"
  if (method === "GET" || method === "HEAD") return onBody(undefined)
  const chunks: Array<Buffer> = []
  let size = 0
  incoming.on("data", (chunk: Buffer) => {
    size += chunk.length
    if (size <= maxBodyBytes) chunks.push(chunk)
  })
  incoming.once("end", () => {
    if (size > maxBodyBytes) {
      // OpenAI's error shape, which every server here speaks and the SDKs parse (an APIError with status 413).
      return void node.writeHead(413, { "content-type": "application/json" }).end(tooLarge)
    }
    onBody(Buffer.concat(chunks))
  })
}

const headersOf = (response: HttpServerResponse.HttpServerResponse): Record<string, string | Array<string>> => {
  if (Cookies.isEmpty(response.cookies)) return response.headers
  const setCookie = Cookies.toSetCookieHeaders(response.cookies)
  const existing = response.headers["set-cookie"]
  return { ...response.headers, "set-cookie": existing === undefined ? setCookie : [existing, ...setCookie] }
}

const end = (node: Http.ServerResponse, body?: Uint8Array | string) =>
  Effect.async<void>((resume) => {
    node.end(body ?? "", () => resume(Effect.void))
  })

// After the headers went out, a failure can only be told by closing the connection mid-body.
const abandon = (node: Http.ServerResponse) =>
  Effect.sync(() => {
    if (!node.headersSent) node.writeHead(500).end()
    else if (!node.writableEnded) node.destroy()
  })

const writeStream = (node: Http.ServerResponse, stream: Stream.Stream<Uint8Array, unknown>) =>
  Effect.suspend(() => {
    const drained = Effect.unsafeMakeLatch(true)
    node.on("drain", () => drained.unsafeOpen())
    return stream.pipe(
      Stream.runForEachChunk((chunk) => {
        let full = false
        for (const bytes of Chunk.toReadonlyArray(chunk)) full = !node.write(bytes)
        if (!full) return Effect.void
        drained.unsafeClose()
        return drained.await
      }),
      Effect.interruptible,
      Effect.matchCauseEffect({ onSuccess: () => end(node), onFailure: () => abandon(node) })
    )
  })

// Any other body (FormData, a Raw body that is neither text nor bytes) goes through the web Response, whose headers
// carry what the body implies (a multipart boundary).
const fromWeb = (node: Http.ServerResponse, response: HttpServerResponse.HttpServerResponse) =>
  Effect.async<void>((resume) => {
    const web = HttpServerResponse.toWeb(response)
    node.writeHead(response.status, { ...headersOf(response), ...Object.fromEntries(web.headers) })
    if (web.body === null) return void node.end(() => resume(Effect.void))
    Readable.fromWeb(web.body as Parameters<typeof Readable.fromWeb>[0]).pipe(node)
      .once("finish", () => resume(Effect.void))
      .once("error", () => resume(abandon(node)))
  })

const writeResponse = (request: HttpServerRequest.HttpServerRequest, response: HttpServerResponse.HttpServerResponse) =>
  Effect.suspend((): Effect.Effect<void> => {
    const node = toServerResponse(request)
    if (node.writableEnded || node.destroyed) return Effect.void
    const body = response.body
    const simple = body._tag !== "FormData" &&
      (body._tag !== "Raw" || typeof body.body === "string" || body.body instanceof Uint8Array)
    if (!simple && request.method !== "HEAD") return fromWeb(node, response)
    node.writeHead(response.status, headersOf(response))
    if (request.method === "HEAD" || body._tag === "Empty") return end(node)
    if (body._tag === "Uint8Array") return end(node, body.body)
    if (body._tag === "Stream") return writeStream(node, body.stream)
    return end(node, body._tag === "Raw" ? body.body as string | Uint8Array : undefined)
  })

const listen = (server: Http.Server, options: Net.ListenOptions) =>
  Effect.async<void, HttpServerError.ServeError>((resume) => {
    const onError = (cause: Error) => resume(Effect.fail(new HttpServerError.ServeError({ cause })))
    server.once("error", onError)
    server.listen(options, () => {
      server.off("error", onError)
      resume(Effect.void)
    })
  })

const close = (server: Http.Server) =>
  Effect.async<void>((resume) => {
    if (!server.listening) return resume(Effect.void)
    server.close(() => resume(Effect.void))
    // Open connections (a hanging request, a keep-alive socket) would hold the close for ever.
    server.closeAllConnections()
  })

/**
 * Listens with `evaluate()`'s server on `options` for the life of the scope and gives the `HttpServer` that serves
 * apps on it.
 */
export const make = (
  evaluate: () => Http.Server,
  options: Net.ListenOptions
): Effect.Effect<HttpServer.HttpServer, HttpServerError.ServeError, Scope.Scope> =>
  Effect.gen(function* () {
    // Node loads its fetch implementation (Request, Headers) on first use: load it now, so that the first request
    // does not pay for it (tens of milliseconds, which a client with a short deadline would see as a slow server).
    yield* Effect.sync(() => new Request("http://127.0.0.1/", { headers: new Headers() }))
    const server = yield* Effect.acquireRelease(Effect.sync(evaluate), close)
    // Node's default accept backlog is 511: a burst of more new connections than that (1,000 clients connecting at
    // once to a gateway) overflows it, and the kernel makes the rest retry their SYN after 1, 3, 7, 15 s. 4096 (the
    // kernel caps it at net.core.somaxconn) takes such a burst.
    yield* listen(server, { backlog: 4096, ...options })
    const address = server.address()
    return HttpServer.make({
      address: typeof address === "object" && address !== null
        ? { _tag: "TcpAddress", hostname: address.address, port: address.port }
        : { _tag: "UnixAddress", path: String(address) },
      serve: (app: HttpApp.Default<unknown>, middleware?: HttpMiddleware.HttpMiddleware) =>
        Effect.gen(function* () {
          const runFork = Runtime.runFork(yield* Effect.runtime<never>())
          const handled = HttpApp.toHandled(app, writeResponse, middleware)
          const running = new Set<Fiber.RuntimeFiber<void>>()
          const onRequest = (incoming: Http.IncomingMessage, node: Http.ServerResponse) =>
            withBody(incoming, node, (body) => {
              if (node.destroyed) return
              let source: Request
              try {
                source = webRequest(incoming, body)
              } catch {
                return void node.writeHead(400).end()
              }
              responses.set(source, node)
              const fiber = runFork(
                Effect.provideService(handled, HttpServerRequest.HttpServerRequest, HttpServerRequest.fromWeb(source))
              )
              running.add(fiber)
              fiber.addObserver(() => running.delete(fiber))
              node.once("close", () => {
                if (!node.writableEnded) fiber.unsafeInterruptAsFork(HttpServerError.clientAbortFiberId)
              })
            })
          yield* Effect.acquireRelease(
            Effect.sync(() => server.on("request", onRequest)),
            () => Effect.zipRight(Effect.sync(() => server.off("request", onRequest)), Fiber.interruptAll([...running]))
          )
        })
    })
  })
