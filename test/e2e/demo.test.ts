import { execFile } from "node:child_process"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import { describe, expect, it } from "vitest"

// `npm start` off a terminal (a pipe, as in a CI log): one table per scenario, one line per progress bar, and a
// summary of the library's own scenarios that leaves the forced outage out.

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..")

describe("e2e: the demo", () => {
  it("piped: one line per run instead of a redrawn bar, a table per scenario, a summary without the forced outage", async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ["--import", "tsx", "examples/demo.ts", "--requests", "40", "--concurrency", "8", "--classifications", "300"],
      { cwd: root, timeout: 240_000, maxBuffer: 16 * 1024 * 1024 }
    )
    expect(stdout).not.toContain("\r")
    const runs = stdout.split("\n").filter((line) => /^ {2}(naive|library) +\d+ requests in \d+\.\d s$/.test(line))
    expect(runs).toHaveLength(6) // scenarios 1-3, naive and library each
    const scenarios = stdout.split(/\n(?=\d\. )/).slice(1)
    expect(scenarios.map((s) => s.slice(0, 2))).toEqual(["1.", "2.", "3.", "4.", "5.", "6.", "7."])
    // 7: the same 300 classifications three ways, figures from the run: one call each, 6 batched calls of 50, one
    // batch job (same tokens as one by one, at half the price)
    const cells = (label: string) =>
      (scenarios[6].split("\n").find((line) => line.startsWith(`  | ${label} `)) ?? "").split("|").slice(2, 5).map((c) => c.trim())
    expect(cells("answered")).toEqual(["300/300", "300/300", "300/300"])
    expect(cells("upstream HTTP calls").map((c) => c.split(" ")[0])).toEqual(["300", "6", expect.stringMatching(/^\d+$/)])
    const [single, batched, job] = cells("tokens").map(Number)
    expect(job).toBe(single)
    expect(batched).toBeLessThan(single / 2)
    const [singleUsd, , jobUsd] = cells("cost").map((c) => Number(c.replace(/^\$/, "").split(" ")[0]))
    expect(jobUsd / singleUsd).toBeCloseTo(0.5, 2)
    for (const scenario of scenarios) {
      expect(scenario).toMatch(/\| +\| +naive[^|]*\| +library[^|]*\|| naive \([^)]*\) +\| library/)
    }
    const summary = stdout.slice(stdout.indexOf("Summary"))
    const rows = summary.split("\n").filter((line) => /^ {2}\| \d\. /.test(line)).map((line) => line.slice(4, 6))
    expect(rows).toEqual(["1.", "3.", "4.", "5.", "6."])
    expect(summary).toMatch(/\| total +\|/)
  }, 270_000)
})
