/**
 * The cost and availability policies of `Embeddings`: a token budget and a rate limit charged exactly what an
 * embedding costs (its inputs' tokens, no output) through the budgets and limits chat uses (`TokenBudget.Budget`'s
 * `guard`, `RateLimit.admission`: the same stores, keys and settlement rules), and a fallback over embedding models
 * whose vectors have one length.
 */
import { Effect, Either, Option, Schema } from "effect"
import type { EmbedFn, EmbedRequest, EmbedResponse, Policy } from "../Embeddings.js"
import * as Fallback from "../Fallback.js"
import { decode, InvalidOptions } from "../InvalidOptions.js"
import { ChatRequest, type Usage } from "../Llm.js"
import * as LlmError from "../LlmError.js"
import * as LlmMetrics from "../LlmMetrics.js"
import * as Pricing from "../Pricing.js"
import * as RateLimit from "../RateLimit.js"
import type * as TokenBudget from "../TokenBudget.js"
import * as Tokenizer from "../Tokenizer.js"
import { strict } from "./optionSchemas.js"
import * as Telemetry from "./telemetry.js"

// Counted once a request: the budget, the rate limit and the provider step each need the count.
const counted = new WeakMap<EmbedRequest, number>()

/** The exact token count of a request's inputs (the `Tokenizer` in context; exact by default), as OpenAI bills. */
export const inputTokensOf = (request: EmbedRequest): Effect.Effect<number> => {
  const known = counted.get(request)
  if (known !== undefined) return Effect.succeed(known)
  return Effect.flatMap(Tokenizer.current, (tokenizer) =>
    Effect.map(
      Effect.forEach(request.input, (text) => tokenizer.count(text, request.model)),
      (counts) => {
        const total = counts.reduce((sum, n) => sum + n, 0)
        counted.set(request, total)
        return total
      }
    ))
}

/**
 * The chat request the budget and rate-limit keys are computed from: the embedding's model and user, no messages
 * (a custom `scope` / `per` function sees these).
 */
export const asChatRequest = (request: EmbedRequest): ChatRequest =>
  new ChatRequest({ model: request.model, messages: [], ...(request.user === undefined ? {} : { user: request.user }) }, true)

const usageOf = (response: EmbedResponse): Usage => ({
  inputTokens: response.usage.inputTokens,
  outputTokens: 0,
  ...(response.usage.estimated === true ? { estimated: true } : {})
})

/** A budget's policy for embeddings: reserve the exact input tokens, commit the reported ones. */
export const budgetPolicy = (budget: TokenBudget.Budget): Policy => (next) => (request) =>
  Effect.flatMap(inputTokensOf(request), (inputTokens) =>
    budget.guard(
      asChatRequest(request),
      { inputTokens, outputTokens: 0 },
      next(request),
      (response) => Option.some({ usage: usageOf(response), model: response.model })
    ))

/** A rate limit's policy for embeddings: one request and the exact input tokens, from chat's buckets. */
export const rateLimitPolicy = (admission: RateLimit.Admission): Policy => (next) => (request) =>
  Effect.flatMap(inputTokensOf(request), (tokens) =>
    Effect.flatMap(admission.admit(asChatRequest(request), tokens), (admitted) =>
      admitted === undefined
        ? next(request)
        : Effect.tap(next(request), (response) => admission.settle(admitted, { usage: usageOf(response) }))))

/** An entry of an embeddings fallback chain. */
export type FallbackEntry = string | { readonly model: string; readonly dimensions?: number | undefined }

/** Options of the embeddings fallback. */
export interface FallbackOptions {
  readonly models: ReadonlyArray<FallbackEntry>
  readonly when?: ((error: LlmError.LlmError) => boolean) | undefined
}

const EntrySchema = Schema.Union(
  Schema.NonEmptyString,
  Schema.Struct({
    model: Schema.NonEmptyString,
    dimensions: Schema.optionalWith(Schema.Int.pipe(Schema.positive()), { exact: true })
  }).annotations(strict)
)

const FallbackSchema = Schema.Struct({
  models: Schema.NonEmptyArray(EntrySchema),
  when: Schema.optional(Schema.declare((u: unknown): u is (error: LlmError.LlmError) => boolean => typeof u === "function", {
    message: () => "Expected a function (error) => boolean"
  }))
}).annotations(strict)

interface Tier {
  readonly model: string
  /** Sent as the request's `dimensions` when the request asks for none. */
  readonly dimensions: number | undefined
}

// Every model of a chain must give vectors of one length: an index cannot mix them.
const checkDimensions = (
  tiers: ReadonlyArray<Tier>,
  pricing: Pricing.Pricing["Type"]
): Either.Either<ReadonlyArray<Tier>, InvalidOptions> => {
  const lengths = tiers.map((t) =>
    t.dimensions ?? Option.getOrUndefined(Option.flatMap(pricing.lookup(t.model), (p) => Option.fromNullable(p.dimensions))))
  const issues: Array<{ path: string; message: string }> = []
  lengths.forEach((length, i) => {
    if (length === undefined) {
      issues.push({
        path: `models.${i}`,
        message: `the vector length of ${tiers[i].model} is unknown: give { model, dimensions } or price it with dimensions`
      })
    }
  })
  const first = lengths.findIndex((l) => l !== undefined)
  if (first >= 0) {
    lengths.forEach((length, i) => {
      if (length !== undefined && length !== lengths[first]) {
        issues.push({
          path: `models.${i}.dimensions`,
          message: `Expected ${lengths[first]} dimensions (those of ${tiers[first].model}), actual ${length} (${tiers[i].model})`
        })
      }
    })
  }
  return issues.length === 0 ? Either.right(tiers) : Either.left(new InvalidOptions({ target: "Embeddings.fallback", issues }))
}

const chainFor = (tiers: ReadonlyArray<Tier>, model: string): ReadonlyArray<Tier> => {
  const index = tiers.findIndex((tier) => tier.model === model)
  return index >= 0 ? tiers.slice(index) : [{ model, dimensions: undefined }, ...tiers]
}

const withModel = (request: EmbedRequest, tier: Tier, make: (fields: EmbedRequest) => EmbedRequest): EmbedRequest => {
  const dimensions = request.dimensions ?? tier.dimensions
  if (request.model === tier.model && dimensions === request.dimensions) return request
  return make({ ...request, model: tier.model, ...(dimensions === undefined ? {} : { dimensions }) } as EmbedRequest)
}

const failureOf = (error: LlmError.LlmError, model: string): ReadonlyArray<LlmError.ModelFailure> => {
  if (error._tag === "AllModelsFailed") return error.failures
  if (error.model !== undefined) return [error]
  const Constructor = error.constructor as new(props: object, disableValidation: boolean) => LlmError.ModelFailure
  return [new Constructor({ ...error, model }, true)]
}

/** Builds the embeddings fallback (validated; dimensions checked against `Pricing` in context). */
export const fallback = (
  options: FallbackOptions,
  make: (fields: EmbedRequest) => EmbedRequest
): Effect.Effect<Policy, InvalidOptions> =>
  Effect.gen(function*() {
    const decoded = yield* decode(FallbackSchema, "Embeddings.fallback", options)
    const pricing = yield* Pricing.current
    const tiers = yield* checkDimensions(
      decoded.models.map((e) => (typeof e === "string" ? { model: e, dimensions: undefined } : { model: e.model, dimensions: e.dimensions })),
      pricing
    )
    const when = options.when ?? Fallback.defaultWhen
    return (next: EmbedFn): EmbedFn => (request) => {
      const chain = chainFor(tiers, request.model)
      const run = (index: number, failures: ReadonlyArray<LlmError.ModelFailure>): Effect.Effect<EmbedResponse, LlmError.LlmError> =>
        Effect.catchAll(next(withModel(request, chain[index], make)), (error) => {
          if (!when(error)) return Effect.fail(error)
          const all = [...failures, ...failureOf(error, chain[index].model)]
          if (index + 1 >= chain.length) return Effect.fail(new LlmError.AllModelsFailed({ failures: all }))
          const labels = { from: chain[index].model, to: chain[index + 1].model, reason: error._tag }
          return LlmMetrics.count(LlmMetrics.fallbacks, labels).pipe(
            Effect.zipRight(Telemetry.fellBack(labels.from, labels.to, labels.reason)),
            Effect.zipRight(run(index + 1, all))
          )
        })
      return run(0, [])
    }
  })

/** Builds a rate-limit policy for embeddings from `RateLimit`'s options. */
export const rateLimit = (options: RateLimit.Options) => Effect.map(RateLimit.admission(options), rateLimitPolicy)
