/** The pure core of ModelTier: option checks that span fields, the complexity heuristic and its tier mapping. */
import type { Issue } from "../InvalidOptions.js"
import type { ChatRequest } from "../Llm.js"
import { approximateMessageTokens, approximateTokens } from "./approximateTokens.js"

/** The heuristic's verdict on a request. */
export type Complexity = "simple" | "medium" | "complex"

/** Prompt sizes (approximate tokens) from which a request counts as medium or complex. */
export interface Thresholds {
  readonly mediumTokens: number
  readonly complexTokens: number
}

export const defaultThresholds: Thresholds = { mediumTokens: 1_000, complexTokens: 8_000 }

/** Approximate prompt tokens: the messages with their chat framing, plus the tool definitions sent with them. */
export const promptTokens = (request: ChatRequest): number => {
  const messages = approximateMessageTokens(request.messages)
  return request.tools === undefined || request.tools.length === 0
    ? messages
    : messages + approximateTokens(JSON.stringify(request.tools))
}

const wantsStructuredOutput = (request: ChatRequest): boolean =>
  (request.tools !== undefined && request.tools.length > 0) ||
  (request.responseFormat !== undefined && request.responseFormat.type !== "text")

/** Prompt size first; tools or a JSON response format make a short request at least medium. */
export const complexity = (request: ChatRequest, thresholds: Thresholds): Complexity => {
  const tokens = promptTokens(request)
  if (tokens >= thresholds.complexTokens) return "complex"
  if (tokens >= thresholds.mediumTokens || wantsStructuredOutput(request)) return "medium"
  return "simple"
}

/** simple → the cheapest tier, complex → the most capable, medium → the middle one (rounded down: cheaper). */
export const tierIndex = (level: Complexity, tierCount: number): number =>
  level === "simple" ? 0 : level === "complex" ? tierCount - 1 : Math.floor((tierCount - 1) / 2)

const isRecord = (u: unknown): u is Readonly<Record<string, unknown>> => typeof u === "object" && u !== null

/** Every `tiers.<i>.<field>` whose value repeats an earlier tier's. */
const duplicates = (tiers: ReadonlyArray<unknown>, field: "name" | "model"): ReadonlyArray<Issue> => {
  const seen = new Map<string, number>()
  const issues: Array<Issue> = []
  tiers.forEach((tier, i) => {
    const value = isRecord(tier) ? tier[field] : undefined
    if (typeof value !== "string" || value === "") return
    const first = seen.get(value)
    if (first === undefined) seen.set(value, i)
    else issues.push({ path: `tiers.${i}.${field}`, message: `Duplicate ${field} "${value}" (also tiers.${first}.${field})` })
  })
  return issues
}

const positive = (u: unknown): number | undefined => (typeof u === "number" && u > 0 ? u : undefined)

/** Checks the Schema cannot express field by field: unique names and models, heuristic settings that apply. */
export const crossFieldIssues = (input: unknown): ReadonlyArray<Issue> => {
  if (!isRecord(input)) return []
  const issues: Array<Issue> = []
  if (Array.isArray(input.tiers)) issues.push(...duplicates(input.tiers, "name"), ...duplicates(input.tiers, "model"))
  const heuristic = input.heuristic
  if (heuristic !== undefined && input.classify !== undefined) {
    issues.push({ path: "heuristic", message: "Only the default classifier uses it: drop it or drop classify" })
  }
  if (isRecord(heuristic)) {
    const medium = positive(heuristic.mediumTokens) ?? defaultThresholds.mediumTokens
    const complex = positive(heuristic.complexTokens) ?? defaultThresholds.complexTokens
    if (medium > complex) {
      issues.push({ path: "heuristic.mediumTokens", message: `Expected at most complexTokens (${complex}), actual ${medium}` })
    }
  }
  return issues
}
