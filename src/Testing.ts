/**
 * The test doubles in one import: `FakeLlm` (a scripted provider) and `ChaosServer` (a fault-injecting
 * OpenAI-compatible HTTP server on loopback). Both are also in the root barrel and have subpaths of their own
 * (`effect-llm-resilience/FakeLlm`, `effect-llm-resilience/ChaosServer`).
 *
 * @since 0.1.0
 */

/**
 * The fault-injecting OpenAI-compatible server.
 *
 * @example
 * ```ts
 * import { ChaosServer } from "effect-llm-resilience/Testing"
 * const Chaos = ChaosServer.layer({ seed: 7, faults: { errors: [{ status: 503, rate: 0.2 }] } })
 * ```
 * @since 0.1.0
 */
export * as ChaosServer from "./ChaosServer.js"

/**
 * The scripted deterministic provider.
 *
 * @example
 * ```ts
 * import { FakeLlm } from "effect-llm-resilience/Testing"
 * const Fake = FakeLlm.layer(FakeLlm.reply("hello"))
 * ```
 * @since 0.1.0
 */
export * as FakeLlm from "./FakeLlm.js"
