/**
 * The circuit breaker state machine: a pure function `decide(state, now, event) → [result, state]`.
 *
 * Everything here is plain JSON (numbers, strings, arrays, null) so a store can keep the state anywhere
 * (a Map, a Redis string written by an optimistic transaction running this same function) and every transition is
 * decided in one atomic step.
 * Time is always passed in (`now`, epoch milliseconds from the Effect clock); nothing here reads a clock.
 */

/** The phase of a breaker. `isolated` is a manual hold open, left only by a reset. */
export type Phase = "closed" | "open" | "halfOpen" | "isolated"

/** Why a transition happened. */
export type Reason =
  | "consecutiveFailures"
  | "failureRate"
  | "slowCallRate"
  | "probeFailed"
  | "probeSlow"
  | "breakElapsed"
  | "probesSucceeded"
  | "isolated"
  | "reset"

/** The sampling window of the rate-based rules. */
export type WindowConfig =
  | { readonly kind: "calls"; readonly size: number }
  | { readonly kind: "time"; readonly durationMs: number; readonly buckets: number }

/** The decoded, serializable breaker configuration (durations in milliseconds). */
export interface Config {
  /** Opens after this many consecutive counted failures; null disables the rule. */
  readonly failureThreshold: number | null
  /** Opens when failures / calls ≥ threshold over the window (once `minimumCalls` calls are in it). */
  readonly failureRate: number | null
  /** A call taking at least `durationMs` is slow; opens when slow / calls ≥ rateThreshold. */
  readonly slowCall: { readonly durationMs: number; readonly rateThreshold: number } | null
  /** The window both rate rules read; null when neither rule is set. */
  readonly window: WindowConfig | null
  /** Calls the window must hold before a rate rule may open the circuit. */
  readonly minimumCalls: number
  /** Break length: `initialMs · factor^breaks`, capped at `maxMs` (factor 1 = constant). */
  readonly halfOpenAfter: { readonly initialMs: number; readonly maxMs: number; readonly factor: number }
  /** How many calls one half-open period admits; all must succeed to close. */
  readonly halfOpenProbes: number
  /** A probe not reported after this long is written off (its process may have died). */
  readonly probeTimeoutMs: number
}

/** A ring of the last `size` outcomes (bit 0 = failure, bit 1 = slow). */
export interface CallsWindow {
  readonly kind: "calls"
  readonly size: number
  readonly ring: ReadonlyArray<number>
  readonly next: number
  readonly calls: number
  readonly failures: number
  readonly slow: number
}

/** Buckets of `durationMs / buckets` each; a bucket is `[index, calls, failures, slow]`, kept at `index % buckets`. */
export interface TimeWindow {
  readonly kind: "time"
  readonly durationMs: number
  readonly bucketCount: number
  readonly buckets: ReadonlyArray<readonly [number, number, number, number]>
}

/** The window's state. */
export type WindowState = CallsWindow | TimeWindow

/** The whole state of one breaker key. Plain JSON. */
export interface State {
  readonly phase: Phase
  /** Bumped on every transition: a ticket of an older generation no longer counts. */
  readonly generation: number
  readonly consecutiveFailures: number
  readonly window: WindowState | null
  /** When the current break ends (open only). */
  readonly openUntil: number
  /** Breaks in a row without a close: drives the break backoff. */
  readonly breaks: number
  readonly probesAdmitted: number
  readonly probeSuccesses: number
  readonly lastProbeAt: number
  /** When the phase last changed. */
  readonly changedAt: number
}

/** What an admitted call carries until its outcome is recorded. */
export interface Ticket {
  readonly generation: number
  readonly probe: boolean
  readonly startedAt: number
}

/** A call's outcome as the breaker sees it: `ignored` neither helps nor hurts (and frees a probe slot). */
export type Outcome = "success" | "failure" | "ignored"

/** One phase change. `at` is when it took effect (a break elapses at `openUntil`, even if seen later). */
export interface Transition {
  readonly from: Phase
  readonly to: Phase
  readonly reason: Reason
  readonly at: number
  /** Set when `to` is open: the break length in milliseconds. */
  readonly breakMs: number | null
}

/** A read-only view of one key. */
export interface Status {
  readonly phase: Phase
  /** Milliseconds until a call may be admitted again; 0 when closed or a probe slot is free. */
  readonly retryAfterMs: number
  readonly consecutiveFailures: number
  readonly calls: number
  readonly failures: number
  readonly slowCalls: number
  readonly changedAt: number
}

/** The answer to an admission request. */
export type Admission =
  | { readonly _tag: "Admitted"; readonly ticket: Ticket; readonly transitions: ReadonlyArray<Transition> }
  | {
    readonly _tag: "Rejected"
    readonly phase: Phase
    readonly retryAfterMs: number
    readonly transitions: ReadonlyArray<Transition>
  }

/** The inputs of the state machine. */
export type Event =
  | { readonly _tag: "Admit"; readonly config: Config }
  | { readonly _tag: "Record"; readonly config: Config; readonly ticket: Ticket; readonly outcome: Outcome }
  | { readonly _tag: "Observe"; readonly config: Config }
  | { readonly _tag: "Isolate"; readonly config: Config }
  | { readonly _tag: "Reset"; readonly config: Config }

/** The result of each event. */
export type Result<E extends Event> = E extends { readonly _tag: "Admit" } ? Admission
  : E extends { readonly _tag: "Observe" } ? { readonly status: Status; readonly transitions: ReadonlyArray<Transition> }
  : ReadonlyArray<Transition>

/** The state of a key never seen before: closed, empty. */
export const initial: State = {
  phase: "closed",
  generation: 0,
  consecutiveFailures: 0,
  window: null,
  openUntil: 0,
  breaks: 0,
  probesAdmitted: 0,
  probeSuccesses: 0,
  lastProbeAt: 0,
  changedAt: 0
}

/**
 * Whether a state behaves as {@link initial}: closed, with no failure counted and no window, no break backoff.
 * A store may forget such a key (a late outcome of an older generation is ignored either way).
 */
export const isFresh = (state: State): boolean =>
  state === initial ||
  (state.phase === "closed" && state.consecutiveFailures === 0 && state.window === null && state.breaks === 0)

const none: ReadonlyArray<Transition> = []

/** The break length after `breaks` earlier breaks in a row. */
export const breakMs = (config: Config, breaks: number): number => {
  const { factor, initialMs, maxMs } = config.halfOpenAfter
  const length = initialMs * Math.pow(factor, breaks)
  return Number.isFinite(length) ? Math.min(maxMs, length) : maxMs
}

// ---------------------------------------------------------------------------------------------------------------
// Windows

const emptyWindow = (config: WindowConfig): WindowState =>
  config.kind === "calls"
    ? { kind: "calls", size: config.size, ring: [], next: 0, calls: 0, failures: 0, slow: 0 }
    : { kind: "time", durationMs: config.durationMs, bucketCount: config.buckets, buckets: [] }

const windowMatches = (state: WindowState, config: WindowConfig): boolean =>
  state.kind === "calls"
    ? config.kind === "calls" && config.size === state.size
    : config.kind === "time" && config.durationMs === state.durationMs && config.buckets === state.bucketCount

const bucketIndex = (config: Extract<WindowConfig, { kind: "time" }>, now: number): number =>
  Math.floor(now / (config.durationMs / config.buckets))

/** Window totals at `now`: `[calls, failures, slow]`. */
export const windowTotals = (
  window: WindowState | null,
  config: WindowConfig | null,
  now: number
): readonly [number, number, number] => {
  if (window === null || config === null || !windowMatches(window, config)) return [0, 0, 0]
  if (window.kind === "calls") return [window.calls, window.failures, window.slow]
  const current = bucketIndex(config as Extract<WindowConfig, { kind: "time" }>, now)
  const oldest = current - (config as Extract<WindowConfig, { kind: "time" }>).buckets
  let calls = 0
  let failures = 0
  let slow = 0
  for (const bucket of window.buckets) {
    if (bucket[0] <= oldest || bucket[0] > current) continue
    calls += bucket[1]
    failures += bucket[2]
    slow += bucket[3]
  }
  return [calls, failures, slow]
}

// Windows and states are built as literals of one fixed shape (not spreads): this runs on every recorded outcome.
const addToCalls = (window: CallsWindow, failed: boolean, slow: boolean): CallsWindow => {
  const code = (failed ? 1 : 0) | (slow ? 2 : 0)
  const ring = window.ring.slice()
  let { calls, failures, slow: slowCount } = window
  if (calls === window.size) {
    const evicted = ring[window.next]
    failures -= evicted & 1
    slowCount -= (evicted >> 1) & 1
  } else {
    calls += 1
  }
  ring[window.next] = code
  return {
    kind: "calls",
    size: window.size,
    ring,
    next: (window.next + 1) % window.size,
    calls,
    failures: failures + (failed ? 1 : 0),
    slow: slowCount + (slow ? 1 : 0)
  }
}

const addToTime = (
  window: TimeWindow,
  config: Extract<WindowConfig, { kind: "time" }>,
  now: number,
  failed: boolean,
  slow: boolean
): TimeWindow => {
  const index = bucketIndex(config, now)
  const slot = index % config.buckets
  const buckets = window.buckets.slice()
  while (buckets.length < config.buckets) buckets.push([Number.MIN_SAFE_INTEGER, 0, 0, 0])
  const bucket = buckets[slot][0] === index ? buckets[slot] : [index, 0, 0, 0] as const
  buckets[slot] = [index, bucket[1] + 1, bucket[2] + (failed ? 1 : 0), bucket[3] + (slow ? 1 : 0)]
  return { kind: "time", durationMs: window.durationMs, bucketCount: window.bucketCount, buckets }
}

const addToWindow = (
  window: WindowState | null,
  config: WindowConfig | null,
  now: number,
  failed: boolean,
  slow: boolean
): WindowState | null => {
  if (config === null) return null
  const current = window !== null && windowMatches(window, config) ? window : emptyWindow(config)
  return current.kind === "calls"
    ? addToCalls(current, failed, slow)
    : addToTime(current, config as Extract<WindowConfig, { kind: "time" }>, now, failed, slow)
}

// ---------------------------------------------------------------------------------------------------------------
// Transitions

const transition = (
  state: State,
  to: Phase,
  reason: Reason,
  at: number,
  patch: Partial<State>
): readonly [Transition, State] => {
  const next: State = {
    ...state,
    consecutiveFailures: 0,
    window: null,
    probesAdmitted: 0,
    probeSuccesses: 0,
    ...patch,
    phase: to,
    generation: state.generation + 1,
    changedAt: at
  }
  const breakLength = to === "open" ? next.openUntil - at : null
  return [{ from: state.phase, to, reason, at, breakMs: breakLength }, next]
}

const open = (config: Config, state: State, now: number, reason: Reason, breaks: number) =>
  transition(state, "open", reason, now, { breaks, openUntil: now + breakMs(config, breaks) })

/** Applies the transitions that time alone causes: a break elapsing, a lost probe being written off. */
export const advance = (config: Config, state: State, now: number): readonly [ReadonlyArray<Transition>, State] => {
  if (state.phase === "open" && now >= state.openUntil) {
    const [t, next] = transition(state, "halfOpen", "breakElapsed", state.openUntil, { breaks: state.breaks })
    return [[t], next]
  }
  if (
    state.phase === "halfOpen" &&
    state.probesAdmitted > state.probeSuccesses &&
    now >= state.lastProbeAt + config.probeTimeoutMs
  ) {
    // The outstanding probes are written off: a new generation, so their late outcomes no longer count.
    return [none, { ...state, generation: state.generation + 1, probesAdmitted: 0, probeSuccesses: 0 }]
  }
  return [none, state]
}

const rejectionMs = (config: Config, state: State, now: number): number =>
  state.phase === "open" ? Math.max(0, state.openUntil - now) : breakMs(config, state.breaks)

const admit = (config: Config, state: State, now: number): readonly [Admission, State] => {
  // The hot path: a closed circuit admits at once (time alone never moves a closed circuit).
  if (state.phase === "closed") {
    return [{ _tag: "Admitted", ticket: { generation: state.generation, probe: false, startedAt: now }, transitions: none }, state]
  }
  const [transitions, current] = advance(config, state, now)
  switch (current.phase) {
    case "closed":
      return [{ _tag: "Admitted", ticket: { generation: current.generation, probe: false, startedAt: now }, transitions }, current]
    case "halfOpen":
      if (current.probesAdmitted < config.halfOpenProbes) {
        const next = { ...current, probesAdmitted: current.probesAdmitted + 1, lastProbeAt: now }
        return [{ _tag: "Admitted", ticket: { generation: current.generation, probe: true, startedAt: now }, transitions }, next]
      }
      return [{ _tag: "Rejected", phase: current.phase, retryAfterMs: rejectionMs(config, current, now), transitions }, current]
    default:
      return [{ _tag: "Rejected", phase: current.phase, retryAfterMs: rejectionMs(config, current, now), transitions }, current]
  }
}

const tripReason = (config: Config, state: State, now: number): Reason | null => {
  if (config.failureThreshold !== null && state.consecutiveFailures >= config.failureThreshold) {
    return "consecutiveFailures"
  }
  const [calls, failures, slow] = windowTotals(state.window, config.window, now)
  if (calls === 0 || calls < config.minimumCalls) return null
  if (config.failureRate !== null && failures / calls >= config.failureRate) return "failureRate"
  if (config.slowCall !== null && slow / calls >= config.slowCall.rateThreshold) return "slowCallRate"
  return null
}

const recordClosed = (config: Config, state: State, now: number, failed: boolean, slow: boolean) => {
  // The hot path: a success with nothing to count changes nothing.
  if (!failed && config.window === null && state.consecutiveFailures === 0) return [none, state] as const
  const next: State = {
    phase: state.phase,
    generation: state.generation,
    consecutiveFailures: failed ? state.consecutiveFailures + 1 : 0,
    window: addToWindow(state.window, config.window, now, failed, slow),
    openUntil: state.openUntil,
    breaks: state.breaks,
    probesAdmitted: state.probesAdmitted,
    probeSuccesses: state.probeSuccesses,
    lastProbeAt: state.lastProbeAt,
    changedAt: state.changedAt
  }
  // Only a bad outcome may open the circuit: a success never does, even above the rate.
  const reason = failed || slow ? tripReason(config, next, now) : null
  if (reason === null) return [none, next] as const
  const [t, opened] = open(config, next, now, reason, 0)
  return [[t], opened] as const
}

const recordProbe = (config: Config, state: State, now: number, outcome: Outcome, slow: boolean) => {
  if (outcome === "ignored") return [none, { ...state, probesAdmitted: Math.max(0, state.probesAdmitted - 1) }] as const
  if (outcome === "failure" || slow) {
    const [t, opened] = open(config, state, now, outcome === "failure" ? "probeFailed" : "probeSlow", state.breaks + 1)
    return [[t], opened] as const
  }
  const successes = state.probeSuccesses + 1
  if (successes < config.halfOpenProbes) return [none, { ...state, probeSuccesses: successes }] as const
  const [t, closed] = transition(state, "closed", "probesSucceeded", now, { breaks: 0 })
  return [[t], closed] as const
}

const record = (
  config: Config,
  state: State,
  now: number,
  ticket: Ticket,
  outcome: Outcome
): readonly [ReadonlyArray<Transition>, State] => {
  // Time alone never moves a closed circuit: skip `advance` on the hot path.
  let early = none
  let current = state
  if (state.phase !== "closed") [early, current] = advance(config, state, now)
  // A call admitted before the last transition (an older generation) neither extends a break nor reopens.
  if (ticket.generation !== current.generation) return [early, current]
  const slow = outcome !== "ignored" && config.slowCall !== null && now - ticket.startedAt >= config.slowCall.durationMs
  if (ticket.probe && current.phase === "halfOpen") {
    const [late, next] = recordProbe(config, current, now, outcome, slow)
    return [concat(early, late), next]
  }
  if (ticket.probe || current.phase !== "closed" || outcome === "ignored") return [early, current]
  const [late, next] = recordClosed(config, current, now, outcome === "failure", slow)
  return [concat(early, late), next]
}

const concat = (a: ReadonlyArray<Transition>, b: ReadonlyArray<Transition>): ReadonlyArray<Transition> =>
  a.length === 0 ? b : b.length === 0 ? a : [...a, ...b]

const observe = (config: Config, state: State, now: number) => {
  const [transitions, current] = advance(config, state, now)
  const [calls, failures, slow] = windowTotals(current.window, config.window, now)
  const retryAfterMs = current.phase === "closed" ||
      (current.phase === "halfOpen" && current.probesAdmitted < config.halfOpenProbes)
    ? 0
    : rejectionMs(config, current, now)
  const status: Status = {
    phase: current.phase,
    retryAfterMs,
    consecutiveFailures: current.consecutiveFailures,
    calls,
    failures,
    slowCalls: slow,
    changedAt: current.changedAt
  }
  return [{ status, transitions }, current] as const
}

const isolate = (config: Config, state: State, now: number): readonly [ReadonlyArray<Transition>, State] => {
  const [early, current] = advance(config, state, now)
  if (current.phase === "isolated") return [early, current]
  const [t, next] = transition(current, "isolated", "isolated", now, { breaks: current.breaks })
  return [[...early, t], next]
}

const reset = (state: State, now: number): readonly [ReadonlyArray<Transition>, State] => {
  if (state.phase === "closed") {
    return [none, { ...state, consecutiveFailures: 0, window: null, breaks: 0, generation: state.generation + 1 }]
  }
  const [t, next] = transition(state, "closed", "reset", now, { breaks: 0 })
  return [[t], next]
}

/**
 * The whole breaker: given the stored state, the time and an event, the result and the next state.
 * Pure and total; a store runs it inside one atomic step per key.
 */
export const decide = <E extends Event>(state: State, now: number, event: E): readonly [Result<E>, State] => {
  switch (event._tag) {
    case "Admit":
      return admit(event.config, state, now) as unknown as readonly [Result<E>, State]
    case "Record":
      return record(event.config, state, now, event.ticket, event.outcome) as unknown as readonly [Result<E>, State]
    case "Observe":
      return observe(event.config, state, now) as unknown as readonly [Result<E>, State]
    case "Isolate":
      return isolate(event.config, state, now) as unknown as readonly [Result<E>, State]
    case "Reset":
      return reset(state, now) as unknown as readonly [Result<E>, State]
  }
}
