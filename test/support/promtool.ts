/**
 * Prometheus's `promtool` for the alert-rule tests (Debian/Ubuntu: `apt-get install prometheus`; `.ci/run` installs
 * it). When it is missing, the promtool suites fail under CI (any `CI` other than empty, "0" or "false") and are
 * reported as not run, loudly, elsewhere — as the Redis suites are.
 */
import { spawnSync } from "node:child_process"
import { describe, it } from "vitest"

/** True on a CI runner: `CI` is set to anything but an empty string, "0" or "false" (any case). */
const isCi = (value: string | undefined): boolean =>
  value !== undefined && !["", "0", "false"].includes(value.trim().toLowerCase())

const probe = spawnSync("promtool", ["--version"], { encoding: "utf8" })

/** promtool's version line, or undefined when it cannot be run. */
export const promtoolVersion: string | undefined = probe.status === 0 ? probe.stdout.split("\n")[0] : undefined

/** Runs promtool in `cwd`; returns its exit status and output. */
export const promtool = (args: ReadonlyArray<string>, cwd: string, input?: string) => {
  const result = spawnSync("promtool", args, { cwd, encoding: "utf8", input, timeout: 60_000 })
  return { status: result.status, output: `${result.stdout ?? ""}${result.stderr ?? ""}` }
}

/** A describe for suites that need promtool. */
export const describePromtool = (name: string, body: () => void): void => {
  if (promtoolVersion !== undefined) {
    describe(name, body)
    return
  }
  if (isCi(process.env.CI)) {
    describe(name, () => {
      it("needs promtool", () => {
        throw new Error("promtool is not installed; the alert-rule suites cannot run in CI without it (apt-get install prometheus)")
      })
    })
    return
  }
  console.warn(`\n*** promtool is not installed (apt-get install prometheus): "${name}" was NOT RUN ***\n`)
  describe.skip(name, body)
}
