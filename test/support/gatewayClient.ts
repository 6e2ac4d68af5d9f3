/**
 * One client process of the gateway replica tests: `node --import tsx test/support/gatewayClient.ts <json>`, where
 * the JSON names the replicas' base URLs, the virtual key, how many requests to send at once and their shape. It
 * sends them all concurrently through the official `openai` SDK (no SDK retries), spreading them over the replicas
 * in turn, and prints one JSON line: per request its status, the answer's id and usage.
 */
import OpenAI from "openai"

interface Plan {
  readonly baseURLs: ReadonlyArray<string>
  readonly apiKey: string
  readonly requests: number
  readonly model: string
  readonly maxTokens: number
  readonly offset: number
  readonly idempotencyKey?: string
}

export interface Outcome {
  readonly status: number
  readonly id?: string
  readonly replica: number
  readonly totalTokens?: number
  readonly code?: string | null
}

const plan = JSON.parse(process.argv[2] ?? "{}") as Plan
const clients = plan.baseURLs.map((baseURL) => new OpenAI({ baseURL, apiKey: plan.apiKey, maxRetries: 0, timeout: 60_000 }))

const send = async (i: number): Promise<Outcome> => {
  const replica = (plan.offset + i) % clients.length
  try {
    const completion = await clients[replica].chat.completions.create(
      {
        model: plan.model,
        // the same question under one Idempotency-Key; a question of its own otherwise (nothing to cache or share)
        messages: [{ role: "user", content: plan.idempotencyKey === undefined ? `Ticket #${plan.offset + i}: summarise it` : "Ticket #0: summarise it" }],
        max_tokens: plan.maxTokens
      },
      plan.idempotencyKey === undefined ? {} : { headers: { "Idempotency-Key": plan.idempotencyKey } }
    )
    return { status: 200, id: completion.id, replica, totalTokens: (completion.usage?.prompt_tokens ?? 0) + (completion.usage?.completion_tokens ?? 0) }
  } catch (error) {
    if (error instanceof OpenAI.APIError) return { status: error.status ?? 0, replica, code: error.code ?? null }
    return { status: 0, replica, code: error instanceof Error ? error.name : "unknown" }
  }
}

const outcomes = await Promise.all(Array.from({ length: plan.requests }, (_, i) => send(i)))
process.stdout.write(`${JSON.stringify(outcomes)}\n`)
