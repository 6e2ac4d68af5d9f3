/**
 * A loopback OTLP/HTTP receiver for tests: `POST /v1/traces` and `POST /v1/metrics` on 127.0.0.1 (a random port),
 * each body kept as it arrived (JSON decoded; protobuf kept as bytes).
 */
import { Effect } from "effect"
import * as Http from "node:http"

export interface Received {
  readonly path: string
  readonly contentType: string
  readonly headers: Http.IncomingHttpHeaders
  readonly bytes: Uint8Array
  /** The decoded body, when it was JSON. */
  readonly json: unknown
}

export interface Receiver {
  readonly url: string
  readonly received: ReadonlyArray<Received>
}

/** A receiver that lives as long as the enclosing scope; it answers every export with `status` (200 by default). */
export const receiverWith = (options: { readonly status?: number } = {}) => Effect.acquireRelease(
  Effect.async<{ readonly server: Http.Server; readonly receiver: Receiver }>((resume) => {
    const received: Array<Received> = []
    const server = Http.createServer((req, res) => {
      const parts: Array<Buffer> = []
      req.on("data", (part: Buffer) => parts.push(part))
      req.on("end", () => {
        const path = req.url ?? ""
        if (req.method !== "POST" || (path !== "/v1/traces" && path !== "/v1/metrics")) {
          res.writeHead(404).end()
          return
        }
        const bytes = new Uint8Array(Buffer.concat(parts))
        const contentType = req.headers["content-type"] ?? ""
        const json = contentType.startsWith("application/json") ? JSON.parse(Buffer.from(bytes).toString("utf8")) : undefined
        received.push({ path, contentType, headers: req.headers, bytes, json })
        res.writeHead(options.status ?? 200, { "content-type": "application/json" }).end("{}")
      })
    })
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      resume(Effect.succeed({ server, receiver: { url: `http://127.0.0.1:${port}`, received } }))
    })
  }),
  ({ server }) => Effect.async<void>((resume) => {
    server.closeAllConnections()
    server.close(() => resume(Effect.void))
  })
).pipe(Effect.map(({ receiver }) => receiver))

/** A receiver that accepts every export. */
export const receiver = receiverWith()

// The OTLP/JSON shapes this project reads back (a subset of opentelemetry-proto's JSON mapping).

export interface AnyValue {
  readonly stringValue?: string
  readonly intValue?: number | string
  readonly doubleValue?: number
  readonly boolValue?: boolean
  readonly arrayValue?: { readonly values: ReadonlyArray<AnyValue> }
}
export interface KeyValue {
  readonly key: string
  readonly value: AnyValue
}
export interface Span {
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId?: string
  readonly name: string
  readonly kind: number
  readonly attributes: ReadonlyArray<KeyValue>
  readonly events: ReadonlyArray<{ readonly name: string; readonly attributes: ReadonlyArray<KeyValue> }>
  readonly status: { readonly code: number; readonly message?: string }
}
export interface NumberPoint {
  readonly attributes: ReadonlyArray<KeyValue>
  readonly asInt?: number
  readonly asDouble?: number
}
export interface HistogramPoint {
  readonly attributes: ReadonlyArray<KeyValue>
  readonly count: number
  readonly sum: number
  readonly bucketCounts: ReadonlyArray<number>
  readonly explicitBounds: ReadonlyArray<number>
}
export interface MetricData {
  readonly name: string
  readonly unit?: string
  readonly sum?: { readonly dataPoints: ReadonlyArray<NumberPoint>; readonly isMonotonic: boolean }
  readonly gauge?: { readonly dataPoints: ReadonlyArray<NumberPoint> }
  readonly histogram?: { readonly dataPoints: ReadonlyArray<HistogramPoint> }
}
interface TracesBody {
  readonly resourceSpans: ReadonlyArray<{
    readonly resource: { readonly attributes: ReadonlyArray<KeyValue> }
    readonly scopeSpans: ReadonlyArray<{ readonly spans: ReadonlyArray<Span> }>
  }>
}
interface MetricsBody {
  readonly resourceMetrics: ReadonlyArray<{
    readonly resource: { readonly attributes: ReadonlyArray<KeyValue> }
    readonly scopeMetrics: ReadonlyArray<{ readonly metrics: ReadonlyArray<MetricData> }>
  }>
}

/** Every span in every traces request. */
export const spansOf = (received: ReadonlyArray<Received>): ReadonlyArray<Span> =>
  received.filter((r) => r.path === "/v1/traces").flatMap((r) =>
    (r.json as TracesBody).resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans))
  )

/** The metrics of the last metrics request (they are cumulative). */
export const lastMetrics = (received: ReadonlyArray<Received>): ReadonlyArray<MetricData> => {
  const last = received.filter((r) => r.path === "/v1/metrics").at(-1)
  if (last === undefined) return []
  return (last.json as MetricsBody).resourceMetrics.flatMap((rm) => rm.scopeMetrics.flatMap((sm) => sm.metrics))
}

/** The resource attributes of every request, flattened. */
export const resourcesOf = (received: ReadonlyArray<Received>): ReadonlyArray<Record<string, unknown>> =>
  received.filter((r) => r.json !== undefined).flatMap((r) => {
    const body = r.json as Partial<TracesBody & MetricsBody>
    const resources = [...(body.resourceSpans ?? []), ...(body.resourceMetrics ?? [])].map((x) => x.resource)
    return resources.map((res) => attributes(res.attributes))
  })

const valueOf = (value: AnyValue): unknown => {
  if (value.stringValue !== undefined) return value.stringValue
  if (value.intValue !== undefined) return Number(value.intValue)
  if (value.doubleValue !== undefined) return value.doubleValue
  if (value.boolValue !== undefined) return value.boolValue
  if (value.arrayValue !== undefined) return value.arrayValue.values.map(valueOf)
  return undefined
}

/** Key-values as a plain record. */
export const attributes = (kvs: ReadonlyArray<KeyValue>): Record<string, unknown> =>
  Object.fromEntries(kvs.map((kv) => [kv.key, valueOf(kv.value)]))

/** A number point's value. */
export const pointValue = (point: NumberPoint): number => point.asDouble ?? Number(point.asInt ?? 0)
