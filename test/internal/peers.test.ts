import { describe, expect, it } from "vitest"
import { isInstalled, load, missingMessage } from "../../src/internal/peers.js"

const notFound = () => Object.assign(new Error("Cannot find package 'openai'"), { code: "ERR_MODULE_NOT_FOUND" })

describe("peers: the guard of a subpath with optional peers", () => {
  it("names the subpath, every peer it needs and the npm command with the supported ranges", async () => {
    const peers = { "@effect/opentelemetry": "^0.64.1", "@opentelemetry/exporter-prometheus": ">=0.223.0 <1" }
    const error = await load("effect-llm-resilience/Prometheus", peers, () => Promise.reject(notFound()), () => false)
      .catch((e: Error) => e)
    expect(error).toBeInstanceOf(Error)
    expect((error as Error).message).toBe(
      "effect-llm-resilience/Prometheus needs the optional peer dependencies @effect/opentelemetry, " +
        "@opentelemetry/exporter-prometheus: npm i \"@effect/opentelemetry@^0.64.1\" \"@opentelemetry/exporter-prometheus@>=0.223.0 <1\""
    )
    expect((error as Error).cause).toMatchObject({ code: "ERR_MODULE_NOT_FOUND" })
  })

  it("when only some are missing, says which, and installs only those", () => {
    expect(missingMessage("effect-llm-resilience/X", { a: "^1", b: "^2" }, ["b"])).toBe(
      "effect-llm-resilience/X needs the optional peer dependencies a, b (not installed: b): npm i \"b@^2\""
    )
    expect(missingMessage("effect-llm-resilience/OpenAi", { openai: ">=6 <8" }, ["openai"])).toBe(
      "effect-llm-resilience/OpenAi needs the optional peer dependency openai: npm i \"openai@>=6 <8\""
    )
  })

  it("rethrows any other failure as it is: a peer that is installed, or an error that is not a missing module", async () => {
    const original = notFound()
    expect(await load("s", { openai: "*" }, () => Promise.reject(original), () => true).catch((e) => e)).toBe(original)
    const other = new TypeError("boom")
    expect(await load("s", { openai: "*" }, () => Promise.reject(other), () => false).catch((e) => e)).toBe(other)
  })

  it("returns the module when it loads", async () => {
    expect(await load("s", { openai: "*" }, () => Promise.resolve({ layer: 1 }))).toEqual({ layer: 1 })
  })

  it("a package counts as installed when it resolves, or when it only hides its package.json", () => {
    expect(isInstalled("effect")).toBe(true)
    expect(isInstalled("surely-not-a-package-of-this-repo")).toBe(false)
    const hidden = () => {
      throw Object.assign(new Error("not exported"), { code: "ERR_PACKAGE_PATH_NOT_EXPORTED" })
    }
    expect(isInstalled("x", hidden)).toBe(true)
  })
})
