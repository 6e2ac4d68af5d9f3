import { Duration, Option, ParseResult, Schema } from "effect"

const DurationDeclaration = Schema.declare((u: unknown): u is Duration.Duration => Duration.isDuration(u), {
  identifier: "Duration"
})

/** Any Duration.DurationInput, decoded to a non-negative Duration. */
export const DurationInput = Schema.transformOrFail(Schema.Unknown, DurationDeclaration, {
  strict: true,
  decode: (input, _, ast) => {
    const decoded = Duration.decodeUnknown(input)
    if (Option.isNone(decoded)) {
      return ParseResult.fail(
        new ParseResult.Type(ast, input, `Expected a duration (e.g. "1 second", 1000 ms or Duration.seconds(1)), actual ${JSON.stringify(input)}`)
      )
    }
    const duration = decoded.value
    if (Duration.toMillis(duration) < 0 || Number.isNaN(Duration.toMillis(duration))) {
      return ParseResult.fail(new ParseResult.Type(ast, input, `Expected a non-negative duration, actual ${JSON.stringify(input)}`))
    }
    return ParseResult.succeed(duration)
  },
  encode: (duration) => ParseResult.succeed(duration)
})
