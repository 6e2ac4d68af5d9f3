/**
 * Virtual keys: the keys the gateway's clients authenticate with (`Authorization: Bearer <secret>`). A key is stored
 * by the SHA-256 of its secret only (the secret is shown once, when it is created), and maps to a tenant with its
 * own limits. Upstream provider keys never leave the gateway.
 *
 * This module holds the record, the store Tag and authentication; the stores are `keysMemory.ts` (a config file, one
 * process) and `../redis/gatewayKeys.ts` (shared by every replica).
 */
import { Context, Data, Effect, Option } from "effect"
import type { Duration } from "effect"
import { sha256Hex } from "../hash.js"

/** A budget of one key: tokens and/or USD per period, as `TokenBudget.policy` takes them. */
export interface KeyBudget {
  readonly tokens?: number | undefined
  readonly usd?: number | undefined
  /** "minute" | "hour" | "day" | "month" (UTC), or `{ rolling: "6 hours" }`. */
  readonly period: "minute" | "hour" | "day" | "month" | { readonly rolling: Duration.DurationInput }
}

/** What one virtual key may do. Every limit is optional: none means the route's own limits only. */
export interface KeyRecord {
  /** A short public id (`key_…`): shown in lists, logs and metric labels; never the secret. */
  readonly id: string
  /** The tenant (team) the key belongs to: scopes budgets, cache and idempotency records. */
  readonly tenant: string
  /** A human label. */
  readonly name?: string | undefined
  /** SHA-256 hex of the secret. */
  readonly hash: string
  /** Epoch milliseconds. */
  readonly createdAt: number
  /** Epoch milliseconds after which the key is refused; none = no expiry. */
  readonly expiresAt?: number | undefined
  /** Epoch milliseconds at which it was revoked. */
  readonly revokedAt?: number | undefined
  /** The models (gateway model names) the key may call; none = every model. */
  readonly models?: ReadonlyArray<string> | undefined
  /** Budgets of the key across every replica, outermost first. */
  readonly budgets?: ReadonlyArray<KeyBudget> | undefined
  /** Requests and tokens per minute of the key across every replica. */
  readonly rateLimit?: { readonly rpm?: number | undefined; readonly tpm?: number | undefined } | undefined
}

/** The key store could not be read or written (Redis down, say). */
export class KeyStoreError extends Data.TaggedError("KeyStoreError")<{ readonly cause: unknown }> {}

/** Why a request's key was refused. */
export class KeyRefused extends Data.TaggedError("KeyRefused")<{
  readonly reason: "missing" | "unknown" | "revoked" | "expired"
  /** The key's public id when it is known. */
  readonly keyId?: string | undefined
}> {}

/** Where virtual keys are kept: each method one atomic step. */
export interface KeyStoreService {
  /** The record whose secret hashes to `hash`. */
  readonly get: (hash: string) => Effect.Effect<Option.Option<KeyRecord>, KeyStoreError>
  /** Adds a record (refuses an id or hash already present with `false`). */
  readonly put: (record: KeyRecord) => Effect.Effect<boolean, KeyStoreError>
  /** Every record, revoked ones included, oldest first. */
  readonly list: Effect.Effect<ReadonlyArray<KeyRecord>, KeyStoreError>
  /** Marks the key with this id revoked at `now`; false when there is no such key. */
  readonly revoke: (id: string, now: number) => Effect.Effect<boolean, KeyStoreError>
}

/** The gateway's key store. */
export class KeyStore extends Context.Tag("effect-llm-resilience/Gateway/KeyStore")<KeyStore, KeyStoreService>() {}

/** The SHA-256 hex of a secret, as stored. */
export const hashSecret = (secret: string): string => sha256Hex(secret)

/** The bearer token of an `Authorization` header value, if it holds one. */
export const bearer = (authorization: string | undefined): Option.Option<string> => {
  if (authorization === undefined) return Option.none()
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization)
  return match === null ? Option.none() : Option.some(match[1])
}

/**
 * The record of the key a request presents, or why it is refused. `now` is epoch milliseconds from the Effect clock.
 */
export const authenticate = (
  authorization: string | undefined,
  now: number
): Effect.Effect<KeyRecord, KeyRefused | KeyStoreError, KeyStore> =>
  Option.match(bearer(authorization), {
    onNone: () => Effect.fail(new KeyRefused({ reason: "missing" })),
    onSome: (secret) =>
      Effect.flatMap(KeyStore, (store) =>
        Effect.flatMap(store.get(hashSecret(secret)), (found) => {
          if (Option.isNone(found)) return Effect.fail(new KeyRefused({ reason: "unknown" }))
          const record = found.value
          if (record.revokedAt !== undefined && record.revokedAt <= now) {
            return Effect.fail(new KeyRefused({ reason: "revoked", keyId: record.id }))
          }
          if (record.expiresAt !== undefined && record.expiresAt <= now) {
            return Effect.fail(new KeyRefused({ reason: "expired", keyId: record.id }))
          }
          return Effect.succeed(record)
        }))
  })
