/**
 * The OpenAI Embeddings dialect of the ChaosServer: `POST /v1/embeddings`, with the same fault injection as the
 * chat endpoints. A text's vector is a pure function of the text and the model (same text → same vector, across
 * requests and servers): `dimensions` (default 256) components drawn from a PRNG seeded with the SHA-256 of
 * `model + "\n" + text`, scaled to unit length. `encoding_format: "base64"` (the SDK's default) sends the float32
 * little-endian bytes in base64, as OpenAI does.
 */
import { HttpServerResponse } from "@effect/platform"
import { Schema } from "effect"
import { createHash } from "node:crypto"
import type { Call, Handler, Question } from "./chaosCall.js"
import { jsonReply } from "./chaosCall.js"
import { invalidRequest } from "./chaosChat.js"
import * as Content from "./chaosContent.js"

/** Components of a vector when the request does not ask for `dimensions`. */
export const DEFAULT_DIMENSIONS = 256

const EmbeddingsBody = Schema.Struct({
  model: Schema.NonEmptyString,
  input: Schema.Union(Schema.String, Schema.NonEmptyArray(Schema.String)),
  dimensions: Schema.optional(Schema.NullOr(Schema.Int.pipe(Schema.between(1, 4096)))),
  encoding_format: Schema.optional(Schema.NullOr(Schema.Literal("float", "base64"))),
  user: Schema.optional(Schema.NullOr(Schema.String))
})

type EmbeddingsBody = typeof EmbeddingsBody.Type

const inputs = (body: EmbeddingsBody): ReadonlyArray<string> => (typeof body.input === "string" ? [body.input] : body.input)

// xorshift128+ over the four words of the digest: fast, and the same on every platform.
const vectorOf = (model: string, text: string, dimensions: number): Float32Array => {
  const digest = createHash("sha256").update(`${model}\n${text}`).digest()
  let s0 = digest.readBigUInt64LE(0) | 1n
  let s1 = digest.readBigUInt64LE(8) | 2n
  const mask = (1n << 64n) - 1n
  const out = new Float32Array(dimensions)
  let norm = 0
  for (let i = 0; i < dimensions; i++) {
    let x = s0
    const y = s1
    s0 = y
    x = (x ^ (x << 23n)) & mask
    s1 = x ^ y ^ (x >> 17n) ^ (y >> 26n)
    const value = Number((s1 + y) & 0xffffffn) / 0x800000 - 1
    out[i] = value
    norm += value * value
  }
  const scale = norm > 0 ? 1 / Math.sqrt(norm) : 1
  for (let i = 0; i < dimensions; i++) out[i] = out[i] * scale
  return out
}

/** The vector the server answers for `text` on `model` (for tests: same text → same vector). */
export const embeddingOf = (model: string, text: string, dimensions = DEFAULT_DIMENSIONS): ReadonlyArray<number> =>
  Array.from(vectorOf(model, text, dimensions))

const encoded = (vector: Float32Array, format: EmbeddingsBody["encoding_format"]) =>
  format === "base64" ? Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength).toString("base64") : Array.from(vector)

/** The response body for an embeddings request (also a Batch API line's body). */
export const responseBody = (model: string, request: EmbeddingsBody) => {
  const texts = inputs(request)
  const dimensions = request.dimensions ?? DEFAULT_DIMENSIONS
  const tokens = texts.reduce((sum, text) => sum + Math.max(1, Content.approximateTokens(text)), 0)
  return {
    object: "list",
    data: texts.map((text, index) => ({
      object: "embedding",
      index,
      embedding: encoded(vectorOf(model, text, dimensions), request.encoding_format)
    })),
    model,
    usage: { prompt_tokens: tokens, total_tokens: tokens }
  }
}

const body = (call: Call<EmbeddingsBody>) => responseBody(call.model, call.body)

const question = (body: EmbeddingsBody): Question => ({
  prompt: inputs(body).join("\n"),
  json: false,
  maxTokens: 1,
  tools: { tools: [], choice: "none", lastUserText: "", afterToolResult: false }
})

/** The embeddings dialect (its faults: errors, latency, hangs, malformed or cut bodies; no streams). */
export const embeddings: Handler<EmbeddingsBody, typeof EmbeddingsBody.Encoded> = {
  dialect: "embeddings",
  schema: EmbeddingsBody,
  requestIdHeader: "x-request-id",
  invalid: invalidRequest,
  model: (b) => b.model,
  errorBody: (error, model) => Content.errorBody(error.status, error.code, model),
  toolCallPrefix: "call_",
  question,
  reply: (call): HttpServerResponse.HttpServerResponse => jsonReply(call, body(call))
}
