/**
 * `POST /v1/embeddings`: each embedding model of the configuration tried over its deployments in order (the next one
 * takes over after an error another deployment may not have), behind the key's own limits. A key's budgets and rate
 * limit are the same `TokenBudget`s and `RateLimit` its chat calls are charged to (same names, same store), so one
 * budget covers both. The request's `user` is scoped by the tenant, as for chat.
 */
import { Effect, Either, Schema } from "effect"
import * as Embeddings from "../../Embeddings.js"
import type { InvalidOptions } from "../../InvalidOptions.js"
import type { LlmError } from "../../LlmError.js"
import * as Pricing from "../../Pricing.js"
import { keyBudgetOptions, keyRateLimitOptions, type Stores } from "./clients.js"
import type { KeyRecord } from "./keys.js"
import { scopedUser } from "./wire.js"

/** One deployment of an embedding model, with its upstream's service. */
export interface EmbeddingDeployment {
  readonly id: string
  readonly model: string
  readonly service: Embeddings.Service
}

/** Errors another deployment may not have: the next one is tried. */
const movesOn = new Set<string>([
  "RateLimited",
  "ServerError",
  "Timeout",
  "ConnectionError",
  "MalformedResponse",
  "StreamTruncated",
  "CircuitOpen",
  "QuotaExhausted",
  "AuthError",
  "ModelNotFound"
])

/** The answer and the deployment that gave it. */
export interface Answered {
  readonly response: Embeddings.EmbedResponse
  readonly deployment: string
}

/** Tries the deployments in order, each once. */
export const failover = (deployments: ReadonlyArray<EmbeddingDeployment>) =>
(request: Embeddings.EmbedRequest, limits: Embeddings.Policy): Effect.Effect<Answered, LlmError> => {
  const attempt = (i: number): Effect.Effect<Answered, LlmError> => {
    const d = deployments[i]
    const embed = limits(d.service.embed)
    return Effect.map(embed(new Embeddings.EmbedRequest({ ...request, model: d.model }, true)), (response) => ({
      response,
      deployment: d.id
    })).pipe(Effect.catchIf((e) => i + 1 < deployments.length && movesOn.has(e._tag), () => attempt(i + 1)))
  }
  return attempt(0)
}

/** The key's limits on embeddings: its budgets and rate limit, under the names its chat calls use. */
export const keyLimits = (key: KeyRecord): Effect.Effect<Embeddings.Policy, InvalidOptions, Stores> =>
  Effect.map(
    Effect.all([
      Effect.forEach(keyBudgetOptions(key), (options) => Embeddings.tokenBudget(options)),
      Effect.forEach(keyRateLimitOptions(key), (options) => Embeddings.rateLimit(options))
    ]),
    ([budgets, rate]) => {
      const policies = [...budgets, ...rate]
      return (next: Embeddings.EmbedFn) => policies.reduceRight<Embeddings.EmbedFn>((inner, policy) => policy(inner), next)
    }
  )

/** The body of `POST /v1/embeddings` the gateway reads. */
export const Body = Schema.Struct({
  model: Schema.NonEmptyString,
  input: Schema.Union(Schema.String, Schema.NonEmptyArray(Schema.String)),
  dimensions: Schema.optional(Schema.NullOr(Schema.Int.pipe(Schema.positive()))),
  encoding_format: Schema.optional(Schema.NullOr(Schema.Literal("float", "base64"))),
  user: Schema.optional(Schema.NullOr(Schema.String))
})

/** A decoded body. */
export type Body = typeof Body.Type

/** Decodes a body; a failure names the failing fields, never their values. */
export const decodeBody = (input: unknown): Either.Either<Body, string> =>
  Either.mapLeft(Schema.decodeUnknownEither(Body, { errors: "all" })(input), () =>
    "Invalid request body: expected { model, input: a string or a list of strings, dimensions?, encoding_format? }")

/** The library's request for a body, its `user` scoped by the tenant. */
export const toRequest = (body: Body, tenant: string): Embeddings.EmbedRequest =>
  new Embeddings.EmbedRequest({
    model: body.model,
    input: typeof body.input === "string" ? [body.input] : body.input,
    ...(body.dimensions == null ? {} : { dimensions: body.dimensions }),
    user: scopedUser(tenant, body.user ?? undefined)
  })

const base64 = (vector: ReadonlyArray<number>): string => {
  const floats = Float32Array.from(vector)
  return Buffer.from(floats.buffer, floats.byteOffset, floats.byteLength).toString("base64")
}

/** OpenAI's embeddings body (vectors as floats, or as base64 float32 bytes, which OpenAI's SDKs ask for). */
export const responseBody = (response: Embeddings.EmbedResponse, format: Body["encoding_format"]) => ({
  object: "list",
  data: response.embeddings.map((embedding, index) => ({
    object: "embedding",
    index,
    embedding: format === "base64" ? base64(embedding) : embedding
  })),
  model: response.model,
  usage: { prompt_tokens: response.usage.inputTokens, total_tokens: response.usage.inputTokens }
})

/** The USD cost of an embeddings answer (unknown when the model is unpriced). */
export const costOf = (response: Embeddings.EmbedResponse) =>
  Pricing.cost(response.model, { inputTokens: response.usage.inputTokens, outputTokens: 0 })
