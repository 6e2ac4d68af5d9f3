import { describe, expect, it } from "@effect/vitest"
import { Either, JSONSchema, Schema } from "effect"
import { chooseTool, exampleOf, jsonAnswer, type ToolRequest, toolInput } from "../../src/internal/chaosTools.js"

const request = (overrides: Partial<ToolRequest>): ToolRequest => ({
  tools: [{ name: "lookup", schema: undefined }, { name: "get_weather", schema: undefined }],
  choice: "auto",
  lastUserText: "hello",
  afterToolResult: false,
  ...overrides
})

describe("chaosTools.chooseTool", () => {
  it("a forced choice always calls: a named tool, or for 'required' the named one else the first", () => {
    for (const mode of ["named", "offered", "forced"] as const) {
      expect(chooseTool(request({ choice: { name: "get_weather" } }), mode)?.name).toBe("get_weather")
      expect(chooseTool(request({ choice: "required" }), mode)?.name).toBe("lookup")
      expect(chooseTool(request({ choice: "required", lastUserText: "use get_weather" }), mode)?.name).toBe("get_weather")
      expect(chooseTool(request({ choice: "required", afterToolResult: true }), mode)?.name).toBe("lookup")
      expect(chooseTool(request({ choice: "none", lastUserText: "use lookup" }), mode)).toBeUndefined()
      expect(chooseTool(request({ tools: [], lastUserText: "use lookup" }), mode)).toBeUndefined()
    }
    // A named choice of a tool that was not offered still gets a call (with `{ query }` arguments).
    expect(chooseTool(request({ choice: { name: "other" } }), "forced")).toEqual({ name: "other", schema: undefined })
  })

  it("auto: 'named' calls the tool the last user message names (as a word), 'offered' any offered tool", () => {
    expect(chooseTool(request({}), "named")).toBeUndefined()
    expect(chooseTool(request({ lastUserText: "Please use get_weather." }), "named")?.name).toBe("get_weather")
    expect(chooseTool(request({ lastUserText: "lookups are fun" }), "named")).toBeUndefined()
    expect(chooseTool(request({ lastUserText: "use get_weather" }), "forced")).toBeUndefined()
    expect(chooseTool(request({}), "offered")?.name).toBe("lookup")
    expect(chooseTool(request({ lastUserText: "get_weather!" }), "offered")?.name).toBe("get_weather")
    // After a tool result the model answers in text, which ends a tool round trip.
    expect(chooseTool(request({ afterToolResult: true, lastUserText: "use lookup" }), "named")).toBeUndefined()
    expect(chooseTool(request({ afterToolResult: true }), "offered")).toBeUndefined()
  })
})

describe("chaosTools.exampleOf", () => {
  const schemas = {
    struct: Schema.Struct({ name: Schema.String, age: Schema.Int, ok: Schema.Boolean, none: Schema.Null }),
    bounds: Schema.Struct({
      small: Schema.Number.pipe(Schema.lessThan(0.5)),
      big: Schema.Int.pipe(Schema.greaterThanOrEqualTo(10)),
      between: Schema.Number.pipe(Schema.between(-3, -1)),
      positive: Schema.Number.pipe(Schema.positive()),
      text: Schema.String.pipe(Schema.minLength(40), Schema.maxLength(45)),
      short: Schema.String.pipe(Schema.maxLength(3))
    }),
    literals: Schema.Struct({ kind: Schema.Literal("a", "b"), one: Schema.Literal("only"), n: Schema.Literal(7) }),
    optionals: Schema.Struct({ maybe: Schema.optional(Schema.String), nullable: Schema.NullOr(Schema.Number) }),
    arrays: Schema.Struct({
      tags: Schema.Array(Schema.String),
      nonEmpty: Schema.NonEmptyArray(Schema.Int),
      pair: Schema.Tuple(Schema.String, Schema.Number),
      three: Schema.Array(Schema.Boolean).pipe(Schema.minItems(3))
    }),
    nested: Schema.Struct({ inner: Schema.Struct({ deep: Schema.Array(Schema.Struct({ x: Schema.Number })) }) }),
    union: Schema.Struct({ value: Schema.Union(Schema.Struct({ a: Schema.String }), Schema.Struct({ b: Schema.Number })) }),
    record: Schema.Record({ key: Schema.String, value: Schema.Number }),
    empty: Schema.Struct({}),
    formats: Schema.Struct({ id: Schema.UUID, nonEmpty: Schema.NonEmptyString, trimmed: Schema.Trimmed })
  }

  for (const [name, schema] of Object.entries(schemas)) {
    it(`a value of Effect's JSON schema decodes with the Schema: ${name}`, () => {
      const json = JSONSchema.make(schema as Schema.Schema<unknown, unknown>)
      const value = exampleOf(json, "steady river", "query")
      expect(Either.isRight(Schema.decodeUnknownEither(schema as Schema.Schema<unknown, unknown>)(value))).toBe(true)
    })
  }

  it("resolves $ref into $defs (recursive schemas stop at a depth)", () => {
    interface Tree {
      readonly label: string
      readonly children: ReadonlyArray<Tree>
    }
    const Tree: Schema.Schema<Tree> = Schema.Struct({
      label: Schema.String,
      children: Schema.Array(Schema.suspend((): Schema.Schema<Tree> => Tree))
    }).annotations({ identifier: "Tree" })
    const json = JSONSchema.make(Tree)
    expect(JSON.stringify(json)).toContain("$ref")
    const value = exampleOf(json, "x", "query")
    expect(Schema.decodeUnknownSync(Tree)(value)).toMatchObject({ label: "x", children: [{ label: "x" }] })
  })

  it("a recursive optional property ends", () => {
    interface List {
      readonly head: number
      readonly tail?: List | undefined
    }
    const List: Schema.Schema<List> = Schema.Struct({
      head: Schema.Number,
      tail: Schema.optional(Schema.suspend((): Schema.Schema<List> => List))
    }).annotations({ identifier: "List" })
    expect(Schema.decodeUnknownSync(List)(exampleOf(JSONSchema.make(List), "x", "query"))).toMatchObject({ head: 1, tail: { head: 1 } })
  })

  it("tool arguments: a value of the parameters, or { query } without declared parameters", () => {
    expect(toolInput({ name: "t", schema: undefined }, "words")).toEqual({ query: "words" })
    expect(toolInput({ name: "t", schema: { type: "object" } }, "words")).toEqual({ query: "words" })
    expect(toolInput({ name: "t", schema: { type: "object", properties: {}, additionalProperties: false } }, "w")).toEqual({})
    expect(toolInput({ name: "t", schema: { type: "object", properties: { q: { type: "string" } } } }, "w")).toEqual({ q: "w" })
    expect(toolInput({ name: "t", schema: { type: "string" } }, "w")).toEqual({ query: "w" })
  })

  it("JSON mode: a value of the schema, or { answer } without one", () => {
    expect(JSON.parse(jsonAnswer(undefined, "t"))).toEqual({ answer: "t" })
    expect(JSON.parse(jsonAnswer({}, "t"))).toEqual({ answer: "t" })
    expect(JSON.parse(jsonAnswer({ type: "object" }, "t"))).toEqual({ answer: "t" })
    expect(JSON.parse(jsonAnswer({ type: "object", properties: { n: { type: "integer", minimum: 5 } } }, "t"))).toEqual({ n: 5 })
    expect(JSON.parse(jsonAnswer({ type: "array", items: { enum: ["x", "y"] } }, "t"))).toEqual(["x"])
  })
})
