/** opossum is CommonJS: re-exported here so the benchmarks can import it as ESM. */
import { createRequire } from "node:module"
import type OpossumType from "opossum"

const require = createRequire(import.meta.url)
export const CircuitBreaker: typeof OpossumType = require("opossum")
