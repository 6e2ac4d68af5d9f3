/** Small Schemas shared by the option validators of Retry, Timeout and Fallback. */
import { Duration, Schema } from "effect"
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
