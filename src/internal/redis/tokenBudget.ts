/**
 * The Redis TokenBudgetStore: each method of the budget ledger (`../budgetLedger.ts`) as one Lua script, so one
 * key's reserve / commit / refund / usage are atomic across every process sharing the server.
 *
 * Keys of one budget key K (all in one hash slot through the `{K}` tag):
 * - `<prefix>budget:{K}`    hash: `ps`/`pe` (calendar period bounds), `ut`/`un` (calendar usage, tokens and nano-USD),
 *                           `rt`/`rn` (sum of live reservations), `ex` (when the key can be forgotten);
 * - `<prefix>budget:{K}:r`  hash: reservation id → "tokens,nanoUsd";
 * - `<prefix>budget:{K}:l`  sorted set: reservation id scored by its lease end (`expiresAt`);
 * - `<prefix>budget:{K}:b`  hash: rolling bucket index → "tokens,nanoUsd";
 * - `<prefix>budget:{K}:f`  set: alert thresholds fired ("tokens@0.8");
 * - `<prefix>budget:{K}:c`  hash: reservation id → "tokens,nanoUsd,bucket" for leases that ended unsettled and were
 *                           charged at their worst case (bucket -1 in a calendar period);
 * - `<prefix>budget:{K}:s`  sorted set: reservation ids committed in the last {@link SETTLED_MS} ms, scored by the
 *                           `now` of their commit. A commit of an id found there is a repeat and charges nothing: a
 *                           commit whose reply was lost (a frozen or unreachable server, a timed-out connection) is
 *                           retried by the policy, and the first one may still run when the server comes back. Both
 *                           carry the caller's clock at the time they were sent, a few seconds apart at most, so
 *                           however long they waited in a frozen server the repeat falls inside the window.
 *
 * Numbers: Lua numbers are doubles, like JS numbers, and every sum is computed in the same order of operations as
 * the ledger, so the two stores agree exactly; integers stay exact below 2^53 (9,007,199,254,740,992 nano-USD, about
 * $9.007 million, per key and period). Numbers never go through Lua's `tostring` (it keeps 14 significant digits):
 * they are written with `%.0f` (integers) or `%.17g`, and every reply is a string parsed with `Number`.
 *
 * Time: `now` and the window come from the caller's clock; expiry of reservations, buckets and periods is decided
 * from the stored timestamps only. Every key gets a PEXPIRE of (logical end − now) + {@link TTL_MARGIN_MS}, and is
 * deleted when its logical end has passed (what the memory store does).
 */
import { Effect, Layer } from "effect"
import { RedisClient, type Script, script } from "./client.js"
import type {
  CommitInput,
  CommitResult,
  Crossing,
  Limits,
  RefundInput,
  RefundResult,
  ReserveInput,
  ReserveResult,
  Snapshot,
  StoreService,
  Unit,
  UsageInput
} from "../budgetLedger.js"
import { TokenBudgetStore } from "../budgetStore.js"
import { bucketIndex, oldestLiveBucket, reportedBounds, thresholdAmount, type Window } from "../budgetPeriod.js"

/**
 * Added to every key's TTL beyond its logical end, so that a replica whose clock runs ahead of another's (by less
 * than this) never lets Redis drop a key that the other still counts.
 */
export const TTL_MARGIN_MS = 5 * 60_000

/**
 * How long (by the callers' clocks) a committed reservation id is remembered, so that a repeat of its commit charges
 * nothing. The policy retries a commit for about 6 s; a minute covers those retries with room to spare. The memory
 * store needs no window (its steps run in the caller's process and are never delivered twice); given this one, its
 * ledger gives the same results as the scripts.
 */
export const SETTLED_MS = 60_000

// ARGV[1] window kind ("C" calendar, "R" rolling), ARGV[2] now,
// calendar: ARGV[3] start, ARGV[4] end; rolling: ARGV[3] oldest live bucket, ARGV[4] bucketMs, ARGV[5] durationMs,
// ARGV[6] bucket of now. Method arguments start at ARGV[7].
const prelude = `
local H, R, L, B, F, C, S = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local cal = ARGV[1] == "C"
local nowArg = ARGV[2]
local now = tonumber(nowArg)
local wa, wb, wc = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local current = ARGV[6]

-- exact decimal text of a double (tostring keeps only 14 digits)
local function num(n)
  n = n + 0
  if n == math.floor(n) then return string.format("%.0f", n) end
  return string.format("%.17g", n)
end
local function pair(v)
  local t, n = string.match(v, "^([^,]*),(.*)$")
  return tonumber(t), tonumber(n)
end

local s = redis.call("HMGET", H, "ps", "pe", "ut", "un", "rt", "rn", "ex")
local ps, pe = tonumber(s[1]), tonumber(s[2])
local ut, un = tonumber(s[3]) or 0, tonumber(s[4]) or 0
local rt, rn = tonumber(s[5]) or 0, tonumber(s[6]) or 0
local ex = tonumber(s[7]) or -math.huge
local buckets = {}

local function triple(v)
  local t, n, b = string.match(v, "^([^,]*),([^,]*),(.*)$")
  return tonumber(t), tonumber(n), tonumber(b)
end
local function addBucket(index, t, n)
  local v = redis.call("HGET", B, index)
  local bt, bn = 0, 0
  if v then bt, bn = pair(v) end
  redis.call("HSET", B, index, num(bt + t) .. "," .. num(bn + n))
end

-- prepare: charge expired reservations at their worst case (to the period, or the bucket of the lease's end),
-- start a newer calendar period, drop expired buckets
local expired = redis.call("ZRANGEBYSCORE", L, "-inf", nowArg, "WITHSCORES")
if #expired > 0 then
  for k = 1, #expired, 2 do
    local id = expired[k]
    local v = redis.call("HGET", R, id)
    if v then
      local t, n = pair(v)
      rt, rn = rt - t, rn - n
      redis.call("HDEL", R, id)
      if cal then
        ut, un = ut + t, un + n
        redis.call("HSET", C, id, v .. ",-1")
      else
        local index = num(math.floor(tonumber(expired[k + 1]) / wb))
        addBucket(index, t, n)
        redis.call("HSET", C, id, v .. "," .. index)
      end
    end
  end
  redis.call("ZREMRANGEBYSCORE", L, "-inf", nowArg)
end
if cal then
  if ps == nil or wa > ps then
    ps, pe, ut, un = wa, wb, 0, 0
    redis.call("DEL", F, C)
  end
else
  local conv = redis.call("HGETALL", C)
  for k = 1, #conv, 2 do
    local _, _, b = triple(conv[k + 1])
    if b < wa then redis.call("HDEL", C, conv[k]) end
  end
  local all = redis.call("HGETALL", B)
  for k = 1, #all, 2 do
    if tonumber(all[k]) < wa then
      redis.call("HDEL", B, all[k])
    else
      local t, n = pair(all[k + 1])
      buckets[all[k]] = { t, n }
    end
  end
end

local function used()
  if cal then return ut, un end
  local t, n = 0, 0
  for _, b in pairs(buckets) do t, n = t + b[1], n + b[2] end
  return t, n
end

local function release(id)
  local v = redis.call("HGET", R, id)
  if not v then return false end
  local t, n = pair(v)
  rt, rn = rt - t, rn - n
  redis.call("HDEL", R, id)
  redis.call("ZREM", L, id)
  return true
end

-- A converted reservation settled late: adds (dt, dn) where its worst case was charged; false when not converted.
local function settleConverted(id, dt, dn)
  local v = redis.call("HGET", C, id)
  if not v then return false end
  local t, n, b = triple(v)
  redis.call("HDEL", C, id)
  if b < 0 then
    ut, un = ut + dt - t, un + dn - n
  else
    local index = num(b)
    local current = buckets[index]
    if current then
      buckets[index] = { current[1] + dt - t, current[2] + dn - n }
      redis.call("HSET", B, index, num(buckets[index][1]) .. "," .. num(buckets[index][2]))
    end
  end
  return true
end

-- A key that holds nothing (no usage, reservation or pending conversion) is deleted at once, as the memory store
-- forgets it: the next call starts from the fresh state either way.
local function isFresh()
  if redis.call("ZCARD", L) > 0 or redis.call("HLEN", C) > 0 then return false end
  if cal then return ut == 0 and un == 0 end
  return next(buckets) == nil
end

-- touch: the key's logical end (period end, newest bucket's expiry, last lease) becomes \`ex\`, and the key is
-- deleted once \`ex\` has passed. A rejected reservation leaves \`ex\` as it was (what the ledger does).
-- Every key expires in Redis no earlier than its logical end (plus a margin).
local function finish(head, extra, rejected)
  if redis.call("ZCARD", L) == 0 then rt, rn = 0, 0 end
  local ends = -math.huge
  if cal then
    ends = pe
  else
    for i, _ in pairs(buckets) do ends = math.max(ends, (tonumber(i) + 1) * wb + wc) end
  end
  local last = redis.call("ZRANGE", L, "-1", "-1", "WITHSCORES")
  if last[2] then ends = math.max(ends, tonumber(last[2])) end
  if not rejected then ex = ends end
  if ex <= now or isFresh() then
    redis.call("DEL", H, R, L, B, F, C, S)
  else
    local fields = { "rt", num(rt), "rn", num(rn), "ex", num(ex) }
    if ps ~= nil then
      for _, v in ipairs({ "ps", num(ps), "pe", num(pe), "ut", num(ut), "un", num(un) }) do table.insert(fields, v) end
    end
    redis.call("HSET", H, unpack(fields))
    local ttl = num(math.ceil(math.max(ends, ex) - now) + ${TTL_MARGIN_MS})
    for _, key in ipairs(KEYS) do redis.call("PEXPIRE", key, ttl) end
  end
  local t, n = used()
  local reply = { head, num(t), num(n), num(rt), num(rn), ps and num(ps) or "", pe and num(pe) or "" }
  for _, v in ipairs(extra) do table.insert(reply, v) end
  return reply
end
`

// ARGV[7] id, ARGV[8] tokens, ARGV[9] nano-USD, ARGV[10] token limit ("" = none), ARGV[11] nano-USD limit, ARGV[12] lease end
const reserveLua = `${prelude}
local id = ARGV[7]
local amount = { tonumber(ARGV[8]), tonumber(ARGV[9]) }
local limits = { tonumber(ARGV[10]), tonumber(ARGV[11]) }
if redis.call("HEXISTS", R, id) == 0 then
  local u = { used() }
  local r = { rt, rn }
  for unit = 1, 2 do
    local limit = limits[unit]
    if limit ~= nil then
      local remaining = math.max(0, limit - u[unit] - r[unit])
      if amount[unit] > remaining then return finish("rejected", { tostring(unit), num(remaining) }, true) end
    end
  end
  redis.call("HSET", R, id, ARGV[8] .. "," .. ARGV[9])
  redis.call("ZADD", L, ARGV[12], id)
  rt, rn = rt + amount[1], rn + amount[2]
end
return finish("reserved", {}, false)
`

// ARGV[7] id, ARGV[8] tokens, ARGV[9] nano-USD, ARGV[10] number of thresholds, then per threshold (in the order
// they are reported): id, unit ("1" tokens, "2" nano-USD), amount that reaches it
const commitLua = `${prelude}
-- a commit of an id committed within the repeat window (by the callers' clocks) is a repeat: it charges nothing
local settledAt = redis.call("ZSCORE", S, ARGV[7])
if settledAt and tonumber(settledAt) >= now - ${SETTLED_MS} then return finish("repeated", {}, false) end
redis.call("ZREMRANGEBYSCORE", S, "-inf", "(" .. num(now - ${SETTLED_MS}))
redis.call("ZADD", S, nowArg, ARGV[7])
local found = release(ARGV[7])
local count = tonumber(ARGV[10])
local function rearm(u)
  for k = 0, count - 1 do
    local id, unit, amount = ARGV[11 + 3 * k], tonumber(ARGV[12 + 3 * k]), tonumber(ARGV[13 + 3 * k])
    if u[unit] < amount then redis.call("SREM", F, id) end
  end
end
rearm({ used() })
local t, n = tonumber(ARGV[8]), tonumber(ARGV[9])
if found or not settleConverted(ARGV[7], t, n) then
  if cal then
    ut, un = ut + t, un + n
  else
    local b = buckets[current] or { 0, 0 }
    buckets[current] = { b[1] + t, b[2] + n }
    redis.call("HSET", B, current, num(buckets[current][1]) .. "," .. num(buckets[current][2]))
  end
end
local u = { used() }
local crossed = {}
for k = 0, count - 1 do
  local id, unit, amount = ARGV[11 + 3 * k], tonumber(ARGV[12 + 3 * k]), tonumber(ARGV[13 + 3 * k])
  if u[unit] >= amount then
    if redis.call("SADD", F, id) == 1 then table.insert(crossed, tostring(k)) end
  else
    redis.call("SREM", F, id)
  end
end
return finish(found and "found" or "missing", crossed, false)
`

// ARGV[7] id
const refundLua = `${prelude}
local found = release(ARGV[7])
if not found then settleConverted(ARGV[7], 0, 0) end
return finish(found and "found" or "missing", {}, false)
`

const usageLua = `${prelude}
return finish("usage", {}, false)
`

interface Scripts {
  readonly reserve: Script
  readonly commit: Script
  readonly refund: Script
  readonly usage: Script
}

const scripts: Scripts = {
  reserve: script(reserveLua),
  commit: script(commitLua),
  refund: script(refundLua),
  usage: script(usageLua)
}

const units: ReadonlyArray<readonly [Unit, "tokens" | "nanoUsd"]> = [["tokens", "tokens"], ["usd", "nanoUsd"]]

const windowArgs = (window: Window, now: number): Array<string> => {
  if (window._tag === "Calendar") return ["C", String(now), String(window.start), String(window.end), "", ""]
  const { bucketMs, durationMs } = window
  return [
    "R",
    String(now),
    String(oldestLiveBucket(now, durationMs, bucketMs)),
    String(bucketMs),
    String(durationMs),
    String(bucketIndex(now, bucketMs))
  ]
}

const limitArg = (limit: number | undefined): string => limit === undefined ? "" : String(limit)

interface Threshold extends Crossing {
  readonly id: string
  readonly unit: Unit
  readonly amount: number
}

/** The thresholds in the order the ledger reports them: per unit (tokens, then USD), ascending. */
const thresholdsOf = (limits: Limits, alertAt: ReadonlyArray<number>): ReadonlyArray<Threshold> => {
  const sorted = [...alertAt].sort((a, b) => a - b)
  return units.flatMap(([unit, field]) => {
    const limit = limits[field]
    if (limit === undefined) return []
    return sorted.map((threshold) => ({ id: `${unit}@${threshold}`, unit, threshold, amount: thresholdAmount(limit, threshold) }))
  })
}

interface Reply {
  readonly head: string
  readonly snapshot: Snapshot
  readonly extra: ReadonlyArray<string>
}

const parse = (raw: unknown, window: Window, now: number): Reply => {
  if (!Array.isArray(raw) || raw.length < 7 || !raw.every((v) => typeof v === "string")) {
    throw new Error("TokenBudgetStore (Redis): unexpected script reply")
  }
  const values = raw as ReadonlyArray<string>
  const bounds = window._tag === "Calendar" && values[5] !== ""
    ? { start: Number(values[5]), end: Number(values[6]) }
    : reportedBounds(window, now)
  return {
    head: values[0],
    snapshot: {
      used: { tokens: Number(values[1]), nanoUsd: Number(values[2]) },
      reserved: { tokens: Number(values[3]), nanoUsd: Number(values[4]) },
      periodStart: bounds.start,
      periodEnd: bounds.end
    },
    extra: values.slice(7)
  }
}

/**
 * The store over one RedisClient. A Redis failure (or an unexpected reply) is a defect, as the store contract says:
 * `reserve` then fails the call, and the policy logs a failed `commit`/`refund` while the lease holds the budget.
 */
export const make = (redis: RedisClient["Type"]): StoreService => {
  const keysOf = (key: string): ReadonlyArray<string> => {
    const base = `${redis.prefix}budget:{${key}}`
    return [base, `${base}:r`, `${base}:l`, `${base}:b`, `${base}:f`, `${base}:c`, `${base}:s`]
  }
  const run = <A>(
    pick: (scripts: Scripts) => Script,
    input: { readonly key: string; readonly window: Window; readonly now: number },
    args: ReadonlyArray<string>,
    decode: (reply: Reply) => A
  ): Effect.Effect<A> =>
    redis.run(pick(scripts), keysOf(input.key), [...windowArgs(input.window, input.now), ...args]).pipe(
      Effect.flatMap((raw) => Effect.try(() => decode(parse(raw, input.window, input.now)))),
      Effect.orDie
    )

  const reserve = (input: ReserveInput): Effect.Effect<ReserveResult> =>
    run((s) => s.reserve, input, [
      input.reservationId,
      String(input.amount.tokens),
      String(input.amount.nanoUsd),
      limitArg(input.limits.tokens),
      limitArg(input.limits.nanoUsd),
      String(input.expiresAt)
    ], ({ extra, head, snapshot }): ReserveResult => {
      if (head === "reserved") return { _tag: "Reserved", snapshot }
      const [unit, field] = units[Number(extra[0]) - 1]
      return { _tag: "Rejected", unit, requested: input.amount[field], remaining: Number(extra[1]), snapshot }
    })

  const commit = (input: CommitInput): Effect.Effect<CommitResult> => {
    const thresholds = thresholdsOf(input.limits, input.alertAt)
    return run((s) => s.commit, input, [
      input.reservationId,
      String(input.actual.tokens),
      String(input.actual.nanoUsd),
      String(thresholds.length),
      ...thresholds.flatMap((t) => [t.id, t.unit === "tokens" ? "1" : "2", String(t.amount)])
    ], ({ extra, head, snapshot }): CommitResult => ({
      found: head === "found",
      crossed: extra.map((index) => {
        const { threshold, unit } = thresholds[Number(index)]
        return { unit, threshold }
      }),
      snapshot
    }))
  }

  const refund = (input: RefundInput): Effect.Effect<RefundResult> =>
    run((s) => s.refund, input, [input.reservationId], ({ head, snapshot }) => ({ found: head === "found", snapshot }))

  const usage = (input: UsageInput): Effect.Effect<Snapshot> => run((s) => s.usage, input, [], (r) => r.snapshot)

  return { reserve, commit, refund, usage }
}

/** The store over the `RedisClient` in context. */
export const layer: Layer.Layer<TokenBudgetStore, never, RedisClient> = Layer.effect(
  TokenBudgetStore,
  Effect.map(RedisClient, make)
)
