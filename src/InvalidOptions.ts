/**
 * The one error for bad configuration or bad input: every failing path is listed, so a user fixes all of them
 * in one go. Options of every policy, the ChaosServer and the Pricing table are validated with it.
 *
 * @since 0.1.0
 */
import { Either, ParseResult, Schema } from "effect"

/**
 * One failing path of a validation, e.g. `{ path: "maxRetries", message: "Expected a non-negative integer, actual -1" }`.
 *
 * @example
 * ```ts
 * import { InvalidOptions } from "effect-llm-resilience"
 * const issue: InvalidOptions.Issue = { path: "ttl", message: "Expected a duration" }
 * ```
 * @since 0.1.0
 * @category Models
 */
export const Issue = Schema.Struct({ path: Schema.String, message: Schema.String })

/**
 * @since 0.1.0
 * @category Models
 */
export type Issue = typeof Issue.Type

/**
 * Options or input that failed validation. `issues` lists every failing path.
 *
 * @example
 * ```ts
 * import { Retry } from "effect-llm-resilience"
 * try {
 *   Retry.policy({ maxRetries: -1 })
 * } catch (error) {
 *   // InvalidOptions: Retry options are invalid: maxRetries: Expected ...
 * }
 * ```
 * @since 0.1.0
 * @category Errors
 */
export class InvalidOptions extends Schema.TaggedError<InvalidOptions>("effect-llm-resilience/InvalidOptions")(
  "InvalidOptions",
  { target: Schema.String, issues: Schema.Array(Issue) }
) {
  override get message(): string {
    return `${this.target} options are invalid: ${this.issues.map((i) => `${i.path || "(root)"}: ${i.message}`).join("; ")}`
  }

  /**
   * Builds an InvalidOptions from a Schema ParseError, one issue per failing path.
   *
   * @since 0.1.0
   */
  static fromParseError(target: string, error: ParseResult.ParseError): InvalidOptions {
    // A union reports one issue per member at the same path: merge them into one issue per path.
    const byPath = new Map<string, Array<string>>()
    for (const issue of ParseResult.ArrayFormatter.formatErrorSync(error)) {
      const path = issue.path.map(String).join(".")
      const messages = byPath.get(path) ?? []
      if (!messages.includes(issue.message)) messages.push(issue.message)
      byPath.set(path, messages)
    }
    // Of a union, the member that got deeper into the value (an object with a bad field) is the one meant: the other
    // members' "Expected <type>, actual <the whole value>" at the parent path, like an optional field's "Expected
    // undefined, actual …", only repeat the value.
    const paths = [...byPath.keys()]
    const issues = [...byPath].flatMap(([path, messages]) => {
      const deeper = paths.some((p) => p !== path && p.startsWith(path === "" ? "" : `${path}.`))
      const kept = messages.filter((m) =>
        !(messages.length > 1 && m.startsWith("Expected undefined, actual ")) &&
        !(deeper && /^Expected .*, actual /s.test(m))
      )
      if (kept.length > 0) return [{ path, message: kept.join(" or ") }]
      return deeper ? [] : [{ path, message: messages.join(" or ") }]
    })
    return new InvalidOptions({ target, issues })
  }

  /**
   * Builds an InvalidOptions from hand-written checks; returns undefined when there is no issue.
   *
   * @since 0.1.0
   */
  static fromIssues(target: string, issues: ReadonlyArray<Issue>): InvalidOptions | undefined {
    return issues.length === 0 ? undefined : new InvalidOptions({ target, issues })
  }
}

/**
 * Decodes `input` with `schema` (collecting every error) and returns the decoded value or an
 * {@link InvalidOptions} in an Either.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { InvalidOptions } from "effect-llm-resilience"
 * const result = InvalidOptions.decode(Schema.Struct({ n: Schema.Int }), "Example", { n: 1.5 })
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const decode = <A, I>(
  schema: Schema.Schema<A, I, never>,
  target: string,
  input: unknown
): Either.Either<A, InvalidOptions> =>
  Either.mapLeft(
    Schema.decodeUnknownEither(schema, { errors: "all" })(input),
    (error) => InvalidOptions.fromParseError(target, error)
  )

/**
 * Like {@link decode} but throws the {@link InvalidOptions} (used by policy constructors, which run once at
 * start-up, so a configuration mistake stops the program with every failing path listed).
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { InvalidOptions } from "effect-llm-resilience"
 * const value = InvalidOptions.decodeOrThrow(Schema.Struct({ n: Schema.Int }), "Example", { n: 1 })
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const decodeOrThrow = <A, I>(schema: Schema.Schema<A, I, never>, target: string, input: unknown): A => {
  const result = decode(schema, target, input)
  if (Either.isLeft(result)) throw result.left
  return result.right
}

/**
 * A Schema for any `Duration.DurationInput` ("1 second", 1000, Duration.seconds(1), …), decoded to a Duration.
 * Rejects negative and unparseable inputs.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { InvalidOptions } from "effect-llm-resilience"
 * const d = Schema.decodeUnknownSync(InvalidOptions.DurationInput)("2 seconds")
 * ```
 * @since 0.1.0
 * @category Models
 */
export { DurationInput } from "./internal/durationInput.js"
