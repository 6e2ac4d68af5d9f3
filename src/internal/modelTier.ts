/**
 * ModelTier's engine: option checks that span fields, the complexity heuristic and its tier mapping (pure), then the
 * options Schema, the routing of a request to a tier (metadata, model, heuristic or classifier) and the escalation of
 * a bad answer to the next tier.
 */
import { Effect, Either, Schema, Stream } from "effect"
import { decode, type Issue, InvalidOptions } from "../InvalidOptions.js"
import { ChatRequest } from "../Llm.js"
import * as LlmClient from "../LlmClient.js"
import * as LlmMetrics from "../LlmMetrics.js"
import type { Escalate, Options, Reason, Tier } from "../ModelTier.js"
import { AnyFunction, strict } from "./optionSchemas.js"
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

const PositiveInt = Schema.Int.pipe(Schema.positive())

const OptionsSchema = Schema.Struct({
  tiers: Schema.Array(
    Schema.Struct({ name: Schema.NonEmptyString, model: Schema.NonEmptyString }).annotations(strict)
  ).pipe(Schema.minItems(1, { message: () => "Expected at least one tier" })),
  classify: Schema.optional(AnyFunction),
  heuristic: Schema.optional(
    Schema.Struct({ mediumTokens: Schema.optional(PositiveInt), complexTokens: Schema.optional(PositiveInt) })
      .annotations(strict)
  ),
  escalate: Schema.optional(
    Schema.Struct({ when: AnyFunction, maxSteps: Schema.optional(Schema.NonNegativeInt) }).annotations(strict)
  )
}).annotations(strict)

interface Route {
  readonly index: number
  readonly reason: Reason
}

interface Resolved {
  readonly tiers: ReadonlyArray<Tier>
  readonly byName: ReadonlyMap<string, number>
  readonly byModel: ReadonlyMap<string, number>
  readonly thresholds: Thresholds
  readonly classify: ((request: ChatRequest) => string | Effect.Effect<string>) | undefined
  readonly escalate: Escalate | undefined
  /** Escalation steps allowed, capped at the number of tiers above the cheapest. */
  readonly maxSteps: number
}

/** The options decoded (every bad path listed, cross-field ones too) and resolved, defaults applied. */
export const resolveEither = (options: Options): Either.Either<Resolved, InvalidOptions> => {
  const decoded = decode(OptionsSchema, "ModelTier", options)
  const crossField = crossFieldIssues(options)
  if (Either.isLeft(decoded) || crossField.length > 0) {
    const issues = [...(Either.isLeft(decoded) ? decoded.left.issues : []), ...crossField]
    return Either.left(new InvalidOptions({ target: "ModelTier", issues }))
  }
  const tiers = decoded.right.tiers
  const top = tiers.length - 1
  return Either.right({
    tiers,
    byName: new Map(tiers.map((tier, i) => [tier.name, i])),
    byModel: new Map(tiers.map((tier, i) => [tier.model, i])),
    thresholds: { ...defaultThresholds, ...decoded.right.heuristic },
    classify: options.classify,
    escalate: options.escalate,
    maxSteps: Math.min(decoded.right.escalate?.maxSteps ?? top, top)
  })
}

/** {@link resolveEither}, throwing its InvalidOptions (for the constructors that return no Effect). */
export const resolve = (options: Options): Resolved => Either.getOrThrowWith(resolveEither(options), (error) => error)

const defaultRoute = (r: Resolved, request: ChatRequest): Route => {
  const named = request.metadata?.tier
  const byName = named === undefined ? undefined : r.byName.get(named)
  if (byName !== undefined) return { index: byName, reason: "metadata" }
  const byModel = r.byModel.get(request.model)
  if (byModel !== undefined) return { index: byModel, reason: "model" }
  return { index: tierIndex(complexity(request, r.thresholds), r.tiers.length), reason: "heuristic" }
}

const toEffect = <A>(value: A | Effect.Effect<A>): Effect.Effect<A> =>
  Effect.isEffect(value) ? value : Effect.succeed(value)

const unknownName = Effect.logWarning(
  "ModelTier: the classifier returned a name that is not a tier's; the default classifier routed the request"
)

const unknownMetadataTier = Effect.logWarning(
  "ModelTier: request metadata.tier names no tier; the request was routed by its model or the heuristic"
)

const route = (r: Resolved, request: ChatRequest): Effect.Effect<Route> => {
  const classify = r.classify
  if (classify === undefined) {
    return Effect.suspend(() => {
      const at = defaultRoute(r, request)
      // A misspelt tier name must not be silently ignored; the name itself is not logged (it is request data).
      return request.metadata?.tier !== undefined && at.reason !== "metadata"
        ? Effect.as(unknownMetadataTier, at)
        : Effect.succeed(at)
    })
  }
  return Effect.flatMap(Effect.suspend(() => toEffect(classify(request))), (name) => {
    const index = r.byName.get(name)
    // The name is not logged: a classifier may be a model whose output is completion text.
    return index !== undefined
      ? Effect.succeed<Route>({ index, reason: "classifier" })
      : Effect.as(unknownName, defaultRoute(r, request))
  })
}

const record = (tier: Tier, reason: Reason): Effect.Effect<void> =>
  Effect.zipRight(
    LlmMetrics.count(LlmMetrics.tierRoutes, { tier: tier.name, reason }),
    Effect.annotateCurrentSpan({ "llm.tier": tier.name, "llm.tier.reason": reason })
  )

const withModel = (request: ChatRequest, model: string): ChatRequest =>
  request.model === model ? request : new ChatRequest({ ...request, model }, true)

const answer = (
  r: Resolved,
  next: LlmClient.Complete,
  request: ChatRequest,
  at: Route,
  steps: number
): ReturnType<LlmClient.Complete> => {
  const tier = r.tiers[at.index]
  const tierRequest = withModel(request, tier.model)
  return Effect.zipRight(record(tier, at.reason), next(tierRequest)).pipe(
    Effect.flatMap((response) => {
      const escalate = r.escalate
      if (escalate === undefined || steps >= r.maxSteps || at.index >= r.tiers.length - 1) {
        return Effect.succeed(response)
      }
      return Effect.flatMap(Effect.suspend(() => toEffect(escalate.when(response, tierRequest))), (insufficient) =>
        insufficient
          ? answer(r, next, request, { index: at.index + 1, reason: "escalated" }, steps + 1)
          : Effect.succeed(response))
    })
  )
}

/** The default classifier of `tiers` (documented as `ModelTier.defaultClassify`). */
export const defaultClassify = <const Name extends string>(
  tiers: ReadonlyArray<Tier<Name>>,
  heuristic?: Partial<Thresholds>
): (request: ChatRequest) => Name => {
  const r = resolve({ tiers, heuristic })
  return (request) => r.tiers[defaultRoute(r, request).index].name as Name
}

/** The policy of resolved options: route, record the tier, call it (escalating on a bad answer). */
export const makePolicy = (r: Resolved): LlmClient.Policy =>
  LlmClient.policy({
    name: "ModelTier",
    complete: (next) => (request) => Effect.flatMap(route(r, request), (at) => answer(r, next, request, at, 0)),
    stream: (next) => (request) =>
      Stream.unwrap(Effect.flatMap(route(r, request), (at) => {
        const tier = r.tiers[at.index]
        return Effect.as(record(tier, at.reason), next(withModel(request, tier.model)))
      }))
  })
