/**
 * `weft msg …`: ephemeral messages from the command line, through a running node's control socket.
 * `send` and `open` use secure channels to an account (its lattice keys come from the chain, so it
 * must have run `weft token keys register`); `inbox` reads what arrived on them; `broadcast` and
 * `lookup` are plain public messages by ID. Messages are built here, proof of work included (its
 * progress on stderr); channel state lives in `<key>.channels.json` next to the account key file.
 * `--json` prints one JSON object per line.
 */
import { Args, Command, Options } from "@effect/cli"
import { Entropy } from "@weft/core"
import { Chain, Channel, EphemeralLimits, EphemeralNode, Message, type Pow } from "@weft/ephemeral"
import { Account, Id } from "@weft/ledger"
import type { Scope } from "effect"
import { Console, Duration, Effect, Either, Option, Stream } from "effect"
import * as Fs from "node:fs"
import { CliError } from "./CliError.js"
import * as DurationText from "./DurationText.js"
import * as Json from "./Json.js"
import * as Client from "./internal/msgClient.js"
import * as MsgState from "./internal/msgState.js"
import { devPointerFile, keyOption, nodeOption, nodeTarget } from "./internal/tokenClient.js"
import { kemKeys } from "./internal/tokenPlan.js"

const node = nodeOption
const key = keyOption(" (channel state is kept next to it)")
const json = Options.boolean("json").pipe(Options.withDescription("Print one JSON object per line."))
const ttl = Options.text("ttl").pipe(
  Options.withPseudoName("DURATION"),
  Options.withDescription("How long the network keeps the message (e.g. 10m, 1h); longer needs more proof of work."),
  Options.withDefault("10m")
)
const common = { node, key, json }

type Common = { readonly node: Option.Option<string>; readonly key: Option.Option<string>; readonly json: boolean }

const limits = EphemeralLimits.defaults

interface Session {
  readonly client: Client.Ephemeral
  readonly json: boolean
}

interface Mine extends Session {
  readonly me: Channel.Party
  readonly state: MsgState.State
}

const fail = (message: string) => Effect.fail(new CliError({ message }))

const display = (account: Chain.AccountId): string => `0x${account}`

const keyFile = (given: Option.Option<string>): Effect.Effect<string, CliError> => {
  if (Option.isSome(given)) return Effect.succeed(given.value)
  try {
    const pointer = JSON.parse(Fs.readFileSync(devPointerFile(), "utf8")) as { readonly key?: unknown }
    if (typeof pointer.key === "string") return Effect.succeed(pointer.key)
  } catch {
    // No running `weft dev`: the key must be given.
  }
  return fail("no --key given and no running `weft dev` found (pass --key FILE: an account key file)")
}

/** The account of a key file as a channel party: its ML-DSA keys and the ML-KEM key derived from them. */
const partyOf = (account: Account.Account): Channel.Party => ({
  account: account.id,
  dsa: { publicKey: account.publicKey, secretKey: account.secretKey },
  kem: kemKeys(account)
})

const connect = (args: Common) =>
  Effect.map(Effect.flatMap(nodeTarget(args.node), Client.ephemeral), (client): Session => ({ client, json: args.json }))

const withAccount = (args: Common) =>
  Effect.gen(function*() {
    const session = yield* connect(args)
    const file = yield* keyFile(args.key)
    const account = yield* Account.load(file).pipe(Effect.mapError((e) => new CliError({ message: `cannot load the account key ${file}: ${e.detail ?? e.reason}` })))
    const me = partyOf(account)
    const state = yield* MsgState.load(file, me, limits.channelWindowMessages, limits.channelsMax)
    return { ...session, me, state } satisfies Mine
  })

const out = (s: Session, human: string, machine: Record<string, unknown>) => Console.log(s.json ? Json.line(machine) : human)

const parseTtl = (text: string): Effect.Effect<Duration.Duration, CliError> =>
  Either.match(DurationText.parse(text), { onLeft: (message) => fail(`--ttl: ${message}`), onRight: Effect.succeed })

// An account id is a ledger id (SHA-256 of the account's ML-DSA key): the ledger's parser reads it.
const parseAccount = (text: string): Effect.Effect<Chain.AccountId, CliError> =>
  Either.match(Id.parse(text), {
    onLeft: () => fail(`<account> is not a 0x… account id of 64 hex digits: ${JSON.stringify(text.slice(0, 80))}`),
    onRight: Effect.succeed
  })

const hexBytes = (what: string, text: string, max: number): Effect.Effect<Uint8Array, CliError> => {
  const digits = text.replace(/^0x/, "")
  return /^([0-9a-fA-F]{2})*$/.test(digits) && digits.length / 2 <= max
    ? Effect.succeed(Uint8Array.from(Buffer.from(digits, "hex")))
    : fail(`${what} is not hex of at most ${max} bytes (an even number of hex digits): ${JSON.stringify(text.slice(0, 80))}`)
}

// Live progress on a terminal; one summary line on stderr either way (the solver runs in this process).
const progressReporter = (): { readonly options: Pow.SolveOptions; readonly done: Effect.Effect<void> } => {
  const started = Date.now()
  let last: Pow.Progress | undefined
  let shown = 0
  const options: Pow.SolveOptions = {
    onProgress: (progress) => {
      last = progress
      if (!process.stderr.isTTY || Date.now() - shown < 100) return
      shown = Date.now()
      process.stderr.write(`\rproof of work: ${progress.bits} bits, ${progress.attempts} of ~${progress.expectedAttempts} attempts`)
    }
  }
  const done = Effect.suspend(() => {
    if (process.stderr.isTTY && shown > 0) process.stderr.write("\r\x1b[K")
    // Straight to stderr: the CLI's console turns Console.error lines into error reports.
    if (last !== undefined) process.stderr.write(`proof of work: ${last.bits} bits, ${last.attempts} attempts, ${((Date.now() - started) / 1000).toFixed(1)} s\n`)
    return Effect.void
  })
  return { options, done }
}

/** Stamps a message for the node (its newest block, its work parameters) and submits it. */
const stampAndSend = (s: Session, info: EphemeralNode.Info, draft: EphemeralNode.Draft) =>
  Effect.gen(function*() {
    const progress = progressReporter()
    const encoded = yield* EphemeralNode.build(info, draft, progress.options).pipe(
      Effect.mapError((error) => new CliError({ message: `cannot build the message: ${error.detail ?? error.reason}` }))
    )
    yield* progress.done
    return yield* s.client.send(encoded)
  })

const noKeyHint = (peer: Chain.AccountId) =>
  `account ${display(peer)} has no lattice key registered on the chain: its owner must run \`weft token keys register\` first`

/** Opens a channel to `peer`: the opening goes out and the channel is saved. */
const openChannel = (s: Mine, info: EphemeralNode.Info, peer: Chain.AccountId, ttlDuration: Duration.Duration) =>
  Effect.gen(function*() {
    if (peer === s.me.account) return yield* fail("that is your own account: a channel needs another account")
    const opened = yield* Channel.open(s.me, peer, limits.channelWindowMessages).pipe(
      Effect.provideService(Chain.ChainView, s.client.chainView),
      Effect.provide(Entropy.layer),
      Effect.mapError((error) => new CliError({ message: error.reason === "NoKey" ? noKeyHint(peer) : `cannot open a channel: ${error.detail ?? error.reason}` }))
    )
    s.state.inbox.add(opened.session)
    yield* MsgState.save(s.state, info.nowSeconds)
    const sent = yield* stampAndSend(s, info, { ...opened.message, ttl: ttlDuration })
    return { session: opened.session, sent }
  })

const withMine = <A>(args: Common, body: (s: Mine) => Effect.Effect<A, CliError, Scope.Scope>) => Effect.scoped(Effect.flatMap(withAccount(args), body))

// ---------------------------------------------------------------------------------------------------

const send = Command.make("send", { ...common, ttl, account: Args.text({ name: "account" }), text: Args.text({ name: "text" }) }, (args) =>
  withMine(args, (s) =>
    Effect.gen(function*() {
      const peer = yield* parseAccount(args.account)
      const lifetime = yield* parseTtl(args.ttl)
      const text = new TextEncoder().encode(args.text)
      if (text.length > Channel.textBytesMax) return yield* fail(`the text is ${text.length} bytes; one message carries at most ${Channel.textBytesMax}`)
      const info = yield* s.client.info
      const existing = s.state.inbox.session(peer)
      const opened = existing === undefined ? yield* openChannel(s, info, peer, lifetime) : undefined
      const session = existing ?? opened!.session
      const sealed = session.seal(text)
      if (Either.isLeft(sealed)) return yield* fail(sealed.left.detail ?? sealed.left.reason)
      // Saved before it leaves: a counter (and so an AES-GCM nonce) is never used twice.
      s.state.inbox.add(session)
      yield* MsgState.save(s.state, info.nowSeconds)
      const sent = yield* stampAndSend(s, info, { ...sealed.right, ttl: lifetime })
      yield* out(s, `sent to ${display(peer)}${opened === undefined ? "" : " (new channel)"}: ${sent.workBits} bits of work, expires in ${Duration.format(lifetime)}`, {
        event: "sent", to: display(peer), id: sent.id, workBits: sent.workBits, ttlSeconds: Duration.toSeconds(lifetime), opened: opened !== undefined, stored: sent.stored, relayed: sent.relayed
      })
    }))
).pipe(Command.withDescription("Send a text to an account over a secure channel (opened first if there is none); the account must have registered its lattice key."))

const open = Command.make("open", { ...common, ttl, account: Args.text({ name: "account" }) }, (args) =>
  withMine(args, (s) =>
    Effect.gen(function*() {
      const peer = yield* parseAccount(args.account)
      const lifetime = yield* parseTtl(args.ttl)
      const info = yield* s.client.info
      const { sent, session } = yield* openChannel(s, info, peer, lifetime)
      const state = session.snapshot()
      yield* out(s, `channel to ${display(peer)} opened (opening ${sent.id.slice(0, 16)}…, ${sent.workBits} bits of work); sent ${state.sent}, received ${state.receiveBase}, window ${session.window}`, {
        event: "opened", to: display(peer), id: sent.id, workBits: sent.workBits, opener: state.opener, sent: state.sent, received: state.receiveBase, window: session.window
      })
    }))
).pipe(Command.withDescription("Open a secure channel to an account (replacing any channel with it) and print its state."))

/** What one pass over incoming messages made of them, in order. */
type Event = { readonly _tag: "Opened"; readonly from: Chain.AccountId } | { readonly _tag: "Text"; readonly from: Chain.AccountId; readonly text: string; readonly id: string }

/** Runs messages through the account's channels; a message of a channel opened in the same batch is retried after it. */
const receiveAll = (s: Mine, messages: ReadonlyArray<Message.Message>) =>
  Effect.gen(function*() {
    const events: Array<Event> = []
    let pending = messages.filter((message) => message.payload.length === Channel.sizeClassBytes && !s.state.openings.has(Message.idHex(message)))
    while (pending.length > 0) {
      const left: Array<Message.Message> = []
      let opened = false
      for (const message of pending) {
        const received = yield* s.state.inbox.receive(message)
        if (Option.isNone(received)) {
          left.push(message)
          continue
        }
        if (received.value._tag === "Opened") {
          opened = true
          s.state.openings.set(Message.idHex(message), message.ttl)
          events.push({ _tag: "Opened", from: received.value.session.peer })
        } else {
          events.push({ _tag: "Text", from: received.value.session.peer, text: new TextDecoder().decode(received.value.text), id: Message.idHex(message) })
        }
      }
      pending = opened ? left : []
    }
    return events
  }).pipe(Effect.provideService(Chain.ChainView, s.client.chainView))

const printEvents = (s: Mine, events: ReadonlyArray<Event>) =>
  Effect.forEach(events, (event) =>
    event._tag === "Opened"
      ? out(s, `${display(event.from)} (opened a channel)`, { event: "opened", from: display(event.from) })
      : out(s, `${display(event.from)} ${event.text}`, { event: "message", from: display(event.from), text: event.text, id: event.id }), { discard: true })

const takeIn = (s: Mine, messages: ReadonlyArray<Message.Message>) =>
  Effect.gen(function*() {
    const events = yield* receiveAll(s, messages)
    if (events.length > 0) yield* MsgState.save(s.state, Math.floor(Date.now() / 1000))
    yield* printEvents(s, events)
  })

const follow = Options.boolean("follow").pipe(Options.withAlias("f"), Options.withDescription("Keep running and print messages as they arrive (until Ctrl-C)."))

const inbox = Command.make("inbox", { ...common, follow }, (args) =>
  withMine(args, (s) =>
    Effect.gen(function*() {
      // Following starts before the stored messages are read, so nothing arriving in between is missed.
      const live = args.follow ? Option.some(yield* Stream.toQueueOfElements(s.client.live)) : Option.none()
      const stored = yield* s.client.lookup(new Uint8Array(0))
      // Oldest first: the TTL is the send time plus the lifetime.
      yield* takeIn(s, [...stored].sort((a, b) => a.ttl - b.ttl))
      if (Option.isNone(live)) return
      while (true) {
        const exit = yield* live.value.take
        if (exit._tag === "Failure") return yield* fail("the node stopped sending messages (is it still running?)")
        yield* takeIn(s, [exit.value])
      }
    }))
).pipe(Command.withDescription("Messages for your account that the node holds: channel openings addressed to you and texts on your channels, as `<from> <text>`; only new ones each time."))

const broadcast = Command.make("broadcast", { node, json, ttl, id: Args.text({ name: "hex-id" }), payload: Args.text({ name: "payload" }) }, (args) =>
  Effect.scoped(Effect.gen(function*() {
    const s = yield* connect({ ...args, key: Option.none() })
    const given = yield* hexBytes("<hex-id>", args.id, Message.idBytes)
    const id = new Uint8Array(Message.idBytes)
    id.set(given)
    const lifetime = yield* parseTtl(args.ttl)
    const payload = new TextEncoder().encode(args.payload)
    if (payload.length > Message.payloadBytesMax) return yield* fail(`the payload is ${payload.length} bytes; a message carries at most ${Message.payloadBytesMax}`)
    const sent = yield* stampAndSend(s, yield* s.client.info, { id, payload, ttl: lifetime })
    yield* out(s, `broadcast ${sent.id}: ${sent.workBits} bits of work, expires in ${Duration.format(lifetime)}, ${sent.stored === "Stored" ? "stored" : `not stored (${sent.stored})`}${sent.relayed ? ", relayed" : ""}`, {
      event: "broadcast", id: sent.id, workBits: sent.workBits, ttlSeconds: Duration.toSeconds(lifetime), stored: sent.stored, relayed: sent.relayed
    })
  }))
).pipe(Command.withDescription("Publish a public ephemeral message with this ID (hex, up to 64 bytes, zero-padded) and a text payload."))

const textOf = (payload: Uint8Array): string | null => {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(payload)
  } catch {
    return null
  }
}

const lookup = Command.make("lookup", { node, json, prefix: Args.text({ name: "hex-prefix" }) }, (args) =>
  Effect.scoped(Effect.gen(function*() {
    const s = yield* connect({ ...args, key: Option.none() })
    const prefix = yield* hexBytes("<hex-prefix>", args.prefix, Message.idHalfBytes)
    const found = yield* s.client.lookup(prefix)
    for (const message of found) {
      const text = textOf(message.payload)
      yield* out(s, `${Message.idHex(message)} ${text ?? `(${message.payload.length} bytes)`}`, {
        id: Message.idHex(message), text, bytes: message.payload.length, ttl: message.ttl
      })
    }
    if (found.length === 0 && !s.json) yield* Console.log("no messages")
  }))
).pipe(Command.withDescription("The live messages the node stores whose ID starts with <hex-prefix> (up to 32 bytes): `<id> <text>`."))

/** `weft msg …`. */
export const msg = Command.make("msg").pipe(
  Command.withDescription("Ephemeral messages: secure channels between accounts and public broadcasts, through a node (default: the running `weft dev`)."),
  Command.withSubcommands([send, inbox, open, broadcast, lookup])
)
