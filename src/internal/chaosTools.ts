/**
 * Tool calls and structured answers for the ChaosServer, in dialect-neutral terms: which offered tool (if any)
 * a request gets a call of, and a value that fits a JSON schema (a tool's parameters, a `json_schema` response
 * format), so clients that decode arguments and answers with the schema they sent accept them.
 */
import type { ToolCallMode } from "./chaosState.js"

/** One offered function tool: its name and the JSON schema of its arguments (if it sent one). */
export interface OfferedTool {
  readonly name: string
  readonly schema: unknown
}

/** What a request says about tools, whatever its dialect. */
export interface ToolRequest {
  readonly tools: ReadonlyArray<OfferedTool>
  /** `"required"` also stands for Anthropic's `"any"`; `{ name }` for a named tool choice. */
  readonly choice: "auto" | "none" | "required" | { readonly name: string }
  /** The text of the last user message (the "named" mode looks for a tool's name in it). */
  readonly lastUserText: string
  /** Whether the conversation ends with a tool result (the model then answers in text unless forced). */
  readonly afterToolResult: boolean
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")

const mentioned = (request: ToolRequest): OfferedTool | undefined =>
  request.tools.find((tool) =>
    new RegExp(`(^|[^A-Za-z0-9_])${escapeRegExp(tool.name)}($|[^A-Za-z0-9_])`).test(request.lastUserText)
  )

/** The tool the server calls for this request, if any (see {@link ToolCallMode}). */
export const chooseTool = (request: ToolRequest, mode: ToolCallMode): OfferedTool | undefined => {
  const choice = request.choice
  if (choice === "none") return undefined
  if (typeof choice === "object") return request.tools.find((tool) => tool.name === choice.name) ?? { name: choice.name, schema: undefined }
  if (request.tools.length === 0) return undefined
  if (choice === "required") return mentioned(request) ?? request.tools[0]
  if (mode === "forced" || request.afterToolResult) return undefined
  return mode === "offered" ? mentioned(request) ?? request.tools[0] : mentioned(request)
}

/** The arguments of a call of `tool`: a value of its parameters schema, or `{ query }` when it declares none. */
export const toolInput = (tool: OfferedTool, text: string): Record<string, unknown> => {
  const value = exampleOf(tool.schema ?? { type: "object" }, text, "query")
  return isRecord(value) ? value : { query: text }
}

/** A structured answer: a value of `schema`, or `{ answer }` without a usable schema (JSON mode). */
export const jsonAnswer = (schema: unknown, text: string): string =>
  JSON.stringify(isRecord(schema) && Object.keys(schema).length > 0 ? exampleOf(schema, text, "answer") : { answer: text })

type Node = Record<string, unknown>

const isRecord = (value: unknown): value is Node => typeof value === "object" && value !== null && !Array.isArray(value)

const MaxDepth = 12

/**
 * A value that fits a JSON schema, built from `text` for strings. It covers what schema generators (Effect's
 * `JSONSchema.make`, zod, hand-written parameters) emit: types, `enum`, `const`, `$ref` into `$defs` /
 * `definitions`, `anyOf` / `oneOf` / `allOf`, bounds on numbers, strings and arrays, and common string formats.
 * `freeKey` names the one property of an object that declares no properties but allows any.
 */
export const exampleOf = (schema: unknown, text: string, freeKey: string): unknown =>
  example(schema, { root: schema, text, freeKey }, 0)

interface Context {
  readonly root: unknown
  readonly text: string
  readonly freeKey: string
}

const example = (node: unknown, ctx: Context, depth: number): unknown => {
  if (!isRecord(node) || depth > MaxDepth) return ctx.text
  if ("const" in node) return node.const
  if (Array.isArray(node.enum) && node.enum.length > 0) return node.enum[0]
  if (typeof node.$ref === "string") {
    // Keywords beside a `$ref` refine it (Effect puts a refinement's bounds there): they win over the target's.
    const { $ref, ...siblings } = node
    const target = resolveRef(ctx.root, $ref)
    return example(isRecord(target) ? { ...target, ...siblings } : target, ctx, depth + 1)
  }
  const branches = Array.isArray(node.anyOf) ? node.anyOf : Array.isArray(node.oneOf) ? node.oneOf : undefined
  if (branches !== undefined && branches.length > 0) {
    return example(branches.find((branch) => !(isRecord(branch) && branch.type === "null")) ?? branches[0], ctx, depth + 1)
  }
  if (Array.isArray(node.allOf) && node.allOf.length > 0) return example(mergeAll(node), ctx, depth + 1)
  const type = Array.isArray(node.type) ? node.type.find((t) => t !== "null") ?? "null" : node.type
  switch (type) {
    case "object":
      return objectExample(node, ctx, depth)
    case "array":
      return arrayExample(node, ctx, depth)
    case "string":
      return stringExample(node, ctx.text)
    case "integer":
      return numberExample(node, true)
    case "number":
      return numberExample(node, false)
    case "boolean":
      return true
    case "null":
      return null
    default:
      if (isRecord(node.properties)) return objectExample(node, ctx, depth)
      if (node.items !== undefined || Array.isArray(node.prefixItems)) return arrayExample(node, ctx, depth)
      return ctx.text
  }
}

const resolveRef = (root: unknown, ref: string): unknown => {
  if (!ref.startsWith("#")) return undefined
  let node: unknown = root
  for (const raw of ref.slice(1).split("/").filter((part) => part.length > 0)) {
    const key = decodeURIComponent(raw).replace(/~1/g, "/").replace(/~0/g, "~")
    node = isRecord(node) && Object.hasOwn(node, key) ? node[key] : undefined
  }
  return node
}

// `allOf` parts are merged field by field (properties and required lists combined), enough for the usual
// "base object + extension" shapes.
const mergeAll = (node: Node): Node => {
  const { allOf, ...rest } = node
  const parts = [rest, ...(allOf as ReadonlyArray<unknown>).filter(isRecord)]
  return parts.reduce<Node>((merged, part) => ({
    ...merged,
    ...part,
    properties: { ...(isRecord(merged.properties) ? merged.properties : {}), ...(isRecord(part.properties) ? part.properties : {}) }
  }), {})
}

const objectExample = (node: Node, ctx: Context, depth: number): Record<string, unknown> => {
  const out: Record<string, unknown> = {}
  const properties = isRecord(node.properties) ? node.properties : {}
  const required = new Set(Array.isArray(node.required) ? node.required : [])
  for (const [key, property] of Object.entries(properties)) {
    // Optional properties too (a fuller answer), except deep down, where a recursive schema must end.
    if (depth < MaxDepth / 2 || required.has(key)) out[key] = example(property, ctx, depth + 1)
  }
  if (Object.keys(properties).length > 0 || node.additionalProperties === false) return out
  // No declared properties: one free-form entry, typed by `additionalProperties` when it is a schema.
  out[ctx.freeKey] = isRecord(node.additionalProperties) ? example(node.additionalProperties, ctx, depth + 1) : ctx.text
  return out
}

const arrayExample = (node: Node, ctx: Context, depth: number): Array<unknown> => {
  const tuple = Array.isArray(node.prefixItems) ? node.prefixItems : Array.isArray(node.items) ? node.items : undefined
  if (tuple !== undefined) return tuple.map((item) => example(item, ctx, depth + 1))
  // One item shows the shape; deep down (a recursive schema) only the required ones, so the value stays finite.
  const min = typeof node.minItems === "number" ? node.minItems : 0
  const max = typeof node.maxItems === "number" ? node.maxItems : Number.POSITIVE_INFINITY
  const count = Math.min(depth >= MaxDepth / 2 ? min : Math.max(min, 1), max, 16)
  return Array.from({ length: count }, () => example(node.items, ctx, depth + 1))
}

const formats: Record<string, string> = {
  "date-time": "2026-01-01T00:00:00.000Z",
  date: "2026-01-01",
  time: "00:00:00",
  email: "chaos@example.com",
  uri: "https://example.com/",
  url: "https://example.com/",
  uuid: "00000000-0000-4000-8000-000000000000"
}

const stringExample = (node: Node, text: string): string => {
  if (typeof node.format === "string" && Object.hasOwn(formats, node.format)) return formats[node.format]
  const min = typeof node.minLength === "number" ? node.minLength : 0
  let out = text.length > 0 ? text : "chaos"
  while (out.length < min) out = `${out} ${out}`
  return typeof node.maxLength === "number" ? out.slice(0, Math.max(node.maxLength, 0)) : out
}

const numberExample = (node: Node, integer: boolean): number => {
  const step = integer ? 1 : 0.5
  let value = 1
  if (typeof node.minimum === "number") value = Math.max(value, node.minimum)
  if (typeof node.exclusiveMinimum === "number" && value <= node.exclusiveMinimum) value = node.exclusiveMinimum + step
  if (typeof node.maximum === "number" && value > node.maximum) value = node.maximum
  if (typeof node.exclusiveMaximum === "number" && value >= node.exclusiveMaximum) value = node.exclusiveMaximum - step
  return integer ? Math.ceil(value) : value
}
