/**
 * How the command line runs a long-lived program: until SIGINT, SIGTERM or SIGHUP, or until its parent goes away.
 *
 * A launcher (`npx`, `npm exec`, a shell, a process manager) may die without passing its signal on; the program
 * then notices that it was re-parented, or that its IPC channel closed, and stops as if it had been sent SIGTERM.
 * Stopping interrupts the program, so its finalizers (closing the server, printing the final stats) run.
 */
import { Effect, Exit, FiberId, Schedule } from "effect"

const signals = ["SIGINT", "SIGTERM", "SIGHUP"] as const

/**
 * Completes once the process that started this one is gone: the parent pid changed (the orphan was adopted by init
 * or a subreaper) or the IPC channel to the parent closed. Checks every `every`.
 */
export const parentGone = (every: number): Effect.Effect<void> =>
  Effect.suspend(() => {
    const parent = process.ppid
    const disconnected = process.send === undefined
      ? Effect.never
      : Effect.async<void>((resume) => {
        const onDisconnect = () => resume(Effect.void)
        process.once("disconnect", onDisconnect)
        return Effect.sync(() => void process.off("disconnect", onDisconnect))
      })
    const reparented = Effect.repeat(Effect.sync(() => process.ppid), {
      schedule: Schedule.spaced(every),
      until: (ppid) => ppid !== parent
    })
    return Effect.raceFirst(Effect.asVoid(reparented), disconnected)
  })

/**
 * Runs `program` as the process's main fiber and exits when it ends: with `process.exitCode` (0 unless the program
 * set it) after a success or a stop request, 1 after a failure or a defect (logged).
 */
export const runMain = (program: Effect.Effect<void>, options: { readonly parentCheckMillis?: number } = {}): void => {
  const stopped = Effect.raceFirst(program, parentGone(options.parentCheckMillis ?? 500))
  const fiber = Effect.runFork(stopped)
  const stop = () => fiber.unsafeInterruptAsFork(FiberId.none)
  for (const signal of signals) process.once(signal, stop)
  fiber.addObserver((exit) => {
    for (const signal of signals) process.off(signal, stop)
    if (Exit.isFailure(exit) && !Exit.isInterrupted(exit)) {
      Effect.runSync(Effect.logError("effect-llm-resilience: the command failed", exit.cause))
      process.exit(1)
    }
    process.exit(process.exitCode ?? 0)
  })
}
