/**
 * Fallback's engine: the options Schema and their resolution, the chain a request walks (from its own model, or the
 * whole list), and the walk itself for completions and streams (a stream moves on only before its first progress).
 */
import { Effect, Either, Option, Schema, Stream } from "effect"
import type { Options, Tier } from "../Fallback.js"
import { decode, type InvalidOptions } from "../InvalidOptions.js"
import { ChatRequest } from "../Llm.js"
import type * as LlmClient from "../LlmClient.js"
import * as LlmError from "../LlmError.js"
import * as LlmMetrics from "../LlmMetrics.js"
import * as Pricing from "../Pricing.js"
import { AnyFunction, strict } from "./optionSchemas.js"
import { hasProgress } from "./streamProgress.js"
import * as Telemetry from "./telemetry.js"

const rescuable: ReadonlySet<LlmError.Tag> = new Set<LlmError.Tag>([
  "CircuitOpen",
  "BulkheadRejected",
  "ModelNotFound",
  "ContentFiltered",
  "ContextTooLong",
  "QuotaExhausted",
  "AllModelsFailed"
])

/** The default trigger (documented as `Fallback.defaultWhen`). */
export const defaultWhen = (error: LlmError.LlmError): boolean =>
  LlmError.isRetryable(error) || rescuable.has(error._tag)

const isService = (u: unknown): u is LlmClient.Service =>
  typeof u === "object" && u !== null && typeof (u as LlmClient.Service).complete === "function" &&
  typeof (u as LlmClient.Service).stream === "function"

const EntrySchema = Schema.Union(
  Schema.NonEmptyString,
  Schema.Struct({
    model: Schema.NonEmptyString,
    client: Schema.optional(Schema.declare(isService, { message: () => "Expected an LlmClient.Service" }))
  }).annotations(strict)
)

const OptionsSchema = Schema.Struct({
  models: Schema.NonEmptyArray(EntrySchema),
  when: Schema.optional(AnyFunction)
}).annotations(strict)

export interface Resolved {
  readonly tiers: ReadonlyArray<Tier>
  readonly when: (error: LlmError.LlmError) => boolean
}

/** The options decoded (every bad path listed), entries as tiers, `when` defaulted. */
export const resolve = (options: Options): Either.Either<Resolved, InvalidOptions> =>
  Either.map(decode(OptionsSchema, "Fallback", options), (decoded) => ({
    tiers: decoded.models.map((entry) => (typeof entry === "string" ? { model: entry } : entry)),
    when: options.when ?? defaultWhen
  }))

/** The tiers a request goes through. */
const chainFor = (tiers: ReadonlyArray<Tier>, model: string): ReadonlyArray<Tier> => {
  const index = tiers.findIndex((tier) => tier.model === model)
  return index >= 0 ? (index === 0 ? tiers : tiers.slice(index)) : [{ model }, ...tiers]
}

const withModel = (request: ChatRequest, model: string): ChatRequest =>
  request.model === model ? request : new ChatRequest({ ...request, model }, true)

// Each failure of AllModelsFailed says which model it came from.
const withFailureModel = (error: LlmError.ModelFailure, model: string): LlmError.ModelFailure => {
  if (error.model !== undefined) return error
  const Constructor = error.constructor as new(props: object, disableValidation: boolean) => LlmError.ModelFailure
  return new Constructor({ ...error, model }, true)
}

const failuresOf = (error: LlmError.LlmError, model: string): ReadonlyArray<LlmError.ModelFailure> =>
  error._tag === "AllModelsFailed" ? error.failures : [withFailureModel(error, model)]

const NEXT = "next"
const clientOf = (tier: Tier): object | typeof NEXT => tier.client ?? NEXT

type Step =
  | { readonly _tag: "Next"; readonly index: number; readonly failures: ReadonlyArray<LlmError.ModelFailure> }
  | { readonly _tag: "Stop"; readonly error: LlmError.LlmError }

/** The context window to beat after a ContextTooLong: the error's, or the failed model's from Pricing. */
const windowToBeat = (error: LlmError.ContextTooLong, model: string, pricing: Pricing.Pricing["Type"]) =>
  error.contextWindow ?? Option.getOrUndefined(Option.map(pricing.lookup(model), (p) => p.contextWindow))

const skipFilter = (
  error: LlmError.LlmError,
  failed: Tier
): Effect.Effect<(tier: Tier) => boolean> => {
  if (error._tag === "QuotaExhausted") return Effect.succeed((tier) => clientOf(tier) !== clientOf(failed))
  if (error._tag !== "ContextTooLong") return Effect.succeed(() => true)
  return Effect.map(Pricing.current, (pricing) => {
    const window = windowToBeat(error, failed.model, pricing)
    if (window === undefined) return () => true
    return (tier: Tier) =>
      Option.match(pricing.lookup(tier.model), { onNone: () => true, onSome: (p) => p.contextWindow > window })
  })
}

/** After tier `index` failed with `error`: the next tier to try, or the error to fail with. */
const nextStep = (
  r: Resolved,
  chain: ReadonlyArray<Tier>,
  index: number,
  error: LlmError.LlmError,
  failures: ReadonlyArray<LlmError.ModelFailure>
): Effect.Effect<Step> => {
  if (!r.when(error)) return Effect.succeed({ _tag: "Stop", error })
  const failed = chain[index]
  const all = [...failures, ...failuresOf(error, failed.model)]
  return Effect.flatMap(skipFilter(error, failed), (eligible) => {
    let next = index + 1
    while (next < chain.length && !eligible(chain[next])) next++
    if (next >= chain.length) return Effect.succeed<Step>({ _tag: "Stop", error: new LlmError.AllModelsFailed({ failures: all }) })
    const labels = { from: failed.model, to: chain[next].model, reason: error._tag }
    const counted = Effect.zipRight(
      LlmMetrics.count(LlmMetrics.fallbacks, labels),
      Telemetry.fellBack(labels.from, labels.to, labels.reason)
    )
    return Effect.as(counted, { _tag: "Next", index: next, failures: all } as const)
  })
}

export const completeChain = (r: Resolved, next: LlmClient.Complete): LlmClient.Complete => (request) => {
  const chain = chainFor(r.tiers, request.model)
  const run = (index: number, failures: ReadonlyArray<LlmError.ModelFailure>): ReturnType<LlmClient.Complete> => {
    const tier = chain[index]
    const tierRequest = withModel(request, tier.model)
    const call = tier.client === undefined ? next(tierRequest) : tier.client.complete(tierRequest)
    return Effect.catchAll(call, (error) =>
      Effect.flatMap(nextStep(r, chain, index, error, failures), (step) =>
        step._tag === "Next" ? run(step.index, step.failures) : Effect.fail(step.error)))
  }
  return run(0, [])
}

export const streamChain = (r: Resolved, next: LlmClient.StreamFn): LlmClient.StreamFn => (request) =>
  Stream.suspend(() => {
    const chain = chainFor(r.tiers, request.model)
    // Once progress has gone downstream, another model would repeat the answer: the error surfaces instead. An empty
    // opening delta is not progress (streamProgress.ts).
    let emitted = false
    const run = (index: number, failures: ReadonlyArray<LlmError.ModelFailure>): ReturnType<LlmClient.StreamFn> => {
      const tier = chain[index]
      const tierRequest = withModel(request, tier.model)
      const chunks = tier.client === undefined ? next(tierRequest) : tier.client.stream(tierRequest)
      const marked = Stream.mapChunks(chunks, (chunk) => {
        if (!emitted && hasProgress(chunk)) emitted = true
        return chunk
      })
      return Stream.catchAll(marked, (error) =>
        emitted ? Stream.fail(error) : Stream.unwrap(Effect.map(nextStep(r, chain, index, error, failures), (step) =>
          step._tag === "Next" ? run(step.index, step.failures) : Stream.fail(step.error))))
    }
    return run(0, [])
  })
