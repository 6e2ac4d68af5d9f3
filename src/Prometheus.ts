/**
 * Exports every metric the library records (`LlmMetrics`) on a Prometheus scrape endpoint (subpath
 * `effect-llm-resilience/Prometheus`; the core never loads OpenTelemetry).
 *
 * Built on `@effect/opentelemetry`'s metrics bridge and OpenTelemetry's Prometheus exporter: the metrics keep
 * their names and labels (model, error tag, breaker key, budget name — never prompt text or a user id).
 *
 * @since 0.1.0
 */
import * as Metrics from "@effect/opentelemetry/Metrics"
import * as Resource from "@effect/opentelemetry/Resource"
import { PrometheusExporter } from "@opentelemetry/exporter-prometheus"
import { Either, Layer, Schema } from "effect"
import { decode, type InvalidOptions } from "./InvalidOptions.js"

/**
 * Where to serve the metrics.
 *
 * @example
 * ```ts
 * import * as Prometheus from "effect-llm-resilience/Prometheus"
 * const options: Prometheus.Options = { port: 9464, serviceName: "support-bot" }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Options {
  /** The port of the scrape endpoint. Defaults to 9464 (the OpenTelemetry Prometheus default). */
  readonly port?: number | undefined
  /** The interface to listen on. Defaults to "127.0.0.1" (loopback only: expose it deliberately). */
  readonly host?: string | undefined
  /** The scrape path. Defaults to "/metrics". */
  readonly endpoint?: string | undefined
  /** The `service.name` resource attribute. Defaults to "effect-llm-resilience". */
  readonly serviceName?: string | undefined
}

const OptionsSchema = Schema.Struct({
  port: Schema.optional(Schema.Int.pipe(Schema.between(0, 65_535))),
  host: Schema.optional(Schema.NonEmptyString),
  endpoint: Schema.optional(Schema.String.pipe(Schema.startsWith("/"))),
  serviceName: Schema.optional(Schema.NonEmptyString)
}).annotations({ parseOptions: { onExcessProperty: "error" } })

/**
 * A layer that serves every Effect metric (all of `LlmMetrics` included) at `http://host:port/metrics` in the
 * Prometheus text format while it is alive. Fails with InvalidOptions listing every bad option.
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { FakeLlm, Llm, LlmClient } from "effect-llm-resilience"
 * import * as Prometheus from "effect-llm-resilience/Prometheus"
 * const program = LlmClient.complete(new Llm.ChatRequest({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] }))
 * const runnable = program.pipe(
 *   Effect.provide(Layer.merge(FakeLlm.layer(FakeLlm.reply("ok")), Prometheus.layer({ port: 9464 })))
 * )
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layer = (options: Options = {}): Layer.Layer<never, InvalidOptions> =>
  Either.match(decode(OptionsSchema, "Prometheus", options), {
    onLeft: (error) => Layer.fail(error),
    onRight: (valid) =>
      Metrics.layer(() =>
        new PrometheusExporter({
          port: valid.port ?? 9464,
          host: valid.host ?? "127.0.0.1",
          endpoint: valid.endpoint ?? "/metrics"
        })
      ).pipe(Layer.provide(Resource.layer({ serviceName: valid.serviceName ?? "effect-llm-resilience" })))
  })
