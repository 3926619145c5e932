/**
 * Two accounts chat over a `weft dev` network with `weft msg`: alice (the dev account) and bob (a new
 * account). Both register their lattice keys on the chain (`weft token keys register`, no balance
 * needed), alice writes to bob through one node, bob reads and answers through the other, alice reads
 * the answer. The `weft` commands run in this process (the same command tree as the executable).
 */
import { NodeContext } from "@effect/platform-node"
import { Cli } from "@weft/cli"
import { Account } from "@weft/ledger"
import { Console, Effect, Schedule } from "effect"
import * as Fs from "node:fs"

/** Who chats where. */
export interface Setup {
  /** The node alice talks to (a data directory or control socket). */
  readonly aliceNode: string
  readonly aliceKey: string
  /** The node bob talks to (another node of the network, so the messages cross it). */
  readonly bobNode: string
  /** Bob's key file: created if missing. */
  readonly bobKey: string
}

/** One line of the conversation, as the recipient's inbox printed it. */
export interface Said {
  readonly from: "alice" | "bob"
  readonly account: string
  readonly text: string
}

/** Runs `weft args…` here; its stdout lines, or a failure with what it printed on stderr. */
export const weft = (...args: ReadonlyArray<string>): Effect.Effect<ReadonlyArray<string>, Error> =>
  Console.consoleWith((console) => {
    const out: Array<string> = []
    const err: Array<string> = []
    const capture: Console.Console = {
      ...console,
      log: (...line) => Effect.sync(() => void out.push(line.map(String).join(" "))),
      error: (...line) => Effect.sync(() => void err.push(line.map(String).join(" ")))
    }
    return Cli.exitStatus(["node", "weft", ...args]).pipe(
      Effect.withConsole(capture),
      Effect.provide(NodeContext.layer),
      Effect.flatMap((code) => code === 0 ? Effect.succeed(out) : Effect.fail(new Error(`weft ${args.join(" ")}: ${err.join(" ")}`)))
    )
  })

interface InboxLine {
  readonly event: string
  readonly from: string
  readonly text?: string
}

/** Reads the inbox until a text arrives (relaying to the other node takes a moment). */
const awaitText = (node: string, key: string) =>
  Effect.gen(function*() {
    const texts: Array<InboxLine> = []
    const read = Effect.map(weft("msg", "inbox", "--json", "--node", node, "--key", key), (lines) => {
      for (const line of lines.map((text) => JSON.parse(text) as InboxLine)) if (line.event === "message") texts.push(line)
    })
    yield* read.pipe(
      Effect.repeat({ until: () => texts.length > 0, schedule: Schedule.spaced("250 millis") }),
      Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => new Error(`no message arrived for ${key} within 20 s`) })
    )
    return texts
  })

const accountOf = (key: string) =>
  Effect.map(Account.load(key), (account) => `0x${account.id}`)

/** The chat: keys registered, one message each way; the conversation as the inboxes received it. */
export const chat = (setup: Setup, lines: { readonly alice: string; readonly bob: string } = { alice: "hello bob, this is alice", bob: "hi alice! bob here" }) =>
  Effect.gen(function*() {
    if (!Fs.existsSync(setup.bobKey)) yield* Account.save(setup.bobKey, Account.generate())
    const alice = yield* accountOf(setup.aliceKey)
    const bob = yield* accountOf(setup.bobKey)
    yield* Console.log(`alice ${alice}\nbob   ${bob}`)
    yield* weft("token", "keys", "register", "--node", setup.aliceNode, "--key", setup.aliceKey)
    yield* weft("token", "keys", "register", "--node", setup.bobNode, "--key", setup.bobKey)
    yield* Console.log("both lattice keys are on the chain")

    yield* weft("msg", "send", bob, lines.alice, "--node", setup.aliceNode, "--key", setup.aliceKey)
    const toBob = yield* awaitText(setup.bobNode, setup.bobKey)
    yield* weft("msg", "send", alice, lines.bob, "--node", setup.bobNode, "--key", setup.bobKey)
    const toAlice = yield* awaitText(setup.aliceNode, setup.aliceKey)

    const said: ReadonlyArray<Said> = [...toBob, ...toAlice].map((line) => ({
      from: line.from === alice ? "alice" : "bob",
      account: line.from,
      text: line.text ?? ""
    }))
    for (const line of said) yield* Console.log(`<${line.from}> ${line.text}`)
    return said
  })
