/**
 * A Redis server of the test's own on a free loopback port, to stop, freeze (SIGSTOP) and resume (SIGCONT) without
 * touching the shared one. Needs `redis-server` on the PATH: under CI its absence fails the suite, elsewhere the suite
 * is reported as not run, loudly (as for the shared Redis).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import * as Net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { describe, it } from "vitest"
import { isCi } from "./redis.js"

const hasRedisServer = (() => {
  try {
    execFileSync("redis-server", ["--version"], { stdio: "ignore" })
    return true
  } catch {
    return false
  }
})()

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = Net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

const answers = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = Net.connect(port, "127.0.0.1")
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.once("connect", () => socket.write("PING\r\n"))
    socket.once("data", (data) => done(String(data).includes("PONG")))
    socket.once("error", () => done(false))
    setTimeout(() => done(false), 500)
  })

/** A running server: its URL, and controls to freeze, resume, stop and start it again (its data kept on disk). */
export interface OwnRedis {
  readonly url: string
  readonly freeze: Effect.Effect<void>
  readonly resume: Effect.Effect<void>
  /** Shuts the server down (SIGTERM: it writes its append-only file) and waits until it has exited. */
  readonly stop: Effect.Effect<void>
  /** Starts it again on the same port and data directory. */
  readonly start: Effect.Effect<void, Error>
}

const launch = async (port: number, dir: string): Promise<ChildProcess> => {
  const child = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes", "--appendfsync", "always",
      "--dir", dir],
    { stdio: "ignore" }
  )
  for (let i = 0; i < 100 && !(await answers(port)); i++) await new Promise((r) => setTimeout(r, 50))
  return child
}

/** Starts a server for the scope; it is killed (and its data directory removed) when the scope closes. */
export const ownRedis: Effect.Effect<OwnRedis, Error, import("effect").Scope.Scope> = Effect.gen(function* () {
  const state = yield* Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        const port = await freePort()
        const dir = mkdtempSync(join(tmpdir(), "own-redis-"))
        return { port, dir, child: await launch(port, dir) }
      },
      catch: (cause) => new Error(`could not start redis-server: ${String(cause)}`)
    }),
    (state) => Effect.sync(() => {
      state.child.kill("SIGCONT")
      state.child.kill("SIGKILL")
      rmSync(state.dir, { recursive: true, force: true })
    })
  )
  const signal = (name: NodeJS.Signals) => Effect.sync(() => void state.child.kill(name))
  return {
    url: `redis://127.0.0.1:${state.port}`,
    freeze: signal("SIGSTOP"),
    resume: signal("SIGCONT"),
    stop: Effect.async<void>((resume) => {
      if (state.child.exitCode !== null) return resume(Effect.void)
      state.child.once("exit", () => resume(Effect.void))
      state.child.kill("SIGTERM")
    }),
    start: Effect.tryPromise({
      try: async () => {
        if (state.child.exitCode === null && state.child.signalCode === null) return
        state.child = await launch(state.port, state.dir)
      },
      catch: (cause) => new Error(`could not restart redis-server: ${String(cause)}`)
    })
  }
})

/** A describe for suites that need a `redis-server` binary. */
export const describeOwnRedis = (name: string, body: () => void): void => {
  if (hasRedisServer) {
    describe(name, body)
    return
  }
  if (isCi(process.env.CI)) {
    describe(name, () => {
      it("needs redis-server", () => {
        throw new Error("redis-server is not on the PATH; this suite cannot run in CI without it")
      })
    })
    return
  }
  console.warn(`\n*** redis-server is not on the PATH: "${name}" was NOT RUN ***\n`)
  describe.skip(name, body)
}
