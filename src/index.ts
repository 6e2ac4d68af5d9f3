/**
 * effect-llm-resilience: reliable, cost-controlled LLM calls for Effect.
 *
 * Drivers live behind subpaths so the core never loads them: `effect-llm-resilience/OpenAi` (the `openai`
 * SDK) and `effect-llm-resilience/Redis` (`ioredis`).
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as InvalidOptions from "./InvalidOptions.js"
/** @since 0.1.0 */
export * as Llm from "./Llm.js"
/** @since 0.1.0 */
export * as LlmClient from "./LlmClient.js"
/** @since 0.1.0 */
export * as LlmError from "./LlmError.js"
/** @since 0.1.0 */
export * as LlmMetrics from "./LlmMetrics.js"
/** @since 0.1.0 */
export * as Pricing from "./Pricing.js"
/** @since 0.1.0 */
export * as FakeLlm from "./FakeLlm.js"
/** @since 0.1.0 */
export * as Tokenizer from "./Tokenizer.js"
/** @since 0.1.0 */
export * as PromptTrim from "./PromptTrim.js"
/** @since 0.1.0 */
export * as TokenBudget from "./TokenBudget.js"
/** @since 0.1.0 */
export * as RateLimit from "./RateLimit.js"
/** @since 0.1.0 */
export * as ResponseCache from "./ResponseCache.js"
/** @since 0.1.0 */
export * as Idempotency from "./Idempotency.js"
/** @since 0.1.0 */
export * as ChaosServer from "./ChaosServer.js"
/** @since 0.1.0 */
export * as Retry from "./Retry.js"
/** @since 0.1.0 */
export * as Timeout from "./Timeout.js"
/** @since 0.1.0 */
export * as Fallback from "./Fallback.js"
/** @since 0.1.0 */
export * as CircuitBreaker from "./CircuitBreaker.js"
/** @since 0.1.0 */
export * as Bulkhead from "./Bulkhead.js"
/** @since 0.1.0 */
export * as Router from "./Router.js"
/** @since 0.1.0 */
export * as Hedge from "./Hedge.js"
/** @since 0.1.0 */
export * as Pipeline from "./Pipeline.js"
/** @since 0.1.0 */
export * as ModelTier from "./ModelTier.js"
/** @since 0.1.0 */
export * as Batching from "./Batching.js"
/** @since 0.1.0 */
export * as Embeddings from "./Embeddings.js"
