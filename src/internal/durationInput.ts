import { Duration, Option, ParseResult, Schema } from "effect"

const DurationDeclaration = Schema.declare((u: unknown): u is Duration.Duration => Duration.isDuration(u), {
  identifier: "Duration"
})

const show = (input: unknown): string => {
  if (typeof input === "bigint") return `${input}n`
  try {
    return JSON.stringify(input) ?? String(input)
  } catch {
    return String(input)
  }
}

// Effect's Duration clamps negative inputs to zero: a negative option is a mistake to report, not a zero.
const isNegativeInput = (input: unknown): boolean => {
  if (typeof input === "number") return input < 0 || Number.isNaN(input)
  if (typeof input === "bigint") return input < 0n
  if (typeof input === "string") return input.trim().startsWith("-")
  if (Array.isArray(input)) return input.some((part) => typeof part !== "number" || !Number.isFinite(part) || part < 0)
  return false
}

/** Any Duration.DurationInput, decoded to a non-negative Duration. */
export const DurationInput = Schema.transformOrFail(Schema.Unknown, DurationDeclaration, {
  strict: true,
  decode: (input, _, ast) => {
    if (isNegativeInput(input)) {
      return ParseResult.fail(new ParseResult.Type(ast, input, `Expected a non-negative duration, actual ${show(input)}`))
    }
    const decoded = Duration.decodeUnknown(input)
    if (Option.isNone(decoded)) {
      return ParseResult.fail(
        new ParseResult.Type(ast, input, `Expected a duration (e.g. "1 second", 1000 ms or Duration.seconds(1)), actual ${show(input)}`)
      )
    }
    const duration = decoded.value
    if (Duration.toMillis(duration) < 0 || Number.isNaN(Duration.toMillis(duration))) {
      return ParseResult.fail(new ParseResult.Type(ast, input, `Expected a non-negative duration, actual ${show(input)}`))
    }
    return ParseResult.succeed(duration)
  },
  encode: (duration) => ParseResult.succeed(duration)
})
