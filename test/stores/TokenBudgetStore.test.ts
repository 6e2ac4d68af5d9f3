import * as TokenBudget from "../../src/TokenBudget.js"
import { tokenBudgetStoreContract } from "./TokenBudgetStore.contract.js"

tokenBudgetStoreContract("memory", TokenBudget.layerStoreMemory)
