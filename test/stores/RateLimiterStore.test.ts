import * as RateLimit from "../../src/RateLimit.js"
import { rateLimiterStoreContract } from "./RateLimiterStore.contract.js"

rateLimiterStoreContract("memory", RateLimit.layerStoreMemory)
