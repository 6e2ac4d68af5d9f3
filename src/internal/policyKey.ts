import type { ChatRequest } from "../Llm.js"

/** How a per-key policy (breaker, bulkhead) picks its key from a request. */
export type Per = "model" | "provider" | ((request: ChatRequest) => string)

/** `metadata.provider`, else the prefix of an "openai/gpt-4o" style model name, else "default". */
export const providerOf = (request: ChatRequest): string => {
  const fromMetadata = request.metadata?.provider
  if (fromMetadata !== undefined && fromMetadata !== "") return fromMetadata
  const slash = request.model.indexOf("/")
  return slash > 0 ? request.model.slice(0, slash) : "default"
}

/** The key function of a `per` option (defaults to the model). */
export const keyFunction = (per: Per | undefined): ((request: ChatRequest) => string) =>
  per === undefined || per === "model" ? (request) => request.model : per === "provider" ? providerOf : per
