/**
 * A validation worker of the pool benchmark: it receives the signed transfers once, rebuilds their
 * genesis state, then validates the index ranges it is sent (index modulo the count) and replies with
 * how many it validated. Loaded through `validateWorker.mjs` (workers do not inherit tsx's loader).
 */
import { Either } from "effect"
import { parentPort } from "node:worker_threads"
import * as State from "../src/State.js"
import type * as Transaction from "../src/Transaction.js"
import { genesis, params } from "./fixture.js"

/** What the pool sends. */
export type Request =
  | { readonly _tag: "Load"; readonly transactions: ReadonlyArray<Transaction.Transaction> }
  | { readonly _tag: "Validate"; readonly start: number; readonly end: number }

const port = parentPort
if (port === null) throw new Error("validateWorker: not started as a worker")

let loaded: { readonly state: State.State; readonly transactions: ReadonlyArray<Transaction.Transaction> } | undefined

port.on("message", (request: Request) => {
  if (request._tag === "Load") {
    loaded = { state: genesis(request.transactions.length), transactions: request.transactions }
    port.postMessage(0)
    return
  }
  const { state, transactions } = loaded!
  for (let index = request.start; index < request.end; index++) {
    if (Either.isLeft(State.validate(state, transactions[index % transactions.length]!, params))) throw new Error("bench: a transaction did not validate")
  }
  port.postMessage(request.end - request.start)
})
