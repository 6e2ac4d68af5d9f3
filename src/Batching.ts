/**
 * Batching: many small, independent items (classify a ticket, tag a product, score a review) answered in fewer LLM
 * calls. Calls made at about the same time from independent fibers are grouped into one chat request; the model
 * answers a JSON contract keyed by id, and each caller receives the result whose id is its own — never a neighbour's.
 *
 * ```ts
 * const classify = yield* Batching.make({
 *   model: "gpt-4o-mini",
 *   instruction: "Classify each support ticket.",
 *   item: Ticket,
 *   result: Category
 * })
 * const categories = yield* Effect.forEach(tickets, classify, { concurrency: "unbounded" })
 * ```
 *
 * @since 0.1.0
 */
import * as DataLoader from "@effect/experimental/RequestResolver"
import { Duration, Effect, Either, Request, Schema } from "effect"
import * as internal from "./internal/batching.js"
import { FiniteDuration, strict } from "./internal/optionSchemas.js"
import { decode, type InvalidOptions } from "./InvalidOptions.js"
import { LlmClient } from "./LlmClient.js"
import type { LlmError } from "./LlmError.js"

/**
 * One item of a batch got no result: the answer had no entry with its id (`"missing"`), more than one
 * (`"duplicate"`), an entry whose result does not decode with the result schema (`"invalid-result"`), or the item
 * itself could not be encoded to JSON (`"invalid-item"`, before any call). Only that caller fails; the others of
 * the batch get their results. `id` is the item's id in its batch; `detail` names the failing paths, never a value.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Batching } from "effect-llm-resilience"
 * declare const classify: (ticket: string) => Effect.Effect<string, Batching.BatchItemFailed>
 * const orUnknown = (ticket: string) =>
 *   classify(ticket).pipe(Effect.catchTag("BatchItemFailed", () => Effect.succeed("unknown")))
 * ```
 * @since 0.1.0
 * @category Errors
 */
export class BatchItemFailed extends Schema.TaggedError<BatchItemFailed>("effect-llm-resilience/BatchItemFailed")(
  "BatchItemFailed",
  {
    model: Schema.optional(Schema.String),
    id: Schema.optional(Schema.Int),
    reason: Schema.Literal("missing", "duplicate", "invalid-result", "invalid-item"),
    detail: Schema.optional(Schema.String)
  }
) {
  override get message(): string {
    const where = this.id === undefined ? "A batch item" : `Batch item ${this.id}`
    const model = this.model === undefined ? "" : ` (model ${this.model})`
    return `${where} failed: ${this.reason}${this.detail === undefined ? "" : `: ${this.detail}`}${model}`
  }
}

/**
 * Options of {@link make}. `item` and `result` are Schemas: items are sent in their encoded (JSON) form, results are
 * decoded from the answer.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { Batching } from "effect-llm-resilience"
 * const options: Batching.Options<string, string, "billing" | "bug", "billing" | "bug"> = {
 *   model: "gpt-4o-mini",
 *   instruction: "Classify each support ticket as billing or bug.",
 *   item: Schema.String,
 *   result: Schema.Literal("billing", "bug"),
 *   maxBatchSize: 25,
 *   window: "20 millis",
 *   maxTokensPerItem: 20
 * }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Options<Item, ItemEncoded, Result, ResultEncoded> {
  /** The model every batch is sent to. Required. */
  readonly model: string
  /** What to do with each item; the answer contract is appended to it in the system message. Required. */
  readonly instruction: string
  /** The Schema of an item; its encoded form is what the model sees. Required. */
  readonly item: Schema.Schema<Item, ItemEncoded>
  /** The Schema of a result; each answer entry's `result` is decoded with it. Required. */
  readonly result: Schema.Schema<Result, ResultEncoded>
  /** The most items in one provider call (an integer ≥ 1); a full batch is sent at once. Defaults to 20. */
  readonly maxBatchSize?: number | undefined
  /**
   * How long a batch collects items after its first one, on the Effect clock (positive, finite). Defaults to
   * "10 millis".
   */
  readonly window?: Duration.DurationInput | undefined
  /** When set, a batch's `maxTokens` is this × its number of items (an integer ≥ 1). Defaults to none. */
  readonly maxTokensPerItem?: number | undefined
  /** The sampling temperature of every batch call (0 to 2). Defaults to the provider's. */
  readonly temperature?: number | undefined
  /**
   * Re-send an item alone, once, when its batch answer missed it, repeated it or gave it a result that does not
   * decode. Defaults to false: that caller fails with {@link BatchItemFailed}.
   */
  readonly retryMissingIndividually?: boolean | undefined
  /**
   * Append the JSON Schema of the result (derived from `result`, when Effect can derive one) to the system message.
   * Defaults to true.
   */
  readonly describeResult?: boolean | undefined
  /** The `user` (tenant) of every batch request, for budgets and provider-side abuse tracking. Defaults to none. */
  readonly user?: string | undefined
}

/**
 * The function {@link make} returns: one item in, its result out, with the batch's error or its own
 * {@link BatchItemFailed}.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Batching } from "effect-llm-resilience"
 * declare const classify: Batching.Batched<string, string>
 * const all = (tickets: ReadonlyArray<string>) => Effect.forEach(tickets, classify, { concurrency: "unbounded" })
 * ```
 * @since 0.1.0
 * @category Models
 */
export type Batched<Item, Result> = (input: Item) => Effect.Effect<Result, LlmError | BatchItemFailed>

const isSchema = Schema.declare((u: unknown): u is Schema.Schema.Any => Schema.isSchema(u), {
  identifier: "Schema",
  message: () => "Expected a Schema"
})

const OptionsSchema = Schema.Struct({
  model: Schema.NonEmptyTrimmedString,
  instruction: Schema.NonEmptyTrimmedString,
  item: isSchema,
  result: isSchema,
  maxBatchSize: Schema.optionalWith(Schema.Int.pipe(Schema.greaterThanOrEqualTo(1)), { default: () => 20 }),
  window: Schema.optionalWith(
    FiniteDuration.pipe(
      Schema.filter((d) => Duration.greaterThan(d, Duration.zero) || "Expected a positive, finite duration")
    ),
    { default: () => Duration.millis(10) }
  ),
  maxTokensPerItem: Schema.optional(Schema.Int.pipe(Schema.greaterThanOrEqualTo(1))),
  temperature: Schema.optional(Schema.Number.pipe(Schema.between(0, 2))),
  retryMissingIndividually: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  describeResult: Schema.optionalWith(Schema.Boolean, { default: () => true }),
  user: Schema.optional(Schema.String)
}).annotations(strict)

type ItemRequest<Result> = internal.BatchItem<Result, LlmError | BatchItemFailed>

const invalidItem = (model: string, detail: string) => new BatchItemFailed({ model, reason: "invalid-item", detail })

/**
 * Builds a batched function over the `LlmClient` in context. Calls made within `window` of a batch's first call
 * (from any fiber) are sent together, at most `maxBatchSize` a call, as one chat request: a system message with
 * `instruction` and the answer contract, a user message `[{"id": 0, "item": …}, …]`, `responseFormat: json_object`.
 * The answer must be `{"results": [{"id": n, "result": …}, …]}`.
 *
 * Failures: the call's `LlmError` goes to every caller of the batch; a body that is not JSON or not the contract is
 * `MalformedResponse` for every caller of the batch; a missing, duplicated or undecodable id fails only that caller
 * with {@link BatchItemFailed} (or is re-sent alone once with `retryMissingIndividually`); an id not in the batch is
 * ignored and counted. An interrupted caller leaves its batch: before the batch is sent its item is not sent; after,
 * the others still get their results. Fails with `InvalidOptions` listing every bad option.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Batching, FakeLlm } from "effect-llm-resilience"
 * const program = Effect.gen(function* () {
 *   const classify = yield* Batching.make({
 *     model: "gpt-4o-mini",
 *     instruction: "Classify each support ticket as billing or bug.",
 *     item: Schema.Struct({ subject: Schema.String }),
 *     result: Schema.Literal("billing", "bug")
 *   })
 *   return yield* Effect.forEach([{ subject: "Charged twice" }, { subject: "App crashes" }], classify, {
 *     concurrency: "unbounded"
 *   })
 * }).pipe(Effect.provide(FakeLlm.layer(FakeLlm.reply(JSON.stringify({
 *   results: [{ id: 0, result: "billing" }, { id: 1, result: "bug" }]
 * })))))
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const make = <Item, ItemEncoded, Result, ResultEncoded>(
  options: Options<Item, ItemEncoded, Result, ResultEncoded>
): Effect.Effect<Batched<Item, Result>, InvalidOptions, LlmClient> =>
  Effect.gen(function* () {
    const decoded = yield* decode(OptionsSchema, "Batching", options)
    const client = yield* LlmClient
    const model = decoded.model
    const resolver = internal.makeResolver(client, {
      model,
      system: internal.systemPrompt(
        decoded.instruction,
        decoded.describeResult ? internal.describeResult(options.result) : undefined
      ),
      maxTokensPerItem: decoded.maxTokensPerItem,
      temperature: decoded.temperature,
      user: decoded.user,
      retryIndividually: decoded.retryMissingIndividually,
      decodeResult: Schema.decodeUnknownEither(options.result, { errors: "all" })
    }, (failed, model) => new BatchItemFailed({ model, ...failed }))
    // The loader's scope only interrupts a window that is still waiting when the scope closes, which would strand
    // the callers in it; closing it now leaves every window to run to its end.
    const loader = yield* Effect.scoped(
      DataLoader.dataLoader(resolver, { window: decoded.window, maxBatchSize: decoded.maxBatchSize })
    )
    const request = Request.tagged<ItemRequest<Result>>("BatchItem")
    const encode = Schema.encodeEither(options.item, { errors: "all" })
    return (input: Item): Effect.Effect<Result, LlmError | BatchItemFailed> =>
      Effect.suspend(() => {
        const encoded = encode(input)
        if (Either.isLeft(encoded)) {
          return Effect.fail(invalidItem(model, `the item does not encode with the item schema (at ${internal.paths(encoded.left)})`))
        }
        const json = internal.toJson(encoded.right)
        if (json === undefined) return Effect.fail(invalidItem(model, "the encoded item has no JSON form"))
        return Effect.withRequestCaching(Effect.request(request({ json }), loader), false)
      })
  })
