/**
 * Exports the library's spans and metrics to any OpenTelemetry collector over OTLP/HTTP (subpath
 * `effect-llm-resilience/Otlp`; the core never loads OpenTelemetry).
 *
 * Built on `@effect/opentelemetry`'s OTLP exporters: every Effect span (the library's call, attempt and policy
 * spans included) goes to `{url}/v1/traces`, every Effect metric (all of `LlmMetrics`) to `{url}/v1/metrics`.
 * Closing the layer's scope flushes both, so a short program exports everything it recorded. Spans and metric
 * labels never carry prompt text, completion text or an API key; header values (often credentials) are never
 * printed.
 *
 * @since 0.1.0
 */
import * as OtlpMetrics from "@effect/opentelemetry/OtlpMetrics"
import * as OtlpSerialization from "@effect/opentelemetry/OtlpSerialization"
import * as OtlpTracer from "@effect/opentelemetry/OtlpTracer"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as PlatformHeaders from "@effect/platform/Headers"
import type * as HttpClient from "@effect/platform/HttpClient"
import { Config, Duration, Effect, Either, Layer, Option, Redacted, Schema } from "effect"
import type { ConfigError } from "effect/ConfigError"
import { InvalidOptions } from "./InvalidOptions.js"
import { FiniteDuration } from "./internal/optionSchemas.js"

/**
 * Where and how to export.
 *
 * @example
 * ```ts
 * import { Redacted } from "effect"
 * import * as Otlp from "effect-llm-resilience/Otlp"
 * const options: Otlp.Options = {
 *   url: "http://localhost:4318",
 *   serviceName: "support-bot",
 *   headers: { authorization: Redacted.make("Bearer ...") }
 * }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Options {
  /**
   * The collector's OTLP/HTTP base URL, e.g. `http://localhost:4318` (an OpenTelemetry Collector, Grafana Alloy,
   * Jaeger, Tempo…). Spans are posted to `{url}/v1/traces` and metrics to `{url}/v1/metrics`. Required.
   */
  readonly url: string
  /** The `service.name` resource attribute. Required. */
  readonly serviceName: string
  /** The `service.version` resource attribute. Defaults to none. */
  readonly serviceVersion?: string | undefined
  /** More resource attributes (`deployment.environment`, …). Defaults to none (plus `OTEL_RESOURCE_ATTRIBUTES`). */
  readonly resourceAttributes?: Readonly<Record<string, string | number | boolean>> | undefined
  /**
   * Headers sent with every export, e.g. a vendor's API key. Give credentials as `Redacted` values: they are
   * unwrapped only into the request, and their header names are redacted wherever a request is printed.
   * Defaults to none.
   */
  readonly headers?: Readonly<Record<string, string | Redacted.Redacted<string>>> | undefined
  /**
   * The body encoding: `"protobuf"` (`application/x-protobuf`, the OTLP/HTTP default every collector accepts) or
   * `"json"` (`application/json`). Defaults to "protobuf".
   */
  readonly encoding?: "protobuf" | "json" | undefined
  /** Export spans. Defaults to true. */
  readonly traces?: boolean | undefined
  /** Export metrics. Defaults to true. */
  readonly metrics?: boolean | undefined
  /** How often buffered spans are sent. Defaults to 5 seconds. */
  readonly tracesExportInterval?: Duration.DurationInput | undefined
  /** How often the metrics are sent (cumulative). Defaults to 10 seconds. */
  readonly metricsExportInterval?: Duration.DurationInput | undefined
  /** Spans buffered before an early send. Defaults to 1000. */
  readonly maxBatchSize?: number | undefined
  /** How long closing the scope waits for the final flush. Defaults to 3 seconds. */
  readonly shutdownTimeout?: Duration.DurationInput | undefined
}

const optional = <S extends Schema.Schema.All>(schema: S) => Schema.optionalWith(schema, { exact: true })

// Messages never quote the URL: it may carry a token in its query or user info.
const HttpUrl = Schema.String.pipe(
  Schema.filter((s) => {
    if (!URL.canParse(s)) return false
    const protocol = new URL(s).protocol
    return protocol === "http:" || protocol === "https:"
  }, { message: () => "Expected an absolute http:// or https:// URL (the collector's OTLP/HTTP base, e.g. http://localhost:4318)" })
)

const PositiveInterval = FiniteDuration.pipe(
  Schema.filter((d) => Duration.greaterThan(d, Duration.zero) || "Expected a positive, finite duration")
)

const OptionsSchema = Schema.Struct({
  url: HttpUrl,
  serviceName: Schema.NonEmptyString,
  serviceVersion: optional(Schema.NonEmptyString),
  resourceAttributes: optional(Schema.Record({
    key: Schema.NonEmptyString,
    value: Schema.Union(Schema.String, Schema.Number, Schema.Boolean)
  })),
  encoding: optional(Schema.Literal("protobuf", "json")),
  traces: optional(Schema.Boolean),
  metrics: optional(Schema.Boolean),
  tracesExportInterval: optional(PositiveInterval),
  metricsExportInterval: optional(PositiveInterval),
  maxBatchSize: optional(Schema.Int.pipe(Schema.positive())),
  shutdownTimeout: optional(FiniteDuration)
})

type Valid = typeof OptionsSchema.Type & { readonly headers: Readonly<Record<string, string>> }

const headerName = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
const invalidHeaderValue = /[\0\r\n]|[^\0-\u00ff]/

// Checked by hand: a Schema issue would print the actual value, i.e. the credential.
const headerIssues = (headers: unknown): ReadonlyArray<InvalidOptions["issues"][number]> => {
  if (headers === undefined) return []
  if (typeof headers !== "object" || headers === null || Array.isArray(headers)) {
    return [{ path: "headers", message: "Expected a record of header name to string or Redacted<string>" }]
  }
  return Object.entries(headers).flatMap(([name, value]) => {
    const path = `headers.${name}`
    if (!headerName.test(name)) return [{ path, message: "Expected an HTTP header name (letters, digits, -, …)" }]
    const text = Redacted.isRedacted(value) ? Redacted.value(value) : value
    if (typeof text !== "string") return [{ path, message: "Expected a string or a Redacted<string>" }]
    if (invalidHeaderValue.test(text)) {
      return [{ path, message: "Expected an HTTP header value (no CR, LF, NUL or character beyond Latin-1)" }]
    }
    return []
  })
}

const validate = (options: Options): Either.Either<Valid, InvalidOptions> => {
  const { headers, ...rest } = options ?? ({} as Options)
  const given = Object.fromEntries(Object.entries(rest).filter(([, value]) => value !== undefined))
  const decoded = Schema.decodeUnknownEither(OptionsSchema, { errors: "all", onExcessProperty: "error" })(given)
  const fromHeaders = headerIssues(headers)
  if (Either.isRight(decoded) && fromHeaders.length === 0) {
    const plain = Object.fromEntries(
      Object.entries(headers ?? {}).map(([name, value]) => [name, Redacted.isRedacted(value) ? Redacted.value(value) : value])
    )
    return Either.right({ ...decoded.right, headers: plain })
  }
  const fromSchema = Either.isLeft(decoded) ? InvalidOptions.fromParseError("Otlp", decoded.left).issues : []
  return Either.left(new InvalidOptions({ target: "Otlp", issues: [...fromSchema, ...fromHeaders] }))
}

const endpoint = (base: string, path: string): string => `${base.replace(/\/+$/, "")}${path}`

const exporters = (valid: Valid): Layer.Layer<never, never, HttpClient.HttpClient> => {
  const resource = {
    serviceName: valid.serviceName,
    serviceVersion: valid.serviceVersion,
    attributes: valid.resourceAttributes === undefined ? undefined : { ...valid.resourceAttributes }
  }
  const headers = Object.keys(valid.headers).length === 0 ? undefined : valid.headers
  const names = Object.keys(valid.headers).map((name) => name.toLowerCase())
  const serialization = valid.encoding === "json" ? OtlpSerialization.layerJson : OtlpSerialization.layerProtobuf
  return Layer.unwrapScoped(Effect.gen(function* () {
    // Set before the exporters start and restored after their final flush (finalizers run in reverse): a failed
    // export is logged with the request, and these header values must print as <redacted> there.
    yield* Effect.locallyScopedWith(PlatformHeaders.currentRedactedNames, (current) => [...current, ...names])
    if (valid.metrics !== false) {
      yield* OtlpMetrics.make({
        url: endpoint(valid.url, "/v1/metrics"),
        resource,
        headers,
        exportInterval: valid.metricsExportInterval,
        shutdownTimeout: valid.shutdownTimeout
      })
    }
    if (valid.traces === false) return Layer.empty
    const tracer = yield* OtlpTracer.make({
      url: endpoint(valid.url, "/v1/traces"),
      resource,
      headers,
      exportInterval: valid.tracesExportInterval,
      maxBatchSize: valid.maxBatchSize,
      shutdownTimeout: valid.shutdownTimeout
    })
    return Layer.setTracer(tracer)
  })).pipe(Layer.provide(serialization))
}

/**
 * Like {@link layer}, but sends through the `HttpClient` the application provides (a proxy, custom TLS, a test
 * double) instead of `fetch`.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { NodeHttpClient } from "@effect/platform-node"
 * import * as Otlp from "effect-llm-resilience/Otlp"
 * const Telemetry = Otlp.layerWithoutHttpClient({ url: "http://localhost:4318", serviceName: "support-bot" }).pipe(
 *   Layer.provide(NodeHttpClient.layerUndici)
 * )
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layerWithoutHttpClient = (
  options: Options
): Layer.Layer<never, InvalidOptions, HttpClient.HttpClient> =>
  Either.match(validate(options), { onLeft: (error) => Layer.fail(error), onRight: exporters })

/**
 * A layer that exports every span and metric over OTLP/HTTP while it is alive, sending with `fetch`, and flushes
 * both when its scope closes. Fails with InvalidOptions listing every bad option.
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { Fallback, FakeLlm, Llm, LlmClient, Retry } from "effect-llm-resilience"
 * import * as Otlp from "effect-llm-resilience/Otlp"
 *
 * const Live = LlmClient.layerWith(Fallback.policy({ models: ["gpt-4o", "gpt-4o-mini"] }), Retry.policy({ maxRetries: 1 })).pipe(
 *   Layer.provide(FakeLlm.layer(FakeLlm.reply("ok")))
 * )
 * const program = LlmClient.complete(new Llm.ChatRequest({ model: "gpt-4o", messages: [{ role: "user", content: "hi" }] }))
 * const runnable = program.pipe(
 *   Effect.provide(Live),
 *   Effect.provide(Otlp.layer({ url: "http://localhost:4318", serviceName: "support-bot" }))
 * )
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layer = (options: Options): Layer.Layer<never, InvalidOptions> =>
  layerWithoutHttpClient(options).pipe(Layer.provide(FetchHttpClient.layer))

// `OTEL_EXPORTER_OTLP_HEADERS` is `name=value,name2=value2` with percent-encoded values (OTel's env spec).
const parseHeaders = (raw: string): Record<string, Redacted.Redacted<string>> =>
  Object.fromEntries(
    raw.split(",").flatMap((pair) => {
      const at = pair.indexOf("=")
      if (at <= 0) return []
      const value = pair.slice(at + 1).trim()
      let decoded = value
      try {
        decoded = decodeURIComponent(value)
      } catch {
        // keep the raw value: a stray % is not worth failing start-up over
      }
      return [[pair.slice(0, at).trim(), Redacted.make(decoded)]]
    })
  )

/**
 * {@link layer} configured from OpenTelemetry's standard environment variables: `OTEL_EXPORTER_OTLP_ENDPOINT`
 * (required), `OTEL_SERVICE_NAME` (defaults to "effect-llm-resilience"), `OTEL_EXPORTER_OTLP_HEADERS`
 * (`name=value,…`, read as redacted) and `OTEL_EXPORTER_OTLP_PROTOCOL` (`http/protobuf` or `http/json`). Options
 * given here fill in the rest.
 *
 * @example
 * ```ts
 * import * as Otlp from "effect-llm-resilience/Otlp"
 * // OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 OTEL_SERVICE_NAME=support-bot
 * const Telemetry = Otlp.layerConfig({ resourceAttributes: { "deployment.environment": "production" } })
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layerConfig = (
  options: Omit<Options, "url" | "serviceName" | "headers" | "encoding"> = {}
): Layer.Layer<never, ConfigError | InvalidOptions> =>
  Layer.unwrapEffect(
    Effect.map(
      Config.all({
        url: Config.string("OTEL_EXPORTER_OTLP_ENDPOINT"),
        serviceName: Config.withDefault(Config.string("OTEL_SERVICE_NAME"), "effect-llm-resilience"),
        headers: Config.option(Config.redacted("OTEL_EXPORTER_OTLP_HEADERS")),
        protocol: Config.withDefault(Config.literal("http/protobuf", "http/json")("OTEL_EXPORTER_OTLP_PROTOCOL"), "http/protobuf")
      }),
      ({ headers, protocol, serviceName, url }) =>
        layer({
          ...options,
          url,
          serviceName,
          encoding: protocol === "http/json" ? "json" : "protobuf",
          headers: Option.match(headers, { onNone: () => undefined, onSome: (raw) => parseHeaders(Redacted.value(raw)) })
        })
    )
  )
