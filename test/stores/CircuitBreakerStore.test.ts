import * as CircuitBreaker from "../../src/CircuitBreaker.js"
import { circuitBreakerStoreContract } from "./CircuitBreakerStore.contract.js"

circuitBreakerStoreContract("memory", CircuitBreaker.layerStoreMemory)
