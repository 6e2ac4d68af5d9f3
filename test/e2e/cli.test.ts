import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import type { Scope } from "effect"
import { type ChildProcess, spawn, type SpawnOptions } from "node:child_process"
import { connect } from "node:net"
import { dirname, join } from "node:path"
import type { Readable } from "node:stream"
import { fileURLToPath } from "node:url"

// The CLI stops on a signal from whoever started it, and on its own when its parent dies without passing the signal
// on (as `npx` does: it kills its shell, and the server below is re-parented).

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..")
const cli = join(root, "bin", "cli.js")

/** A child process, killed on the way out if a test fails first. */
const spawned = (command: string, args: ReadonlyArray<string>, options: SpawnOptions) =>
  Effect.acquireRelease(
    Effect.sync(() => spawn(command, args, { cwd: root, ...options })),
    (child) => Effect.sync(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"))
  )

/** The port the server printed on `out`. */
const listeningPort = (out: Readable): Effect.Effect<number, Error> =>
  Effect.async<number, Error>((resume) => {
    let text = ""
    out.on("data", (data) => {
      text += String(data)
      const match = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(text)
      if (match) resume(Effect.succeed(Number(match[1])))
    })
    out.once("end", () => resume(Effect.fail(new Error(`the CLI ended before listening: ${text}`))))
  }).pipe(Effect.timeoutFail({ duration: "45 seconds", onTimeout: () => new Error("the CLI never listened") }))

const accepts = (port: number) =>
  Effect.async<boolean>((resume) => {
    const socket = connect(port, "127.0.0.1")
    socket.once("connect", () => (socket.destroy(), resume(Effect.succeed(true))))
    socket.once("error", () => resume(Effect.succeed(false)))
  })

/** Waits (in 20 ms steps, up to 5 s) for the port to refuse connections. */
const closed = (port: number) =>
  Effect.gen(function* () {
    for (let i = 0; i < 250; i++) {
      if (!(yield* accepts(port))) return true
      yield* Effect.sleep("20 millis")
    }
    return false
  })

const exited = (child: ChildProcess) =>
  Effect.async<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      return resume(Effect.succeed({ code: child.exitCode, signal: child.signalCode }))
    }
    child.once("exit", (code, signal) => resume(Effect.succeed({ code, signal })))
  })

const server = (extra: SpawnOptions = {}): Effect.Effect<
  { readonly child: ChildProcess; readonly port: number },
  Error,
  Scope.Scope
> =>
  Effect.gen(function* () {
    const child = yield* spawned(process.execPath, [cli, "chaos-server", "--port", "0"], {
      stdio: ["ignore", "pipe", "pipe"],
      ...extra
    })
    return { child, port: yield* listeningPort(child.stdout!) }
  })

// Each test waits on child processes, not the CPU: they run side by side.
describe.concurrent("e2e: the chaos-server CLI stops with its parent", () => {
  // SIGINT is covered beside the ChaosServer itself (test/ChaosServer.test.ts).
  for (const signal of ["SIGTERM"] as const) {
    it.live(`${signal} stops it: exit code 0, the port closed`, () =>
      Effect.scoped(Effect.gen(function* () {
        const { child, port } = yield* server()
        expect(yield* accepts(port)).toBe(true)
        child.kill(signal)
        expect(yield* exited(child)).toEqual({ code: 0, signal: null })
        expect(yield* closed(port)).toBe(true)
      })), 60_000)
  }

  it.live("a parent that dies without passing SIGTERM on: the orphaned server stops by itself", () =>
    Effect.scoped(Effect.gen(function* () {
      // `; :` keeps the shell alive as the server's parent (no exec), like the shell `npx` starts.
      const shell = yield* spawned("sh", ["-c", `"${process.execPath}" "${cli}" chaos-server --port 0; :`], {
        stdio: ["ignore", "pipe", "pipe"]
      })
      const port = yield* listeningPort(shell.stdout!)
      shell.kill("SIGTERM")
      yield* exited(shell)
      expect(yield* closed(port)).toBe(true)
      // The server held the shell's stdout: it ends once the server process is gone.
      yield* Effect.async<void>((resume) => {
        if (shell.stdout!.readableEnded) return resume(Effect.void)
        shell.stdout!.once("end", () => resume(Effect.void))
        shell.stdout!.resume()
      })
    })), 60_000)

  it.live("a parent that closes the IPC channel: the server stops", () =>
    Effect.scoped(Effect.gen(function* () {
      const { child, port } = yield* server({ stdio: ["ignore", "pipe", "pipe", "ipc"] })
      child.disconnect()
      expect(yield* exited(child)).toEqual({ code: 0, signal: null })
      expect(yield* closed(port)).toBe(true)
    })), 60_000)
})
