// One client process of the gateway replica tests: `node test/support/gatewayClient.mjs <json>` (plain JavaScript, so
// the process starts without a TypeScript loader), where the JSON names the replicas' base URLs, the virtual key, how
// many requests to send at once and their shape. It sends them all concurrently through the official `openai` SDK (no
// SDK retries), spreading them over the replicas in turn, and prints one JSON line: per request its status, the
// answer's id and usage, and the replica it went to.
import OpenAI from "openai"

const plan = JSON.parse(process.argv[2] ?? "{}")
const clients = plan.baseURLs.map((baseURL) => new OpenAI({ baseURL, apiKey: plan.apiKey, maxRetries: 0, timeout: 60_000 }))

const send = async (i) => {
  const replica = (plan.offset + i) % clients.length
  try {
    const completion = await clients[replica].chat.completions.create({
      model: plan.model,
      messages: [{ role: "user", content: `Ticket #${plan.offset + i}: summarise it` }],
      max_tokens: plan.maxTokens
    })
    const usage = completion.usage
    return { status: 200, id: completion.id, replica, totalTokens: (usage?.prompt_tokens ?? 0) + (usage?.completion_tokens ?? 0) }
  } catch (error) {
    if (error instanceof OpenAI.APIError) return { status: error.status ?? 0, replica, code: error.code ?? null }
    return { status: 0, replica, code: error instanceof Error ? error.name : "unknown" }
  }
}

const outcomes = await Promise.all(Array.from({ length: plan.requests }, (_, i) => send(i)))
process.stdout.write(`${JSON.stringify(outcomes)}\n`)
