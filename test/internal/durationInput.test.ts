import { Duration, Either, Schema } from "effect"
import { describe, expect, it } from "vitest"
import { DurationInput } from "../../src/internal/durationInput.js"

const decode = Schema.decodeUnknownEither(DurationInput)

describe("DurationInput", () => {
  it("accepts every Duration.DurationInput form", () => {
    expect(decode("2 seconds")).toEqual(Either.right(Duration.seconds(2)))
    expect(decode(1500)).toEqual(Either.right(Duration.millis(1500)))
    expect(decode(Duration.minutes(1))).toEqual(Either.right(Duration.minutes(1)))
    expect(decode([1, 500])).toEqual(Either.right(Duration.decode([1, 500])))
    expect(decode(0)).toEqual(Either.right(Duration.zero))
    expect(decode(Duration.infinity)).toEqual(Either.right(Duration.infinity))
  })

  it("rejects negative and unparseable durations instead of clamping them to zero", () => {
    for (const bad of [-5, -1n, "-3 seconds", [-1, 0], [Number.NaN, 0], [0, Number.NaN], Number.NaN, "soon", {}, null]) {
      expect(Either.isLeft(decode(bad))).toBe(true)
    }
  })
})
