/**
 * `npx tsx packages/ledger/bench/validate.ts [--json] [--reps N] [--count N]`: transactions validated
 * per second (full `State.validate` of signed transfers: decode-free structure checks, chain, nonce,
 * key, state, one ML-DSA-65 verify) against raw `ml_dsa65.verify` per second over the same signatures,
 * in the same run, reps interleaved; medians and their ratio (target ≥ 0.9). Progress goes to stderr.
 */
import { ml_dsa65 } from "@noble/post-quantum/ml-dsa.js"
import { Either } from "effect"
import * as Account from "../src/Account.js"
import * as Amount from "../src/Amount.js"
import * as Id from "../src/Id.js"
import * as Params from "../src/Params.js"
import * as State from "../src/State.js"
import * as Transaction from "../src/Transaction.js"

const usage = "usage: npx tsx packages/ledger/bench/validate.ts [--json] [--reps N] [--count N]"

const parseOptions = (args: ReadonlyArray<string>) => {
  let json = false
  let reps = 5
  let count = 200
  for (let index = 0; index < args.length; index++) {
    const arg = args[index]
    const number = () => {
      const value = Number(args[++index])
      if (!Number.isSafeInteger(value) || value < 1) throw new Error(`${arg} needs a positive integer\n${usage}`)
      return value
    }
    if (arg === "--json") json = true
    else if (arg === "--reps") reps = number()
    else if (arg === "--count") count = number()
    else throw new Error(`unknown option ${arg}\n${usage}`)
  }
  return { json, reps, count }
}

const progress = (text: string) => process.stderr.write(`${text}\n`)

/** `count` signed transfers, each spending its own genesis coin, all valid against one state. */
const fixture = (count: number) => {
  const params = Either.getOrThrow(Params.make({ chainId: "weft-bench" }))
  const alice = Account.generate(new Uint8Array(32).fill(1))
  const bob = Account.generate(new Uint8Array(32).fill(2))
  const coin = (10n * params.unitsPerToken) as Amount.Amount
  const { state } = Either.getOrThrow(State.genesis(params, Array.from({ length: count }, () => ({ owner: alice.id, amount: coin }))))
  const transactions = Array.from({ length: count }, (_, index) => {
    const body: Transaction.Body = {
      _tag: "Transfer",
      chain: params.chainId,
      from: Id.toBytes(alice.id),
      nonce: 1,
      inputs: [Id.toBytes(Id.genesis(params.chainId, index))],
      amount: coin - 1n,
      change: 1n,
      recipient: Id.toBytes(bob.id)
    }
    return Either.getOrThrow(Transaction.sign(body, alice))
  })
  const raw = transactions.map((transaction) => ({
    signature: transaction.auth.signature,
    message: Transaction.signingMessage(Either.getOrThrow(Transaction.id(transaction.body))),
    publicKey: alice.publicKey
  }))
  return { params, state, transactions, raw }
}

type Fixture = ReturnType<typeof fixture>

const timed = (count: number, run: () => void): number => {
  const started = performance.now()
  run()
  return count / ((performance.now() - started) / 1000)
}

const validateAll = ({ params, state, transactions }: Fixture) => () => {
  for (const transaction of transactions) {
    if (Either.isLeft(State.validate(state, transaction, params))) throw new Error("bench: a transaction did not validate")
  }
}

const verifyAll = ({ raw }: Fixture) => () => {
  for (const { signature, message, publicKey } of raw) {
    if (!ml_dsa65.verify(signature, message, publicKey)) throw new Error("bench: a signature did not verify")
  }
}

const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

const main = () => {
  const options = parseOptions(process.argv.slice(2))
  progress(`ledger bench: signing ${options.count} transfers…`)
  const data = fixture(options.count)
  verifyAll(data)() // warm-up, both paths
  validateAll(data)()
  const validated: Array<number> = []
  const verified: Array<number> = []
  for (let rep = 0; rep < options.reps; rep++) {
    // Interleaved, alternating order, so drift in machine load hits both sides alike.
    const pair = rep % 2 === 0
      ? [timed(options.count, verifyAll(data)), timed(options.count, validateAll(data))]
      : [timed(options.count, validateAll(data)), timed(options.count, verifyAll(data))].reverse()
    verified.push(pair[0]!)
    validated.push(pair[1]!)
    progress(`  rep ${rep + 1}/${options.reps}: verify ${pair[0]!.toFixed(0)}/s, validate ${pair[1]!.toFixed(0)}/s`)
  }
  const value = median(validated)
  const baseline = median(verified)
  const ratio = value / baseline
  const target = 0.9
  if (options.json) {
    console.log(JSON.stringify({ bench: "ledger.validate", metric: "transactions validated per second", value, unit: "tx/s", baseline, ratio, target }))
  } else {
    console.log("| bench | validated tx/s | raw ML-DSA-65 verify/s | ratio | target |")
    console.log("|---|---|---|---|---|")
    console.log(`| ledger.validate (transfer, 1 input) | ${value.toFixed(0)} | ${baseline.toFixed(0)} | ${ratio.toFixed(3)} | ≥ ${target} |`)
  }
}

main()
