import { Layer } from "effect"
import * as ResponseCache from "../../src/ResponseCache.js"
import { responseCacheStoreContract } from "./ResponseCacheStore.contract.js"

responseCacheStoreContract("memory", ResponseCache.layerStoreMemory, {
  capacity: 3,
  layer: ResponseCache.layerStoreMemoryWith({ capacity: 3 }).pipe(Layer.orDie)
})
