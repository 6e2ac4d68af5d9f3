import * as Router from "../../src/Router.js"
import { routerStoreContract } from "./RouterStore.contract.js"

routerStoreContract("memory", Router.layerStoreMemory)
