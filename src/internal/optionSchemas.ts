/** Small Schemas shared by the option validators (Retry, Timeout, Fallback, budget periods). */
import { Duration, type Effect, ParseResult, Schema } from "effect"
import { DurationInput } from "./durationInput.js"

/** A function (its signature is checked by TypeScript, only its presence at run time). */
export const AnyFunction = Schema.declare(
  (u: unknown): u is (...args: ReadonlyArray<never>) => unknown => typeof u === "function",
  { identifier: "Function", message: () => "Expected a function" }
)

/** A finite, non-negative duration. */
export const FiniteDuration = DurationInput.pipe(
  Schema.filter((d) => Duration.isFinite(d) || "Expected a finite duration")
)

/** A positive duration, possibly infinite (`Duration.infinity` switches a deadline off). */
export const PositiveDuration = DurationInput.pipe(
  Schema.filter((d) => Duration.greaterThan(d, Duration.zero) || "Expected a positive duration")
)

/** Excess (misspelt) keys are reported, not ignored. */
export const strict = { parseOptions: { onExcessProperty: "error" } } as const

/** The calendar periods of a budget (UTC). */
export const CalendarPeriod = Schema.Literal("minute", "hour", "day", "month")

/**
 * A budget period: a calendar name, or an object decoded by `rolling` (`{ rolling: duration, … }`). One clear message
 * for a value of neither kind (naming the rolling form as `rollingHint`), and the nested paths (`period.rolling`) for
 * a bad rolling window.
 */
export const periodSchema = <R, I>(
  rolling: Schema.Schema<R, I>,
  rollingHint: string
): Schema.Schema<typeof CalendarPeriod.Type | R, typeof CalendarPeriod.Type | R> =>
  Schema.declare<typeof CalendarPeriod.Type | R, typeof CalendarPeriod.Type | R, readonly []>([], {
    decode: () => (input, options, ast): Effect.Effect<typeof CalendarPeriod.Type | R, ParseResult.ParseIssue> => {
      if (typeof input === "object" && input !== null) return ParseResult.decodeUnknown(rolling)(input, options)
      if (Schema.is(CalendarPeriod)(input)) return ParseResult.succeed(input)
      return ParseResult.fail(new ParseResult.Type(
        ast,
        input,
        `Expected "minute", "hour", "day", "month" or ${rollingHint}, actual ${JSON.stringify(input)}`
      ))
    },
    encode: () => (input) => ParseResult.succeed(input as typeof CalendarPeriod.Type | R)
  })
