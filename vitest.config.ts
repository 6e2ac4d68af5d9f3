import { BaseSequencer, type TestSpecification } from "vitest/node"
import { defineConfig } from "vitest/config"

/**
 * The files that take longest, mostly waiting (child processes, real HTTP, the demo's naive retry sleeps): started
 * first, so their waits overlap the rest of the suite instead of trailing it. Without a results cache (a clean
 * checkout, as CI runs) vitest orders files by size, which would start the small demo test last.
 */
const slowFirst = [
  "test/e2e/demo.test.ts",
  "test/e2e/router.test.ts",
  "test/e2e/gatewayReplicas.test.ts",
  "test/e2e/package.test.ts",
  "test/Retry.test.ts",
  "test/stores/GatewayKeyStore.redis.test.ts",
  "test/e2e/cli.test.ts",
  "test/gateway/keysCli.test.ts"
]

class SlowFirst extends BaseSequencer {
  override async sort(files: Array<TestSpecification>): Promise<Array<TestSpecification>> {
    const sorted = await super.sort(files)
    const rank = (file: TestSpecification) => {
      const index = slowFirst.findIndex((name) => file.moduleId.endsWith(name))
      return index === -1 ? slowFirst.length : index
    }
    return sorted.map((file, order) => ({ file, order })).sort((a, b) => rank(a.file) - rank(b.file) || a.order - b.order)
      .map(({ file }) => file)
  }
}

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Worker threads start faster than forks; three of them keep both cores busy while e2e files wait on I/O
    // (measured on 2 cores: forks with 2 workers 171 s, threads with 3 workers 96 s, with 4 workers 123 s).
    pool: "threads",
    poolOptions: { threads: { minThreads: 3, maxThreads: 3 } },
    sequence: { sequencer: SlowFirst },
    // The JSON report lets CI print a plain "N passed, N failed" closing line.
    reporters: process.env.CI ? ["default", ["json", { outputFile: ".vitest-report.json" }]] : ["default"]
  }
})
