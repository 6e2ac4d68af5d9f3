/**
 * Batching: classify 30 support tickets in 2 batched provider calls (plus one re-send) instead of 30, with the same
 * instruction. The fake model answers the JSON contract (shuffled, and it skips one ticket once: that ticket alone is
 * re-sent). Prints the provider calls and input tokens of both ways. Run: `npx tsx examples/batching.ts`
 */
import { Effect, Schema } from "effect"
import { Batching, FakeLlm, Llm, LlmClient, LlmMetrics } from "../src/index.js"

const Ticket = Schema.Struct({ subject: Schema.String, body: Schema.String })
type Ticket = typeof Ticket.Type
const Category = Schema.Literal("billing", "bug", "account", "feature-request", "other")
const Classification = Schema.Struct({ category: Category, urgent: Schema.Boolean })

const instruction = `You triage customer support tickets for a SaaS invoicing product.
Categories:
- billing: charges, refunds, invoices, payment methods, plan prices, VAT and receipts.
- bug: something in the product is broken, crashes, shows wrong data, or an error message appears.
- account: sign-in, passwords, two-factor authentication, user seats, ownership transfer, deleting an account.
- feature-request: the customer asks for something the product does not do yet.
- other: anything else, including praise, spam and questions about the company.
A ticket is urgent when the customer cannot work, is charged wrongly right now, or mentions a legal deadline.
Judge each ticket only by its subject and body; do not guess beyond what it says.`

const subjects: ReadonlyArray<[string, string]> = [
  ["Charged twice this month", "My card shows two charges for the Pro plan on the 3rd. Please refund one."],
  ["Export to CSV crashes", "Clicking Export on the invoices page shows an error and the tab freezes."],
  ["Cannot sign in", "The 2FA code is always rejected since I changed phones."],
  ["Dark mode please", "Would love a dark theme for late-night invoicing."],
  ["VAT missing on receipt", "Our receipts lack the VAT number, our accountant needs it before Friday's filing."],
  ["Totals are wrong", "The dashboard total does not match the sum of my invoices."],
  ["Add a seat", "How do I add my colleague as a user to our workspace?"],
  ["Great product", "Just wanted to say thanks, the new editor is lovely."],
  ["Recurring invoices", "Could you support invoices that repeat every quarter?"],
  ["Refund for annual plan", "We downgraded the day after renewing, can we get a prorated refund?"]
]
const tickets: ReadonlyArray<Ticket> = Array.from({ length: 30 }, (_, i) => {
  const [subject, body] = subjects[i % subjects.length]
  return { subject: `${subject} (#${1000 + i})`, body }
})

/** The fake model's judgement of one ticket (what a real model would answer). */
const judge = (ticket: Ticket): typeof Classification.Type => {
  const text = `${ticket.subject} ${ticket.body}`.toLowerCase()
  const category = /refund|charge|vat|receipt|invoice.*plan/.test(text)
    ? "billing"
    : /crash|error|wrong|does not match/.test(text)
    ? "bug"
    : /sign in|2fa|seat|user/.test(text)
    ? "account"
    : /please|could you|support/.test(text)
    ? "feature-request"
    : "other"
  return { category, urgent: /charged twice|friday|crash|cannot/.test(text) }
}

/** A fake model that answers the batch contract: shuffled, and it skips ticket #1017 the first time it sees it. */
let skipped = false
const batchModel: FakeLlm.Script = ({ request }) => {
  const items: ReadonlyArray<{ id: number; item: Ticket }> = JSON.parse(request.messages[1].content)
  const results = items
    .filter(({ item }) => {
      if (skipped || items.length === 1 || !item.subject.includes("#1017")) return true
      skipped = true
      return false
    })
    .map(({ id, item }) => ({ id, result: judge(item) }))
    .reverse()
  return FakeLlm.delay("300 millis", FakeLlm.reply(JSON.stringify({ results })))
}

/** The same fake answering one ticket a call. */
const singleModel: FakeLlm.Script = ({ request }) =>
  FakeLlm.delay("300 millis", FakeLlm.reply(JSON.stringify(judge(JSON.parse(request.messages[1].content)))))

const model = "gpt-4o-mini"

const batched = Effect.gen(function* () {
  const classify = yield* Batching.make({
    model,
    instruction,
    item: Ticket,
    result: Classification,
    maxBatchSize: 20,
    maxTokensPerItem: 20,
    temperature: 0,
    retryMissingIndividually: true
  })
  return yield* Effect.forEach(tickets, classify, { concurrency: "unbounded" })
}).pipe(Effect.provide(FakeLlm.layer(batchModel)))

const oneByOne = Effect.forEach(tickets, (ticket) =>
  Effect.map(
    LlmClient.complete(new Llm.ChatRequest({
      model,
      messages: [{ role: "system", content: instruction }, { role: "user", content: JSON.stringify(ticket) }],
      responseFormat: { type: "json_object" },
      maxTokens: 20,
      temperature: 0
    })),
    (response) => Schema.decodeUnknownSync(Schema.parseJson(Classification))(response.content)
  ), { concurrency: "unbounded" }).pipe(Effect.provide(FakeLlm.layer(singleModel)))

/** Runs `effect` and returns its value with the provider calls and tokens it cost (from LlmMetrics). */
const measured = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function* () {
    const before = yield* LlmMetrics.snapshot
    const started = performance.now()
    const value = yield* effect
    const after = yield* LlmMetrics.snapshot
    return {
      value,
      calls: after.requests - before.requests,
      inputTokens: after.inputTokens - before.inputTokens,
      outputTokens: after.outputTokens - before.outputTokens,
      costUsd: after.costUsd - before.costUsd,
      ms: Math.round(performance.now() - started)
    }
  })

const program = Effect.gen(function* () {
  const single = yield* measured(oneByOne)
  const batch = yield* measured(batched)

  const same = single.value.every((c, i) => c.category === batch.value[i].category && c.urgent === batch.value[i].urgent)
  console.log(`30 tickets classified; batched answers equal the one-by-one answers: ${same}`)
  const counts = batch.value.reduce<Record<string, number>>((acc, c) => ({ ...acc, [c.category]: (acc[c.category] ?? 0) + 1 }), {})
  console.log("categories:", counts, `urgent: ${batch.value.filter((c) => c.urgent).length}`)
  console.log("ticket #1017 was skipped by the model in its batch and re-sent alone:", batch.value[17])
  console.log()
  const row = (name: string, m: typeof single) =>
    `${name.padEnd(22)} ${String(m.calls).padStart(5)} ${String(m.inputTokens).padStart(13)} ${String(m.outputTokens).padStart(14)} ${`$${m.costUsd.toFixed(6)}`.padStart(11)}`
  console.log(`${"".padEnd(22)} calls  input tokens  output tokens        cost`)
  console.log(row("one call per ticket", single))
  console.log(row("batched (20 a call)", batch))
  console.log(
    `\nbatching sent ${(single.inputTokens / batch.inputTokens).toFixed(1)}× fewer input tokens: the ` +
      `${Math.ceil(instruction.length / 4)}-token instruction is sent once a batch, not once a ticket ` +
      `(the re-send of #1017 carries it once more).`
  )
})

Effect.runPromise(program)
