/**
 * The budget ledger of one key (one budget and one scope value): the state machine every TokenBudgetStore
 * implements. Each exported operation is one atomic step on one key's state, deterministic, with `now` passed in:
 * the memory store runs it synchronously, a Redis store runs the same steps in one Lua script per method.
 *
 * State of a key:
 * - `used`: committed usage of the current calendar period (calendar windows), or `buckets` of committed usage
 *   (rolling windows);
 * - `reservations`: in-flight worst cases by id, each with a lease (`expiresAt`) so a crashed caller cannot hold
 *   budget forever;
 * - `converted`: reservations whose lease ended before they were settled. A lease that ends is **charged** (its
 *   worst case becomes usage), never dropped: the caller may have spent it and only lost the commit (a store
 *   unreachable at the time), so the budget stays conservative. A commit or refund that arrives later settles the
 *   difference (the ledger then holds exactly the actual usage); entries live as long as the period or bucket
 *   they were charged to;
 * - `fired`: the alert thresholds already reported in this period;
 * - `settled`: with a repeat window (a store whose steps can be delivered twice: a remote one, where a commit whose
 *   reply was lost is retried while the first may still run), the reservation ids committed within the window, by
 *   the `now` of their commit. A commit of an id committed less than the window before is a repeat: it charges
 *   nothing and reports `found: false`. A key back to the fresh state forgets them with everything else.
 *
 * Invariant (what makes budgets exact): a reservation is admitted only if `used + reserved + amount <= limit`
 * for every limited unit, and a commit replaces a reservation by the actual usage. As long as the actual usage is
 * at most the reservation (the worst case: counted prompt + max output), `used + reserved` never exceeds the limit,
 * in any period, under any interleaving. A commit above its reservation (a provider reporting more prompt tokens
 * than were counted, a pricier model answering) is still charged in full: the ledger records what was spent.
 */
import { bucketIndex, oldestLiveBucket, reportedBounds, thresholdAmount, type Window } from "./budgetPeriod.js"

/** Amounts of a budget: tokens and USD in nano-dollars (integers, so sums are exact). */
export interface Amount {
  readonly tokens: number
  readonly nanoUsd: number
}

/** The limits of a budget; an unset field is not limited. */
export interface Limits {
  readonly tokens?: number | undefined
  readonly nanoUsd?: number | undefined
}

/** The unit of a limit, as reported to users. */
export type Unit = "tokens" | "usd"

const units: ReadonlyArray<readonly [Unit, keyof Amount]> = [["tokens", "tokens"], ["usd", "nanoUsd"]]

/** The zero amount. */
export const zero: Amount = { tokens: 0, nanoUsd: 0 }

const add = (a: Amount, b: Amount): Amount => ({ tokens: a.tokens + b.tokens, nanoUsd: a.nanoUsd + b.nanoUsd })

// Read-only stand-in for a collection not allocated yet.
const none: ReadonlyMap<never, never> = new Map<never, never>()

/** The mutable state of one key. */
export interface KeyState {
  periodStart: number
  periodEnd: number
  used: Amount
  /** The collections below are allocated on first use and dropped once empty (most keys hold one small amount). */
  buckets: Map<number, Amount> | undefined
  reservations: Map<string, { readonly amount: Amount; readonly expiresAt: number }> | undefined
  /**
   * Kept beside `reservations` so no step walks them (a key of a busy user holds one a call in flight): their sum,
   * a lower bound of their earliest lease end (no lease can have ended before it: `convertExpired` walks only once
   * `now` reaches it, and the walk makes it exact) and their latest lease end, exact (recomputed only when the
   * reservation holding it goes). Both bounds are ±Infinity when there are none.
   */
  reserved: Amount
  leaseMin: number
  leaseMax: number
  /** Expired reservations charged at their worst case: id → amount and the rolling bucket charged (calendar: -1). */
  converted: Map<string, { readonly amount: Amount; readonly bucket: number }> | undefined
  fired: Set<string> | undefined
  /** Reservation ids committed within the repeat window → the `now` of their commit (oldest first). */
  settled: Map<string, number> | undefined
  /** When the whole key can be forgotten (the TTL a Redis key gets). */
  expiresAt: number
}

/** A fresh key. */
export const emptyState = (): KeyState => ({
  periodStart: Number.NEGATIVE_INFINITY,
  periodEnd: Number.NEGATIVE_INFINITY,
  used: zero,
  buckets: undefined,
  reservations: undefined,
  reserved: zero,
  leaseMin: Number.POSITIVE_INFINITY,
  leaseMax: Number.NEGATIVE_INFINITY,
  converted: undefined,
  fired: undefined,
  settled: undefined,
  expiresAt: Number.NEGATIVE_INFINITY
})

/** Whether a key holds nothing (no usage, reservation or pending conversion): it can be forgotten at once. */
export const isFresh = (state: KeyState): boolean =>
  (state.reservations?.size ?? 0) === 0 && (state.converted?.size ?? 0) === 0 && (state.buckets?.size ?? 0) === 0 &&
  state.used.tokens === 0 && state.used.nanoUsd === 0

/** What a key holds at `now`. Bounds are epoch ms (UTC). */
export interface Snapshot {
  readonly used: Amount
  readonly reserved: Amount
  readonly periodStart: number
  readonly periodEnd: number
}

/** Reserve `amount` under `reservationId` until `expiresAt`, if it fits every limit. */
export interface ReserveInput {
  readonly key: string
  readonly reservationId: string
  readonly amount: Amount
  readonly limits: Limits
  readonly window: Window
  readonly now: number
  readonly expiresAt: number
}

/** The outcome of a reservation. On rejection, `requested` and `remaining` are in the rejecting unit's store unit. */
export type ReserveResult =
  | { readonly _tag: "Reserved"; readonly snapshot: Snapshot }
  | {
    readonly _tag: "Rejected"
    readonly unit: Unit
    readonly requested: number
    readonly remaining: number
    readonly snapshot: Snapshot
  }

/** Replace reservation `reservationId` by the `actual` usage; report the alert thresholds crossed. */
export interface CommitInput {
  readonly key: string
  readonly reservationId: string
  readonly actual: Amount
  readonly limits: Limits
  readonly alertAt: ReadonlyArray<number>
  readonly window: Window
  readonly now: number
}

/** One alert threshold crossed by a commit (reported once per period). */
export interface Crossing {
  readonly unit: Unit
  readonly threshold: number
}

/** The outcome of a commit; `found` is false when the reservation had expired or never existed. */
export interface CommitResult {
  readonly found: boolean
  readonly crossed: ReadonlyArray<Crossing>
  readonly snapshot: Snapshot
}

/** Release reservation `reservationId` without charging anything. */
export interface RefundInput {
  readonly key: string
  readonly reservationId: string
  readonly window: Window
  readonly now: number
}

/** The outcome of a refund; `found` is false when the reservation had expired or never existed. */
export interface RefundResult {
  readonly found: boolean
  readonly snapshot: Snapshot
}

/** Read a key at `now`. */
export interface UsageInput {
  readonly key: string
  readonly window: Window
  readonly now: number
}

const addReservation = (state: KeyState, id: string, amount: Amount, expiresAt: number): void => {
  state.reservations ??= new Map()
  state.reservations.set(id, { amount, expiresAt })
  state.reserved = add(state.reserved, amount)
  if (expiresAt < state.leaseMin) state.leaseMin = expiresAt
  if (expiresAt > state.leaseMax) state.leaseMax = expiresAt
}

/** Removes reservation `id`; true when it was there. */
const removeReservation = (state: KeyState, id: string): boolean => {
  const reservation = state.reservations?.get(id)
  if (reservation === undefined) return false
  state.reservations?.delete(id)
  if (state.reservations?.size === 0) {
    state.reserved = zero
    state.leaseMin = Number.POSITIVE_INFINITY
    state.leaseMax = Number.NEGATIVE_INFINITY
    return true
  }
  state.reserved = minus(state.reserved, reservation.amount)
  // The latest lease end is what the key's expiry is made of: kept exact. (With one lease length a reservation is
  // usually settled before the newer ones, so this walk is rare.)
  if (reservation.expiresAt === state.leaseMax) {
    let max = Number.NEGATIVE_INFINITY
    for (const other of (state.reservations ?? none).values()) if (other.expiresAt > max) max = other.expiresAt
    state.leaseMax = max
  }
  return true
}

// A lease that ended unsettled is charged at its worst case: to the stored period (calendar), or to the bucket of
// the lease's end (rolling). Walks the reservations only once `now` reaches the earliest lease end's lower bound.
const convertExpired = (state: KeyState, window: Window, now: number): void => {
  if (state.reservations === undefined || now < state.leaseMin) return
  let earliest = Number.POSITIVE_INFINITY
  const expired: Array<readonly [string, { readonly amount: Amount; readonly expiresAt: number }]> = []
  for (const entry of state.reservations) {
    const expiresAt = entry[1].expiresAt
    if (expiresAt <= now) expired.push(entry)
    else if (expiresAt < earliest) earliest = expiresAt
  }
  state.leaseMin = earliest
  for (const [id, reservation] of expired) {
    removeReservation(state, id)
    if (window._tag === "Calendar") {
      state.used = add(state.used, reservation.amount)
      state.converted ??= new Map()
      state.converted.set(id, { amount: reservation.amount, bucket: -1 })
    } else {
      const bucket = bucketIndex(reservation.expiresAt, window.bucketMs)
      addToBucket(state, bucket, reservation.amount)
      state.converted ??= new Map()
      state.converted.set(id, { amount: reservation.amount, bucket })
    }
  }
}

const prepare = (state: KeyState, window: Window, now: number): void => {
  convertExpired(state, window, now)
  if (window._tag === "Calendar") {
    // Only move forward: a caller with a lagging clock charges the newer period instead of resetting it.
    if (window.start > state.periodStart) {
      state.periodStart = window.start
      state.periodEnd = window.end
      state.used = zero
      state.fired = undefined
      state.converted = undefined
    }
  } else {
    const oldest = oldestLiveBucket(now, window.durationMs, window.bucketMs)
    for (const index of (state.buckets ?? none).keys()) {
      if (index < oldest) state.buckets?.delete(index)
    }
    for (const [id, entry] of state.converted ?? none) {
      if (entry.bucket < oldest) state.converted?.delete(id)
    }
  }
}

const addToBucket = (state: KeyState, bucket: number, amount: Amount): void => {
  const buckets = (state.buckets ??= new Map())
  buckets.set(bucket, add(buckets.get(bucket) ?? zero, amount))
}

// Drops the collections that became empty: a key usually holds one amount and nothing else.
const compact = (state: KeyState): void => {
  if (state.buckets?.size === 0) state.buckets = undefined
  if (state.reservations?.size === 0) state.reservations = undefined
  if (state.converted?.size === 0) state.converted = undefined
  if (state.fired?.size === 0) state.fired = undefined
}

// Adds `amount` (possibly negative) where a converted reservation was charged.
const adjust = (state: KeyState, bucket: number, amount: Amount): void => {
  if (bucket < 0) state.used = add(state.used, amount)
  else addToBucket(state, bucket, amount)
}

const minus = (a: Amount, b: Amount): Amount => ({ tokens: a.tokens - b.tokens, nanoUsd: a.nanoUsd - b.nanoUsd })

const usedOf = (state: KeyState, window: Window): Amount => {
  if (window._tag === "Calendar") return state.used
  let total = zero
  for (const amount of (state.buckets ?? none).values()) total = add(total, amount)
  return total
}

const reservedOf = (state: KeyState): Amount => state.reserved

const snapshotOf = (state: KeyState, window: Window, now: number): Snapshot => {
  const bounds = window._tag === "Calendar" && Number.isFinite(state.periodStart)
    ? { start: state.periodStart, end: state.periodEnd }
    : reportedBounds(window, now)
  return { used: usedOf(state, window), reserved: reservedOf(state), periodStart: bounds.start, periodEnd: bounds.end }
}

const touch = (state: KeyState, window: Window): void => {
  compact(state)
  let expiresAt = window._tag === "Calendar" ? state.periodEnd : Number.NEGATIVE_INFINITY
  if (window._tag === "Rolling") {
    for (const index of (state.buckets ?? none).keys()) {
      expiresAt = Math.max(expiresAt, (index + 1) * window.bucketMs + window.durationMs)
    }
  }
  if (state.leaseMax > expiresAt) expiresAt = state.leaseMax
  state.expiresAt = expiresAt
}

/** Admits `amount` when it fits every limit next to what is used and reserved. Reserving an id twice is a no-op. */
export const reserve = (state: KeyState, input: ReserveInput): ReserveResult => {
  prepare(state, input.window, input.now)
  if (state.reservations?.has(input.reservationId) !== true) {
    const used = usedOf(state, input.window)
    const reserved = reservedOf(state)
    for (const [unit, field] of units) {
      const limit = input.limits[field]
      if (limit === undefined) continue
      const remaining = Math.max(0, limit - used[field] - reserved[field])
      if (input.amount[field] > remaining) {
        return {
          _tag: "Rejected",
          unit,
          requested: input.amount[field],
          remaining,
          snapshot: snapshotOf(state, input.window, input.now)
        }
      }
    }
    addReservation(state, input.reservationId, input.amount, input.expiresAt)
  }
  touch(state, input.window)
  return { _tag: "Reserved", snapshot: snapshotOf(state, input.window, input.now) }
}

const charge = (state: KeyState, window: Window, now: number, actual: Amount): void => {
  if (window._tag === "Calendar") {
    state.used = add(state.used, actual)
  } else {
    const index = bucketIndex(now, window.bucketMs)
    addToBucket(state, index, actual)
  }
}

/**
 * Re-arms the thresholds that `used` no longer reaches. Called with the usage *before* a charge: in a rolling
 * window, usage that expired since the last commit lets a threshold fire again even when this one commit carries
 * usage back over it. (In a calendar period usage only grows and `fired` is cleared at each new period, so this
 * changes nothing there.)
 */
const rearm = (state: KeyState, used: Amount, limits: Limits, alertAt: ReadonlyArray<number>): void => {
  const fired = state.fired
  if (fired === undefined) return
  for (const [unit, field] of units) {
    const limit = limits[field]
    if (limit === undefined) continue
    for (const threshold of alertAt) {
      if (used[field] < thresholdAmount(limit, threshold)) fired.delete(alertId(unit, threshold))
    }
  }
}

// The id of a threshold in `fired` ("tokens@0.8"), built once per unit and threshold.
const alertIds = new Map<number, string>()
const alertId = (unit: Unit, threshold: number): string => {
  const code = unit === "tokens" ? threshold : -1 - threshold
  let id = alertIds.get(code)
  if (id === undefined) {
    id = `${unit}@${threshold}`
    if (alertIds.size < 10_000) alertIds.set(code, id)
  }
  return id
}

const noCrossings: ReadonlyArray<Crossing> = []

// Thresholds in ascending order (crossings are reported lowest first); sorted once per list a caller keeps.
const sortedLists = new WeakMap<ReadonlyArray<number>, ReadonlyArray<number>>()
const ascending = (alertAt: ReadonlyArray<number>): ReadonlyArray<number> => {
  let sorted = sortedLists.get(alertAt)
  if (sorted === undefined) {
    sorted = [...alertAt].sort((a, b) => a - b)
    sortedLists.set(alertAt, sorted)
  }
  return sorted
}

const evaluateAlerts = (
  state: KeyState,
  used: Amount,
  limits: Limits,
  alertAt: ReadonlyArray<number>
): ReadonlyArray<Crossing> => {
  let crossed: Array<Crossing> | undefined
  const thresholds = alertAt.length < 2 ? alertAt : ascending(alertAt)
  for (const [unit, field] of units) {
    const limit = limits[field]
    if (limit === undefined) continue
    for (const threshold of thresholds) {
      if (used[field] >= thresholdAmount(limit, threshold)) {
        const id = alertId(unit, threshold)
        if (state.fired?.has(id) !== true) {
          state.fired ??= new Set()
          state.fired.add(id)
          ;(crossed ??= []).push({ unit, threshold })
        }
      } else if (state.fired !== undefined) {
        // Usage fell back below (a rolling window expired it): the threshold can fire again.
        state.fired.delete(alertId(unit, threshold))
      }
    }
  }
  return crossed ?? noCrossings
}

/**
 * Releases the reservation and charges `actual` to the period current at `now` (usage belongs to the period in
 * which it completes). A reservation whose lease ended was charged at its worst case: the commit replaces that
 * charge by `actual`, where it was made. An unknown reservation (never made, or converted in an earlier period)
 * still charges `actual`: the budget reflects what was spent.
 */
export const commit = (state: KeyState, input: CommitInput, repeatWindowMs: number = 0): CommitResult => {
  prepare(state, input.window, input.now)
  if (repeatWindowMs > 0 && isRepeat(state, input.reservationId, input.now, input.now - repeatWindowMs)) {
    touch(state, input.window)
    return { found: false, crossed: [], snapshot: snapshotOf(state, input.window, input.now) }
  }
  const found = removeReservation(state, input.reservationId)
  rearm(state, usedOf(state, input.window), input.limits, input.alertAt)
  const converted = found ? undefined : state.converted?.get(input.reservationId)
  if (converted === undefined) {
    charge(state, input.window, input.now, input.actual)
  } else {
    state.converted?.delete(input.reservationId)
    adjust(state, converted.bucket, minus(input.actual, converted.amount))
  }
  const crossed = evaluateAlerts(state, usedOf(state, input.window), input.limits, input.alertAt)
  touch(state, input.window)
  return { found, crossed, snapshot: snapshotOf(state, input.window, input.now) }
}

/**
 * Whether `id` was committed at or after `since`; if not, marks it committed at `now`. Marks older than `since` are
 * dropped from the front (they are in commit order but for lagging clocks, so a few may stay a little longer: the
 * check reads each mark's time, so the answer is exact either way).
 */
const isRepeat = (state: KeyState, id: string, now: number, since: number): boolean => {
  const at = state.settled?.get(id)
  if (at !== undefined && at >= since) return true
  const settled = (state.settled ??= new Map())
  for (const [old, time] of settled) {
    if (time >= since) break
    settled.delete(old)
  }
  settled.delete(id)
  settled.set(id, now)
  return false
}

/** Releases the reservation without charging. */
export const refund = (state: KeyState, input: RefundInput): RefundResult => {
  prepare(state, input.window, input.now)
  const found = removeReservation(state, input.reservationId)
  const converted = found ? undefined : state.converted?.get(input.reservationId)
  if (converted !== undefined) {
    // A late refund of a lease that ended: nothing was spent after all, the worst-case charge is taken back.
    state.converted?.delete(input.reservationId)
    adjust(state, converted.bucket, minus(zero, converted.amount))
  }
  touch(state, input.window)
  return { found, snapshot: snapshotOf(state, input.window, input.now) }
}

/** Reads the key at `now` (expired reservations and buckets are not counted). */
export const usage = (state: KeyState, input: UsageInput): Snapshot => {
  prepare(state, input.window, input.now)
  touch(state, input.window)
  return snapshotOf(state, input.window, input.now)
}

/**
 * The store contract: one method = one atomic step of this ledger on one key. A Redis implementation runs each
 * method as one Lua script (`now` comes from the caller's Effect clock, never from the server).
 */
export interface StoreService {
  readonly reserve: (input: ReserveInput) => import("effect").Effect.Effect<ReserveResult>
  readonly commit: (input: CommitInput) => import("effect").Effect.Effect<CommitResult>
  readonly refund: (input: RefundInput) => import("effect").Effect.Effect<RefundResult>
  readonly usage: (input: UsageInput) => import("effect").Effect.Effect<Snapshot>
}
