/**
 * The ChaosServer's answer to an in-prompt batch (`Batching`'s contract): a JSON-mode request whose system message
 * asks for `{"results": [{"id": …, "result": …}]}` and whose user message is `[{"id": 0, "item": …}, …]` gets one
 * entry per item, by id. A result is drawn from the contract's JSON Schema: one of its `enum` values, picked by a
 * digest of the seed and the item (the same item gets the same label, across requests and servers), else a value
 * that fits the schema.
 */
import { createHash } from "node:crypto"
import { exampleOf } from "./chaosTools.js"

const CONTRACT = "{\"results\": [{\"id\": <the id of the item>"
const SCHEMA_LINE = /^Each result must match this JSON Schema: (.*)$/m

const parse = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

const pick = (seed: number, item: string, count: number): number =>
  createHash("sha256").update(`${seed}\n${item}`).digest().readUInt32LE(0) % count

const resultOf = (schema: unknown, seed: number, item: string): unknown => {
  const options = typeof schema === "object" && schema !== null ? (schema as { readonly enum?: unknown }).enum : undefined
  if (Array.isArray(options) && options.length > 0) return options[pick(seed, item, options.length)]
  return exampleOf(schema ?? { type: "string" }, `result ${pick(seed, item, 1000)}`, "answer")
}

/** The contract's answer for `prompt` (system and user lines as the server joins them), or undefined. */
export const batchingAnswer = (prompt: string, seed: number): string | undefined => {
  if (!prompt.includes(CONTRACT)) return undefined
  const at = prompt.lastIndexOf("\nuser:")
  const items = at < 0 ? undefined : parse(prompt.slice(at + "\nuser:".length))
  if (!Array.isArray(items)) return undefined
  const line = SCHEMA_LINE.exec(prompt)
  const schema = line === null ? undefined : parse(line[1])
  const results = items.flatMap((entry: unknown) => {
    const { id, item } = (typeof entry === "object" && entry !== null ? entry : {}) as { id?: unknown; item?: unknown }
    return typeof id === "number" ? [{ id, result: resultOf(schema, seed, JSON.stringify(item ?? null)) }] : []
  })
  return JSON.stringify({ results })
}
