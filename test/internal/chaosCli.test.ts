import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import * as Cli from "../../src/internal/chaosCli.js"

const parse = (line: string) => Cli.parse(line.split(" ").filter((s) => s.length > 0))

describe("chaosCli.parse", () => {
  it("reads --quota (repeatable, RPM or TPM may be empty) and --quota-window into quotas", () => {
    const result = parse("chaos-server --quota gpt-4o-mini:5:2000 --quota gpt-4o::90000 --quota-window 10000")
    const command = Either.getOrThrow(result)
    expect(command).toEqual({
      _tag: "chaos-server",
      server: {},
      faults: {},
      configFile: undefined,
      quotas: { "gpt-4o-mini": { rpm: 5, tpm: 2000, window: 10000 }, "gpt-4o": { tpm: 90000, window: 10000 } }
    })
    if (command._tag !== "chaos-server") return
    // the file's quotas are kept, a flag replaces the same model's
    expect(Either.getOrThrow(Cli.toOptions(command, { quotas: { "gpt-4o": { rpm: 1 }, other: { rpm: 2 } } }))).toEqual({
      faults: {},
      quotas: { "gpt-4o-mini": { rpm: 5, tpm: 2000, window: 10000 }, "gpt-4o": { tpm: 90000, window: 10000 }, other: { rpm: 2 } }
    })
    expect(Either.getLeft(parse("chaos-server --quota gpt-4o"))._tag).toBe("Some")
    expect(Either.getLeft(parse("chaos-server --quota gpt-4o::"))._tag).toBe("Some")
    expect(Either.getLeft(parse("chaos-server --quota gpt-4o:x"))._tag).toBe("Some")
    expect(Either.getLeft(parse("chaos-server --quota-window 100"))).toEqual(
      Either.getLeft(Either.left("--quota-window applies to --quota: add --quota MODEL:RPM[:TPM]"))
    )
  })

  it("reads the README example", () => {
    const result = parse("chaos-server --port 8787 --seed 42 --error-rate 0.2 --status 503 --retry-after 1 --latency 50")
    expect(Either.getOrThrow(result)).toEqual({
      _tag: "chaos-server",
      server: { port: 8787, seed: 42 },
      faults: { latency: 50, errors: [{ status: 503, rate: 0.2, retryAfter: { seconds: 1 } }] },
      configFile: undefined
    })
  })

  it("reads every fault flag, --flag=value and repeated --error", () => {
    const result = parse(
      "chaos-server --models a,b --words 5 --error-rate=0.1 --status 429 --code insufficient_quota --retry-after-ms 300 " +
        "--error 500:0.05 --error 502:0.05:2 --jitter 10 --first-token-delay 20 --chunk-delay 3 --hang-rate 0.01 " +
        "--cut-rate 0.02 --malformed-rate 0.03 --content-filter-rate 0.04 --config chaos.json"
    )
    expect(Either.getOrThrow(result)).toEqual({
      _tag: "chaos-server",
      server: { models: ["a", "b"], words: 5 },
      faults: {
        jitter: 10,
        firstTokenDelay: 20,
        chunkDelay: 3,
        hangRate: 0.01,
        cutRate: 0.02,
        malformedRate: 0.03,
        contentFilterRate: 0.04,
        errors: [
          { status: 429, rate: 0.1, retryAfter: { ms: 300 }, code: "insufficient_quota" },
          { status: 500, rate: 0.05 },
          { status: 502, rate: 0.05, retryAfter: { seconds: 2 } }
        ]
      },
      configFile: "chaos.json"
    })
  })

  it("--outage with or without a status", () => {
    expect(Either.getOrThrow(parse("chaos-server --outage")).valueOf()).toMatchObject({ faults: { outage: {} } })
    expect(Either.getOrThrow(parse("chaos-server --outage 502 --retry-after 5"))).toMatchObject({
      faults: { outage: { status: 502, retryAfter: { seconds: 5 } } }
    })
    expect(Either.getOrThrow(parse("chaos-server --outage --seed 1"))).toMatchObject({ server: { seed: 1 }, faults: { outage: {} } })
  })

  it("help and errors", () => {
    expect(Either.getOrThrow(parse(""))).toEqual({ _tag: "help" })
    expect(Either.getOrThrow(parse("chaos-server --help"))).toEqual({ _tag: "help" })
    expect(parse("serve")).toEqual(Either.left("Unknown command \"serve\""))
    expect(parse("chaos-server --nope 1")).toEqual(Either.left("Unknown option \"--nope\""))
    expect(parse("chaos-server --port")).toEqual(Either.left("--port needs a value"))
    expect(parse("chaos-server --seed abc")).toEqual(Either.left("--seed: \"abc\" is not a number"))
    expect(Either.isLeft(parse("chaos-server --error 503"))).toBe(true)
  })
})

describe("chaosCli: flags that would be ignored are errors", () => {
  it("--status, --code and --retry-after need the flag they shape", () => {
    expect(parse("chaos-server --status 429")).toEqual(Either.left("--status applies to --error-rate: add --error-rate R"))
    expect(parse("chaos-server --code insufficient_quota")).toEqual(Either.left("--code applies to --error-rate: add --error-rate R"))
    expect(Either.isLeft(parse("chaos-server --retry-after 2 --error 503:0.2"))).toBe(true)
    expect(Either.isLeft(parse("chaos-server --error-rate 0.1 --retry-after 2 --retry-after-ms 300"))).toBe(true)
    // with the flag they shape, they are fine
    expect(Either.isRight(parse("chaos-server --outage --retry-after 2"))).toBe(true)
    expect(Either.isRight(parse("chaos-server --error-rate 0.1 --status 429 --code x --retry-after-ms 300"))).toBe(true)
  })
})

describe("chaosCli.toOptions", () => {
  const command = (line: string) => {
    const parsed = Either.getOrThrow(parse(line))
    if (parsed._tag !== "chaos-server") throw new Error("expected a chaos-server command")
    return parsed
  }

  it("merges the --config file under the flags", () => {
    const file = { faults: { hangRate: 0.1, latency: 5 }, perModel: { a: { outage: {} } } }
    expect(Either.getOrThrow(Cli.toOptions(command("chaos-server --seed 3 --latency 50 --config f.json"), file))).toEqual({
      seed: 3,
      perModel: { a: { outage: {} } },
      faults: { hangRate: 0.1, latency: 50 }
    })
    expect(Either.getOrThrow(Cli.toOptions(command("chaos-server --port 1"), undefined))).toEqual({ port: 1, faults: {} })
  })

  it("rejects a file that is not an object of faults and perModel", () => {
    const c = command("chaos-server --config f.json")
    for (const file of [null, [1], "x", 3]) {
      expect(Cli.toOptions(c, file)).toEqual(Either.left("--config f.json: expected a JSON object { \"faults\": …, \"perModel\": …, \"quotas\": … }"))
    }
    expect(Cli.toOptions(c, { fault: { hangRate: 1 }, perModel: {} })).toEqual(
      Either.left("--config f.json: unknown key(s) \"fault\" (expected \"faults\", \"perModel\", \"quotas\")")
    )
    expect(Either.isLeft(Cli.toOptions(c, { faults: "none" }))).toBe(true)
  })
})
