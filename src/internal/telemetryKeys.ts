/**
 * Labelled metrics that cost no key hashing per update.
 *
 * `Metric.tagged` returns a metric that, on every update, builds the labelled `MetricKey` again, hashes it and
 * looks it up in the registry (tens of microseconds on the hot path). A metric made from the labelled key itself
 * (`Metric.fromMetricKey`) finds its registry entry once and keeps it. Both address the same registry entry, so
 * readers (`Metric.snapshot`, exporters) see one metric either way.
 */
import { Metric, MetricKey } from "effect"
import type { MetricKeyType, MetricLabel } from "effect"

const keys = new WeakMap<object, MetricKey.MetricKey.Untyped>()

/** The metric of `key`, remembered so that {@link withLabels} can label it cheaply. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the constraint Effect's own fromMetricKey has
export const fromKey = <Type extends MetricKeyType.MetricKeyType<any, any>>(
  key: MetricKey.MetricKey<Type>
): Metric.Metric<Type, MetricKeyType.MetricKeyType.InType<Type>, MetricKeyType.MetricKeyType.OutType<Type>> => {
  const metric = Metric.fromMetricKey(key)
  keys.set(metric, key)
  return metric
}

/**
 * `metric` with `labels` added (in that order, after its own): the same registry entry as `Metric.taggedWithLabels`,
 * without its per-update cost when `metric` was made by {@link fromKey}.
 */
export const withLabels = <Type, In, Out>(
  metric: Metric.Metric<Type, In, Out>,
  labels: ReadonlyArray<MetricLabel.MetricLabel>
): Metric.Metric<Type, In, Out> => {
  const key = keys.get(metric)
  if (key === undefined) return Metric.taggedWithLabels(metric, labels)
  return fromKey(MetricKey.taggedWithLabels(key, labels)) as unknown as Metric.Metric<Type, In, Out>
}

/**
 * `map`'s value for `key`, made once; at most `limit` keys are kept (past it a value is made for each use and not
 * stored), so per-model and per-error metric handles never grow without bound.
 */
export const cachedHandle = <V>(map: Map<string, V>, key: string, make: () => V, limit = 10_000): V => {
  let found = map.get(key)
  if (found === undefined) {
    found = make()
    if (map.size < limit) map.set(key, found)
  }
  return found
}
