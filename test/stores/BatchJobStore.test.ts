import * as BatchJob from "../../src/BatchJob.js"
import { batchJobStoreContract } from "./BatchJobStore.contract.js"

batchJobStoreContract("memory", BatchJob.layerStoreMemory)
