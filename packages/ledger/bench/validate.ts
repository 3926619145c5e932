/**
 * Cases of the ledger benchmarks (`ledger.ts`): transaction validation.
 *
 * - `ledger validate`: full `State.validate` of signed transfers (structure, chain, nonce, key, state,
 *   one ML-DSA-65 verify) against raw `ml_dsa65.verify` over the same signatures (target ≥ 0.9: the
 *   ledger adds little to the signature check).
 * - `ledger validate, 2 workers`: the same validations split across a pool of two `worker_threads`
 *   (both cores) against one core, the main thread (target ≥ 1.7).
 */
import { ml_dsa65 } from "@noble/post-quantum/ml-dsa.js"
import { Effect, Either, type Scope } from "effect"
import { Worker } from "node:worker_threads"
import type { Case } from "../../core/bench/harness.js"
import * as State from "../src/State.js"
import * as Transaction from "../src/Transaction.js"
import { alice, genesis, params, transfers } from "./fixture.js"
import type { Request } from "./validateWorker.js"

/** Workers in the pool: the machines these run on have two cores. */
export const poolWorkers = 2

/** The signed transfers, their genesis state, and the raw (signature, message, key) triples. */
const fixture = (count: number) => {
  const transactions = transfers(count)
  const raw = transactions.map((transaction) => ({
    signature: transaction.auth.signature,
    message: Transaction.signingMessage(Either.getOrThrow(Transaction.id(transaction.body))),
    publicKey: alice.publicKey
  }))
  return { state: genesis(count), transactions, raw }
}

type Fixture = ReturnType<typeof fixture>

const validateRange = ({ state, transactions }: Fixture, ops: number) => {
  for (let index = 0; index < ops; index++) {
    if (Either.isLeft(State.validate(state, transactions[index % transactions.length]!, params))) throw new Error("bench: a transaction did not validate")
  }
}

const verifyRange = ({ raw }: Fixture, ops: number) => {
  for (let index = 0; index < ops; index++) {
    const { signature, message, publicKey } = raw[index % raw.length]!
    if (!ml_dsa65.verify(signature, message, publicKey)) throw new Error("bench: a signature did not verify")
  }
}

/** One worker: `ask` sends a request and resolves with the reply; a worker error fails it. */
const startWorker = Effect.acquireRelease(
  Effect.sync(() => new Worker(new URL("./validateWorker.mjs", import.meta.url))),
  (worker) => Effect.promise(() => worker.terminate())
).pipe(Effect.map((worker) => ({
  ask: (request: Request) =>
    Effect.async<number, Error>((resume) => {
      const onMessage = (count: number) => done(Effect.succeed(count))
      const onError = (error: Error) => done(Effect.fail(error))
      const done = (result: Effect.Effect<number, Error>) => {
        worker.off("message", onMessage).off("error", onError)
        resume(result)
      }
      worker.on("message", onMessage).on("error", onError)
      worker.postMessage(request)
    })
})))

/** A pool of `poolWorkers` workers holding the transfers; `run(ops)` splits `ops` validations evenly across them. */
const pool = (transactions: ReadonlyArray<Transaction.Transaction>) =>
  Effect.gen(function*() {
    const workers = yield* Effect.all(Array.from({ length: poolWorkers }, () => startWorker))
    yield* Effect.all(workers.map((worker) => worker.ask({ _tag: "Load", transactions })), { concurrency: "unbounded" })
    return (ops: number) =>
      Effect.all(workers.map((worker, at) =>
        worker.ask({ _tag: "Validate", start: Math.floor((ops * at) / workers.length), end: Math.floor((ops * (at + 1)) / workers.length) })
      ), { concurrency: "unbounded" }).pipe(Effect.map((counts) => {
        if (counts.reduce((sum, count) => sum + count, 0) !== ops) throw new Error("bench: the pool validated a wrong count")
      }))
  })

/** The validation cases; the pool's workers stop when the scope closes. */
export const cases = (quick: boolean): Effect.Effect<ReadonlyArray<Case>, Error, Scope.Scope> =>
  Effect.gen(function*() {
    const data = fixture(quick ? 48 : 200)
    const runPool = yield* pool(data.transactions)
    const ops = quick ? 48 : 400
    const single: Case = {
      bench: "ledger validate (transfer, 1 input)",
      metric: "ledger_validate",
      unit: "tx/s",
      ops,
      subject: { name: "State.validate", run: (count) => Effect.sync(() => validateRange(data, count)) },
      baseline: { name: "ml_dsa65.verify", run: (count) => Effect.sync(() => verifyRange(data, count)) },
      target: 0.9
    }
    const parallel: Case = {
      bench: `ledger validate, ${poolWorkers} workers`,
      metric: "ledger_validate_pool",
      unit: "tx/s",
      ops: ops * 2,
      subject: { name: `${poolWorkers}-worker pool`, run: runPool },
      baseline: { name: "State.validate, 1 core", run: (count) => Effect.sync(() => validateRange(data, count)) },
      target: 1.7
    }
    return [single, parallel]
  })
