import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, type Layer, Option, Schema } from "effect"
import { IdempotencyStore, StoredRecord } from "../../src/Idempotency.js"
import { ChatResponse } from "../../src/Llm.js"
import { BadRequest } from "../../src/LlmError.js"

const success = (fingerprint: string): StoredRecord =>
  Schema.encodeSync(StoredRecord)({
    fingerprint,
    exit: Exit.succeed(
      new ChatResponse({
        id: "r1",
        model: "gpt-4o",
        content: "done",
        finishReason: "stop",
        usage: { inputTokens: 1, outputTokens: 2 },
        servedFrom: "provider"
      })
    )
  })

const failure = (fingerprint: string): StoredRecord =>
  Schema.encodeSync(StoredRecord)({ fingerprint, exit: Exit.fail(new BadRequest({ model: "gpt-4o", status: 400 })) })

let counter = 0
const owner = () => `owner-${++counter}`
const uniqueKey = (label: string) => `contract:idem:${label}:${Date.now().toString(36)}:${++counter}`

const T0 = 1_700_000_000_000
const MINUTE = 60_000

/** The contract every IdempotencyStore backend passes. */
export const idempotencyStoreContract = (name: string, layer: Layer.Layer<IdempotencyStore>) =>
  describe(`IdempotencyStore contract: ${name}`, () => {
    it.effect("the first claim wins; a second with the same fingerprint sees in-flight, another fingerprint a mismatch", () =>
      Effect.gen(function* () {
        const store = yield* IdempotencyStore
        const key = uniqueKey("claim")
        expect(yield* store.claim(key, "fp", T0, MINUTE, owner())).toEqual({ _tag: "Claimed" })
        expect(yield* store.claim(key, "fp", T0 + 1, MINUTE, owner())).toEqual({ _tag: "InFlight" })
        expect(yield* store.claim(key, "other", T0 + 1, MINUTE, owner())).toEqual({ _tag: "Mismatch" })
        const entry = Option.getOrThrow(yield* store.get(key, T0 + 1))
        expect(entry._tag).toBe("InFlight")
      }).pipe(Effect.provide(layer)))

    it.effect("50 concurrent claims of one key: exactly one is Claimed", () =>
      Effect.gen(function* () {
        const store = yield* IdempotencyStore
        const key = uniqueKey("race")
        const results = yield* Effect.all(
          Array.from({ length: 50 }, () => store.claim(key, "fp", T0, MINUTE, owner())),
          { concurrency: "unbounded" }
        )
        expect(results.filter((r) => r._tag === "Claimed")).toHaveLength(1)
        expect(results.filter((r) => r._tag === "InFlight")).toHaveLength(49)
      }).pipe(Effect.provide(layer)))

    it.effect("a completed key answers its record (JSON-serializable) until its ttl; another fingerprint is a mismatch", () =>
      Effect.gen(function* () {
        const store = yield* IdempotencyStore
        const key = uniqueKey("complete")
        yield* store.claim(key, "fp", T0, MINUTE, "a")
        expect(yield* store.complete(key, success("fp"), T0 + 10, 10 * MINUTE, "a")).toBe(true)
        const claimed = yield* store.claim(key, "fp", T0 + 20, MINUTE, owner())
        expect(claimed._tag).toBe("Completed")
        if (claimed._tag !== "Completed") return
        expect(claimed.record).toEqual(success("fp"))
        expect(JSON.parse(JSON.stringify(claimed.record))).toEqual(success("fp"))
        const decoded = Schema.decodeUnknownSync(StoredRecord)(JSON.parse(JSON.stringify(claimed.record)))
        expect(Exit.isSuccess(decoded.exit) && decoded.exit.value.content).toBe("done")
        expect(yield* store.claim(key, "other", T0 + 20, MINUTE, owner())).toEqual({ _tag: "Mismatch" })
        const entry = Option.getOrThrow(yield* store.get(key, T0 + 20))
        expect(entry._tag).toBe("Completed")
        // The record outlives the claim's ttl and expires at its own.
        expect((yield* store.claim(key, "fp", T0 + 10 + 10 * MINUTE - 1, MINUTE, owner()))._tag).toBe("Completed")
        expect((yield* store.claim(key, "fp", T0 + 10 + 10 * MINUTE, MINUTE, owner()))._tag).toBe("Claimed")
      }).pipe(Effect.provide(layer)))

    it.effect("a final failure record round-trips", () =>
      Effect.gen(function* () {
        const store = yield* IdempotencyStore
        const key = uniqueKey("failure")
        yield* store.claim(key, "fp", T0, MINUTE, "a")
        yield* store.complete(key, failure("fp"), T0, MINUTE, "a")
        const entry = Option.getOrThrow(yield* store.get(key, T0 + 1))
        expect(entry._tag === "Completed" && entry.record).toEqual(failure("fp"))
      }).pipe(Effect.provide(layer)))

    it.effect("release frees a claim so the next caller claims it", () =>
      Effect.gen(function* () {
        const store = yield* IdempotencyStore
        const key = uniqueKey("release")
        yield* store.claim(key, "fp", T0, MINUTE, "a")
        expect(yield* store.release(key, "a")).toBe(true)
        expect(Option.isNone(yield* store.get(key, T0))).toBe(true)
        expect(yield* store.claim(key, "fp2", T0 + 1, MINUTE, owner())).toEqual({ _tag: "Claimed" })
      }).pipe(Effect.provide(layer)))

    it.effect("an abandoned claim expires after its ttl (a dead holder does not block forever)", () =>
      Effect.gen(function* () {
        const store = yield* IdempotencyStore
        const key = uniqueKey("lease")
        yield* store.claim(key, "fp", T0, MINUTE, owner())
        expect(yield* store.claim(key, "fp", T0 + MINUTE - 1, MINUTE, owner())).toEqual({ _tag: "InFlight" })
        expect(yield* store.claim(key, "fp", T0 + MINUTE, MINUTE, owner())).toEqual({ _tag: "Claimed" })
      }).pipe(Effect.provide(layer)))

    it.effect("get answers the entry as stored: a claim with its fingerprint and lease end, a record with its expiry", () =>
      Effect.gen(function* () {
        const store = yield* IdempotencyStore
        const key = uniqueKey("entry")
        yield* store.claim(key, "fp", T0, MINUTE, "a")
        expect(yield* store.get(key, T0 + 1)).toEqual(Option.some({ _tag: "InFlight", fingerprint: "fp", expiresAt: T0 + MINUTE }))
        yield* store.complete(key, success("fp"), T0 + 5, 10 * MINUTE, "a")
        expect(yield* store.get(key, T0 + 6)).toEqual(
          Option.some({ _tag: "Completed", record: success("fp"), expiresAt: T0 + 5 + 10 * MINUTE })
        )
      }).pipe(Effect.provide(layer)))

    it.effect("once a claim or a record has expired, the key is free for any fingerprint (no mismatch)", () =>
      Effect.gen(function* () {
        const store = yield* IdempotencyStore
        const claimed = uniqueKey("expired-claim")
        yield* store.claim(claimed, "fp", T0, MINUTE, owner())
        expect(yield* store.claim(claimed, "other", T0 + MINUTE, MINUTE, owner())).toEqual({ _tag: "Claimed" })
        expect(yield* store.claim(claimed, "fp", T0 + MINUTE + 1, MINUTE, owner())).toEqual({ _tag: "Mismatch" })
        const completed = uniqueKey("expired-record")
        yield* store.claim(completed, "fp", T0, MINUTE, "a")
        yield* store.complete(completed, success("fp"), T0, MINUTE, "a")
        expect(yield* store.claim(completed, "other", T0 + MINUTE, MINUTE, owner())).toEqual({ _tag: "Claimed" })
      }).pipe(Effect.provide(layer)))

    it.effect("complete with a ttl of zero keeps nothing; complete after the claim's lease still stores the record", () =>
      Effect.gen(function* () {
        const store = yield* IdempotencyStore
        const zero = uniqueKey("zero-ttl")
        yield* store.claim(zero, "fp", T0, MINUTE, "a")
        expect(yield* store.complete(zero, success("fp"), T0 + 1, 0, "a")).toBe(true)
        expect(Option.isNone(yield* store.get(zero, T0 + 1))).toBe(true)
        expect(yield* store.claim(zero, "fp", T0 + 2, MINUTE, owner())).toEqual({ _tag: "Claimed" })
        const late = uniqueKey("late-complete")
        yield* store.claim(late, "fp", T0, MINUTE, "a")
        // Past its lease, the claim is still "a"'s while nobody else has claimed the key.
        expect(yield* store.complete(late, success("fp"), T0 + 2 * MINUTE, MINUTE, "a")).toBe(true)
        const claim = yield* store.claim(late, "fp", T0 + 2 * MINUTE + 1, MINUTE, owner())
        expect(claim).toEqual({ _tag: "Completed", record: success("fp") })
      }).pipe(Effect.provide(layer)))

    it.effect("get of an unknown or expired key is None", () =>
      Effect.gen(function* () {
        const store = yield* IdempotencyStore
        const key = uniqueKey("get")
        expect(Option.isNone(yield* store.get(key, T0))).toBe(true)
        yield* store.claim(key, "fp", T0, 1000, "a")
        yield* store.complete(key, success("fp"), T0, 1000, "a")
        expect(Option.isSome(yield* store.get(key, T0 + 999))).toBe(true)
        expect(Option.isNone(yield* store.get(key, T0 + 1000))).toBe(true)
      }).pipe(Effect.provide(layer)))

    it.effect("a release by a caller whose lease expired and whose key another owner claimed does nothing", () =>
      Effect.gen(function* () {
        const store = yield* IdempotencyStore
        const key = uniqueKey("stale-release")
        yield* store.claim(key, "fp", T0, MINUTE, "a")
        expect(yield* store.claim(key, "fp", T0 + MINUTE, MINUTE, "b")).toEqual({ _tag: "Claimed" })
        expect(yield* store.release(key, "a")).toBe(false)
        expect(yield* store.get(key, T0 + MINUTE + 1)).toEqual(
          Option.some({ _tag: "InFlight", fingerprint: "fp", expiresAt: T0 + 2 * MINUTE })
        )
        expect(yield* store.claim(key, "fp", T0 + MINUTE + 1, MINUTE, "c")).toEqual({ _tag: "InFlight" })
        // The new owner's own release works.
        expect(yield* store.release(key, "b")).toBe(true)
        expect(Option.isNone(yield* store.get(key, T0 + MINUTE + 2))).toBe(true)
        // Nothing to release any more, for anyone.
        expect(yield* store.release(key, "b")).toBe(false)
        expect(yield* store.release(uniqueKey("never-claimed"), "a")).toBe(false)
      }).pipe(Effect.provide(layer)))

    it.effect("a complete by a stale owner overwrites neither the new owner's claim nor its record", () =>
      Effect.gen(function* () {
        const store = yield* IdempotencyStore
        const key = uniqueKey("stale-complete")
        yield* store.claim(key, "fp", T0, MINUTE, "a")
        yield* store.claim(key, "fp", T0 + MINUTE, MINUTE, "b")
        // "a" settles late: the key is "b"'s claim now.
        expect(yield* store.complete(key, failure("fp"), T0 + MINUTE + 1, 10 * MINUTE, "a")).toBe(false)
        expect(yield* store.claim(key, "fp", T0 + MINUTE + 2, MINUTE, "c")).toEqual({ _tag: "InFlight" })
        // "b" settles its own claim.
        expect(yield* store.complete(key, success("fp"), T0 + MINUTE + 3, 10 * MINUTE, "b")).toBe(true)
        // Neither "a" nor "b" (its claim is settled) changes the record any more, by complete or by release.
        expect(yield* store.complete(key, failure("fp"), T0 + MINUTE + 4, 10 * MINUTE, "a")).toBe(false)
        expect(yield* store.complete(key, failure("fp"), T0 + MINUTE + 4, 10 * MINUTE, "b")).toBe(false)
        expect(yield* store.release(key, "a")).toBe(false)
        expect(yield* store.release(key, "b")).toBe(false)
        expect(yield* store.claim(key, "fp", T0 + MINUTE + 5, MINUTE, "c")).toEqual({
          _tag: "Completed",
          record: success("fp")
        })
      }).pipe(Effect.provide(layer)))

    it.effect("a stale owner of a completed-then-expired key cannot touch the next owner's claim", () =>
      Effect.gen(function* () {
        const store = yield* IdempotencyStore
        const key = uniqueKey("stale-after-record")
        yield* store.claim(key, "fp", T0, MINUTE, "a")
        yield* store.complete(key, success("fp"), T0, MINUTE, "a")
        expect(yield* store.claim(key, "other", T0 + MINUTE, MINUTE, "b")).toEqual({ _tag: "Claimed" })
        expect(yield* store.complete(key, success("fp"), T0 + MINUTE, MINUTE, "a")).toBe(false)
        expect(yield* store.release(key, "a")).toBe(false)
        expect(yield* store.get(key, T0 + MINUTE)).toEqual(
          Option.some({ _tag: "InFlight", fingerprint: "other", expiresAt: T0 + 2 * MINUTE })
        )
      }).pipe(Effect.provide(layer)))

    it.effect("discard drops a settled record only while the key still holds exactly that record", () =>
      Effect.gen(function* () {
        const store = yield* IdempotencyStore
        const key = uniqueKey("discard")
        // A record another version wrote: JSON the StoredRecord schema does not decode.
        const alien = { fingerprint: "fp", exit: { _tag: "Unknown", v: 2 } } as unknown as StoredRecord
        yield* store.claim(key, "fp", T0, MINUTE, "a")
        yield* store.complete(key, alien, T0, 10 * MINUTE, "a")
        const seen = yield* store.claim(key, "fp", T0 + 1, MINUTE, "b")
        expect(seen._tag).toBe("Completed")
        if (seen._tag !== "Completed") return
        // Another caller that saw it too dropped it, claimed the key and stored a good record meanwhile.
        expect(yield* store.discard(key, seen.record)).toBe(true)
        yield* store.claim(key, "fp", T0 + 2, MINUTE, "c")
        expect(yield* store.discard(key, seen.record)).toBe(false) // a claim is never discarded
        yield* store.complete(key, success("fp"), T0 + 3, 10 * MINUTE, "c")
        // The late discard of the stale record leaves the new one.
        expect(yield* store.discard(key, seen.record)).toBe(false)
        expect(yield* store.claim(key, "fp", T0 + 4, MINUTE, "d")).toEqual({ _tag: "Completed", record: success("fp") })
        expect(yield* store.discard(uniqueKey("discard-none"), seen.record)).toBe(false)
      }).pipe(Effect.provide(layer)))
  })
