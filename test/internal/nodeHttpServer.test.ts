import { HttpRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Scope, Stream } from "effect"
import * as Http from "node:http"
import * as NodeHttpServer from "../../src/internal/nodeHttpServer.js"

// The ChaosServer's HTTP server: an @effect/platform app on plain node:http (real loopback sockets, live clock).

const encoder = new TextEncoder()

const serve = <E>(app: HttpRouter.HttpRouter<E, never>) =>
  Effect.gen(function* () {
    const server = yield* NodeHttpServer.make(() => Http.createServer(), { port: 0, host: "127.0.0.1" })
    yield* server.serve(app)
    return server.address._tag === "TcpAddress" ? `http://127.0.0.1:${server.address.port}` : ""
  })

describe("internal/nodeHttpServer", () => {
  it.live("answers JSON, reads a POST body and writes a stream chunk by chunk", () =>
    Effect.scoped(Effect.gen(function* () {
      const firstRead = yield* Deferred.make<void>()
      const app = HttpRouter.empty.pipe(
        HttpRouter.get("/json", Effect.succeed(HttpServerResponse.unsafeJson({ ok: true }))),
        HttpRouter.post("/echo", Effect.map(HttpServerRequest.HttpServerRequest.pipe(Effect.flatMap((r) => r.json)), (body) =>
          HttpServerResponse.unsafeJson({ got: body }))),
        HttpRouter.get("/stream", Effect.succeed(HttpServerResponse.stream(
          // the second chunk waits until the client has read the first one: it must have been sent on its own
          Stream.concat(Stream.make(encoder.encode("a")), Stream.fromEffect(Effect.as(Deferred.await(firstRead), encoder.encode("b")))),
          { contentType: "text/plain" }
        )))
      )
      const url = yield* serve(app)
      expect(yield* Effect.promise(() => fetch(`${url}/json`).then((r) => r.json()))).toEqual({ ok: true })
      const echoed = yield* Effect.promise(() =>
        fetch(`${url}/echo`, { method: "POST", body: JSON.stringify({ x: 1 }), headers: { "content-type": "application/json" } })
          .then((r) => r.json()))
      expect(echoed).toEqual({ got: { x: 1 } })
      const text = yield* Effect.promise(async () => {
        const reader = (await fetch(`${url}/stream`)).body!.getReader()
        const decoder = new TextDecoder()
        let out = decoder.decode((await reader.read()).value)
        await Effect.runPromise(Deferred.succeed(firstRead, undefined))
        for (let r = await reader.read(); !r.done; r = await reader.read()) out += decoder.decode(r.value)
        return out
      })
      expect(text).toBe("ab")
    })))

  it.live("a body over 10 MiB is refused with 413; a 404 for an unknown route", () =>
    Effect.scoped(Effect.gen(function* () {
      const url = yield* serve(HttpRouter.empty.pipe(HttpRouter.post("/echo", Effect.succeed(HttpServerResponse.empty()))))
      const [status, body] = yield* Effect.promise(() =>
        fetch(`${url}/echo`, { method: "POST", body: new Uint8Array(10 * 1024 * 1024 + 1) }).then(async (r) => [r.status, await r.json()] as const))
      expect(status).toBe(413)
      expect(body).toEqual({ error: { message: "The request body is larger than 10 MiB", type: "invalid_request_error", code: "request_too_large", param: null } })
      expect(yield* Effect.promise(() => fetch(`${url}/nope`).then((r) => r.status))).toBe(404)
    })))

  it.live("a client that goes away interrupts its handler; closing the scope interrupts the ones still running", () =>
    Effect.gen(function* () {
      const interrupted = yield* Deferred.make<void>()
      const started = yield* Deferred.make<void>()
      const app = HttpRouter.empty.pipe(
        HttpRouter.get("/hang", Effect.zipRight(
          Deferred.succeed(started, undefined),
          Effect.onInterrupt(Effect.never, () => Deferred.succeed(interrupted, undefined))
        ))
      )
      const scope = yield* Scope.make()
      const url = yield* Scope.extend(serve(app), scope)
      const controller = new AbortController()
      const pending = fetch(`${url}/hang`, { signal: controller.signal }).catch(() => "aborted")
      yield* Deferred.await(started)
      controller.abort()
      expect(yield* Effect.promise(() => pending)).toBe("aborted")
      yield* Deferred.await(interrupted).pipe(Effect.timeout("2 seconds"))

      const second = yield* Deferred.make<void>()
      const stillRunning = HttpRouter.empty.pipe(HttpRouter.get("/hang", Effect.onInterrupt(Effect.never, () => Deferred.succeed(second, undefined))))
      const scope2 = yield* Scope.make()
      const url2 = yield* Scope.extend(serve(stillRunning), scope2)
      void fetch(`${url2}/hang`).catch(() => undefined)
      yield* Effect.sleep("50 millis")
      yield* Scope.close(scope2, Exit.void)
      yield* Deferred.await(second).pipe(Effect.timeout("2 seconds"))
      yield* Scope.close(scope, Exit.void)
    }))
})
