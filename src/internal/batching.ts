/**
 * The batching engine: the prompt of a batch, the answer contract and its parsing (pure), and the resolver that
 * sends one batch and completes each request with the result whose id is its own.
 *
 * Attribution is by id only, never by position: an id that is missing, answered twice or whose result does not
 * decode fails that item alone; an id outside the batch is ignored. A body that is not the contract fails the batch.
 */
import { Effect, Either, Exit, JSONSchema, ParseResult, Request, RequestResolver, Schema } from "effect"
import type { NonEmptyArray } from "effect/Array"
import { ChatRequest } from "../Llm.js"
import type { Service } from "../LlmClient.js"
import { type LlmError, MalformedResponse } from "../LlmError.js"
import * as LlmMetrics from "../LlmMetrics.js"

/** Why one item got no result. */
export type ItemFailure = "missing" | "duplicate" | "invalid-result" | "invalid-item"

/** One item's failure inside one provider call (`id` is its id in that call). */
export interface Failed {
  readonly id: number
  readonly reason: ItemFailure
  readonly detail?: string | undefined
}

/** A request for one item: its encoded item, already serialized to JSON. */
export interface BatchItem<Result, E> extends Request.Request<Result, E> {
  readonly _tag: "BatchItem"
  readonly json: string
}

// ---------------------------------------------------------------------------------------------------------------
// Prompt

/** The JSON Schema of the encoded result, when one can be derived (else the instruction alone describes it). */
export const describeResult = (schema: Schema.Schema.Any): string | undefined => {
  try {
    const { $schema: _, ...rest } = JSONSchema.make(schema) as { readonly $schema?: unknown }
    return JSON.stringify(rest)
  } catch {
    return undefined
  }
}

/** The system message: the user's instruction, then the answer contract. */
export const systemPrompt = (instruction: string, resultJsonSchema: string | undefined): string =>
  [
    instruction,
    "",
    "The user message is a JSON array of items: [{\"id\": <integer>, \"item\": <item>}, ...].",
    "Handle each item on its own. Answer with a single JSON object and nothing else:",
    "{\"results\": [{\"id\": <the id of the item>, \"result\": <the result for that item>}, ...]}",
    "Give exactly one entry per item, with the id of the item it answers; never change, skip or repeat an id.",
    ...(resultJsonSchema === undefined ? [] : [`Each result must match this JSON Schema: ${resultJsonSchema}`])
  ].join("\n")

/** The user message: `[{"id":0,"item":…},…]` from items already serialized to JSON. */
export const userPrompt = (items: ReadonlyArray<string>): string => {
  let out = "["
  for (let id = 0; id < items.length; id++) out += `${id === 0 ? "" : ","}{"id":${id},"item":${items[id]}}`
  return `${out}]`
}

/** An item's JSON text, or undefined when it has none (undefined, a function, a BigInt, a cycle). */
export const toJson = (encoded: unknown): string | undefined => {
  try {
    const json: unknown = JSON.stringify(encoded)
    return typeof json === "string" ? json : undefined
  } catch {
    return undefined
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Answer

/** What the answer holds for one id. */
export type Slot =
  | { readonly _tag: "Found"; readonly value: unknown; readonly present: boolean }
  | { readonly _tag: "Missing" }
  | { readonly _tag: "Duplicate"; readonly times: number }

/** The answer sorted by id: one slot per item of the batch, and how many entries named an id not in it. */
export interface Parsed {
  readonly slots: ReadonlyArray<Slot>
  readonly unknownIds: number
}

const Contract = Schema.Struct({
  results: Schema.Array(Schema.Struct({ id: Schema.Int, result: Schema.optionalWith(Schema.Unknown, { exact: true }) }))
})
const decodeContract = Schema.decodeUnknownEither(Contract, { errors: "all" })

/** The failing paths of a parse error, without any value (values may be prompt or completion text). */
export const paths = (error: ParseResult.ParseError): string => {
  const unique = new Set(
    ParseResult.ArrayFormatter.formatErrorSync(error).map((issue) => issue.path.map(String).join(".") || "(root)")
  )
  return [...unique].slice(0, 5).join(", ")
}

/** Sorts an answer by id. Left: why the body as a whole is not the contract. */
export const parseAnswer = (content: string, size: number, finishReason: string): Either.Either<Parsed, string> => {
  let json: unknown
  try {
    json = JSON.parse(content)
  } catch {
    return Either.left(
      finishReason === "length"
        ? "the batch answer was cut off at maxTokens (finishReason \"length\") and is not valid JSON"
        : "the batch answer is not valid JSON"
    )
  }
  const decoded = decodeContract(json)
  if (Either.isLeft(decoded)) {
    return Either.left(`the batch answer is not {"results": [{"id": <integer>, "result": …}]} (at ${paths(decoded.left)})`)
  }
  const seen: Array<Array<{ readonly value: unknown; readonly present: boolean }>> = Array.from({ length: size }, () => [])
  let unknownIds = 0
  for (const entry of decoded.right.results) {
    if (entry.id < 0 || entry.id >= size) unknownIds++
    else seen[entry.id].push({ value: entry.result, present: "result" in entry })
  }
  const slots = seen.map((entries): Slot =>
    entries.length === 0
      ? { _tag: "Missing" }
      : entries.length > 1
      ? { _tag: "Duplicate", times: entries.length }
      : { _tag: "Found", value: entries[0].value, present: entries[0].present }
  )
  return Either.right({ slots, unknownIds })
}

// ---------------------------------------------------------------------------------------------------------------
// Resolver

/** Everything the resolver needs, decoded from the options. */
export interface Config<Result> {
  readonly model: string
  readonly system: string
  readonly maxTokensPerItem: number | undefined
  readonly temperature: number | undefined
  readonly user: string | undefined
  readonly retryIndividually: boolean
  readonly decodeResult: (u: unknown) => Either.Either<Result, ParseResult.ParseError>
}

type Outcome = "ok" | ItemFailure | "failed"

const countOutcomes = (model: string, outcomes: ReadonlyArray<Outcome>): Effect.Effect<void> => {
  const totals = new Map<Outcome, number>()
  for (const outcome of outcomes) totals.set(outcome, (totals.get(outcome) ?? 0) + 1)
  return Effect.forEach(totals, ([outcome, n]) => LlmMetrics.count(LlmMetrics.batchItems, { model, outcome }, n), {
    discard: true
  })
}

const settle = <Result>(config: Config<Result>, slot: Slot, id: number): Either.Either<Result, Failed> => {
  switch (slot._tag) {
    case "Missing":
      return Either.left({ id, reason: "missing", detail: `the answer has no result for id ${id}` })
    case "Duplicate":
      return Either.left({ id, reason: "duplicate", detail: `the answer has ${slot.times} results for id ${id}` })
    case "Found": {
      if (!slot.present) return Either.left({ id, reason: "invalid-result", detail: `the entry of id ${id} has no result` })
      return Either.mapLeft(config.decodeResult(slot.value), (error): Failed => ({
        id,
        reason: "invalid-result",
        detail: `the result of id ${id} does not match the result schema (at ${paths(error)})`
      }))
    }
  }
}

/** One provider call for `items` (JSON texts): a settled result or an item failure per item, by id. */
const send = <Result>(
  client: Service,
  config: Config<Result>,
  items: ReadonlyArray<string>,
  kind: "batch" | "resend"
): Effect.Effect<ReadonlyArray<Either.Either<Result, Failed>>, LlmError> => {
  const { model } = config
  const request = new ChatRequest({
    model,
    messages: [{ role: "system", content: config.system }, { role: "user", content: userPrompt(items) }],
    responseFormat: { type: "json_object" },
    ...(config.maxTokensPerItem === undefined ? {} : { maxTokens: config.maxTokensPerItem * items.length }),
    ...(config.temperature === undefined ? {} : { temperature: config.temperature }),
    ...(config.user === undefined ? {} : { user: config.user })
  })
  const call = Effect.flatMap(client.complete(request), (response) => {
    const parsed = parseAnswer(response.content, items.length, response.finishReason)
    if (Either.isLeft(parsed)) return Effect.fail(new MalformedResponse({ model: response.model, reason: parsed.left }))
    const settled = parsed.right.slots.map((slot, id) => settle(config, slot, id))
    return Effect.as(
      Effect.zipRight(
        parsed.right.unknownIds === 0
          ? Effect.void
          : LlmMetrics.count(LlmMetrics.batchUnknownIds, { model }, parsed.right.unknownIds),
        countOutcomes(model, settled.map((s) => (Either.isRight(s) ? "ok" : s.left.reason)))
      ),
      settled
    )
  })
  return Effect.zipRight(LlmMetrics.count(LlmMetrics.batches, { model, kind }), call).pipe(
    Effect.tapError(() => countOutcomes(model, items.map(() => "failed"))),
    Effect.withSpan("Batching.send", { attributes: { "llm.model": model, "batch.size": items.length, "batch.kind": kind } })
  )
}

/** Sends `request` alone once more, after its batch failed it; its failure keeps the batch id. */
const resend = <Result, E>(
  client: Service,
  config: Config<Result>,
  request: BatchItem<Result, E>,
  id: number
): Effect.Effect<Either.Either<Result, Failed>, LlmError> =>
  Effect.map(send(client, config, [request.json], "resend"), ([settled]) =>
    Either.mapLeft(settled, (failed) => ({
      id,
      reason: failed.reason,
      detail: `${failed.detail ?? failed.reason}, also when re-sent alone`
    })))

/**
 * The batched resolver: one provider call per batch; each request completes with its own result, its own item
 * failure (`toError`), or the call's error.
 */
export const makeResolver = <Result, E>(
  client: Service,
  config: Config<Result>,
  toError: (failed: Failed, model: string) => E
): RequestResolver.RequestResolver<BatchItem<Result, E | LlmError>> => {
  type Req = BatchItem<Result, E | LlmError>
  const finish = (request: Req, settled: Either.Either<Result, Failed>) =>
    Request.complete(
      request,
      Either.isRight(settled) ? Exit.succeed(settled.right) : Exit.fail(toError(settled.left, config.model))
    )
  const run = (requests: NonEmptyArray<Req>): Effect.Effect<void> =>
    Effect.flatMap(Effect.exit(send(client, config, requests.map((r) => r.json), "batch")), (exit) =>
      Exit.isFailure(exit)
        ? Effect.forEach(requests, (request) => Request.complete(request, Exit.failCause(exit.cause)), { discard: true })
        : Effect.forEach(requests, (request, i) => {
          const settled = exit.value[i]
          if (Either.isRight(settled) || !config.retryIndividually) return finish(request, settled)
          return Effect.flatMap(Effect.exit(resend(client, config, request, i)), (again) =>
            Exit.isSuccess(again) ? finish(request, again.value) : Request.complete(request, Exit.failCause(again.cause)))
        }, { concurrency: "unbounded", discard: true }))
  // A defect or an interruption must still complete every request, or its caller would wait forever.
  return RequestResolver.makeBatched((requests: NonEmptyArray<Req>) =>
    Effect.onExit(run(requests), (exit) =>
      Exit.isSuccess(exit)
        ? Effect.void
        : Effect.forEach(requests, (request) => Request.complete(request, Exit.failCause(exit.cause)), { discard: true }))
  )
}
