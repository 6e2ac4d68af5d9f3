/**
 * Tokenizer throughput (MB/s) and trimming a ~1 MB conversation, side by side with a naive trimmer that re-counts
 * the whole conversation after every dropped message. `npx tsx bench/trim.bench.ts`
 */
import { Effect } from "effect"
import { countTokens as rawO200k } from "gpt-tokenizer/encoding/o200k_base"
import type { ChatMessage } from "../src/Llm.js"
import * as PromptTrim from "../src/PromptTrim.js"
import * as Tokenizer from "../src/Tokenizer.js"

// Deterministic pseudo-random prose (a fixed LCG), so every run tokenizes the same text.
let seed = 42
const next = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648
const vocabulary = (
  "the of and to in is that for it as was with be by on not he this are or his from at which but have an they " +
  "you were her she there would their we him been has when who will more no if out so said what up its about " +
  "into than them can only other new some could time these two may then do first any my now such like our over " +
  "retry timeout circuit breaker budget token window context model latency fallback cache stream chunk provider"
).split(" ")
// A quarter of the words are random letters, so the tokenizer's merge cache does not flatter the numbers.
const randomWord = () => {
  let word = ""
  const length = 3 + Math.floor(next() * 7)
  for (let i = 0; i < length; i++) word += String.fromCharCode(97 + Math.floor(next() * 26))
  return word
}
const sentence = (words: number) => {
  const out: Array<string> = []
  for (let i = 0; i < words; i++) {
    const roll = next()
    if (roll < 0.25) out.push(randomWord())
    else if (roll < 0.3) out.push(String(Math.floor(next() * 100_000)))
    else out.push(vocabulary[Math.floor(next() * vocabulary.length)])
  }
  return out.join(" ") + "."
}

const conversation = (bytes: number): Array<ChatMessage> => {
  const messages: Array<ChatMessage> = [{ role: "system", content: "You are a helpful assistant. " + sentence(40) }]
  let size = messages[0].content.length
  let turn = 0
  while (size < bytes) {
    const user = sentence(20 + Math.floor(next() * 60))
    const answer = sentence(40 + Math.floor(next() * 120))
    messages.push({ role: "user", content: user }, { role: "assistant", content: answer })
    size += user.length + answer.length
    if (++turn % 10 === 0) {
      const id = `call_${turn}`
      const result = sentence(80)
      messages.push(
        { role: "assistant", content: "", toolCalls: [{ id, name: "search", arguments: `{"q":"${sentence(4)}"}` }] },
        { role: "tool", content: result, toolCallId: id }
      )
      size += result.length
    }
  }
  messages.push({ role: "user", content: "So, what should we do next?" })
  return messages
}

const median = (samples: Array<number>) => samples.sort((a, b) => a - b)[Math.floor(samples.length / 2)]
const time = (fn: () => void, runs = 5): number => {
  fn()
  const samples: Array<number> = []
  for (let i = 0; i < runs; i++) {
    const start = performance.now()
    fn()
    samples.push(performance.now() - start)
  }
  return median(samples)
}

let nextUnseen = 0

const run = <A, E>(effect: Effect.Effect<A, E, Tokenizer.Tokenizer>, layer = Tokenizer.layer): A =>
  Effect.runSync(Effect.provide(effect, layer))

const main = async () => {
  await Effect.runPromise(Effect.all([Tokenizer.preload("o200k_base"), Tokenizer.preload("cl100k_base")]))
  const rows: Array<[string, string, string, string]> = []
  const MB = 1024 * 1024

  const big = conversation(MB)
  const text = big.map((m) => m.content).join("\n")
  const megabytes = Buffer.byteLength(text) / MB
  const add = (name: string, size: number, ms: number, extra = "") =>
    rows.push([name, `${(size / MB).toFixed(2)} MB`, ms.toFixed(1), extra || `${(size / MB / (ms / 1000)).toFixed(2)} MB/s`])

  // Warm the JIT and both merge caches before the first measurement.
  for (let i = 0; i < 3; i++) {
    rawO200k(text)
    run(Tokenizer.count(text, "gpt-4"))
  }
  add("gpt-tokenizer countTokens (o200k)", megabytes * MB, time(() => rawO200k(text)))
  add("Tokenizer.count o200k (gpt-4o)", megabytes * MB, time(() => run(Tokenizer.count(text, "gpt-4o"))))
  add("Tokenizer.count cl100k (gpt-4)", megabytes * MB, time(() => run(Tokenizer.count(text, "gpt-4"))))
  add(
    "Tokenizer.count approximate",
    megabytes * MB,
    time(() => run(Tokenizer.count(text, "x"), Tokenizer.layerApproximate))
  )
  // Texts of 256 characters or more are remembered once counted (a conversation sends its earlier turns again on
  // every call): the first count of a conversation is measured on texts never seen before, then a count again.
  const unseen = Array.from({ length: 6 }, (_, round) =>
    big.map((m) => ({ ...m, content: `${round}:${nextUnseen++} ${m.content}` })))
  let unseenRun = 0
  add(
    "Tokenizer.countMessages o200k, texts never seen",
    megabytes * MB,
    time(() => run(Tokenizer.countMessages(unseen[unseenRun++], "gpt-4o")))
  )
  add(
    "Tokenizer.countMessages o200k, counted before",
    megabytes * MB,
    time(() => run(Tokenizer.countMessages(big, "gpt-4o")))
  )

  const total = run(Tokenizer.countMessages(big, "gpt-4o"))
  for (const strategy of ["keep-system-and-recent", "keep-recent", "middle-out"] as const) {
    let dropped = 0
    const ms = time(() => {
      const result = run(PromptTrim.trim(big, { maxInputTokens: 100_000, model: "gpt-4o", strategy }))
      dropped = result.droppedMessages
    })
    add(`trim to 100k tokens, ${strategy}`, megabytes * MB, ms, `${dropped} of ${big.length} msgs dropped`)
  }
  add(
    "trim to 100k tokens, approximate",
    megabytes * MB,
    time(() => run(PromptTrim.trim(big, { maxInputTokens: 100_000, model: "x" }), Tokenizer.layerApproximate)),
    `${total} tokens in (exact)`
  )

  // Scaling: linear in the size of the conversation.
  for (const size of [MB / 4, MB / 2, MB, 2 * MB]) {
    const messages = conversation(size)
    const bytes = messages.reduce((n, m) => n + m.content.length, 0)
    add("trim (scaling)", bytes, time(() => run(PromptTrim.trim(messages, { maxInputTokens: 20_000, model: "gpt-4o" })), 3), "")
  }

  // The naive way: drop the oldest message and re-count everything until it fits (quadratic).
  for (const size of [MB / 16, MB / 8]) {
    const messages = conversation(size)
    const bytes = messages.reduce((n, m) => n + m.content.length, 0)
    const naive = () => {
      let kept = messages.slice()
      while (run(Tokenizer.countMessages(kept, "gpt-4o")) > 2_000) kept = [kept[0], ...kept.slice(2)]
    }
    add("naive re-count loop (for contrast)", bytes, time(naive, 1), "")
    add("PromptTrim.trim, same input", bytes, time(() => run(PromptTrim.trim(messages, { maxInputTokens: 2_000, model: "gpt-4o" }))), "")
  }

  const widths = [50, 9, 10, 28]
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((c, i) => (i === 0 || i === 3 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ")
  console.log("\nTokenizer throughput and prompt trimming (median of 5 runs, ms)")
  console.log(line(["", "input", "ms", "throughput / note"]))
  for (const row of rows) console.log(line(row))
}

main()
