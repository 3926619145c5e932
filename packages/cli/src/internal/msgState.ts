/**
 * The channels of one account between `weft msg` runs: a small JSON file next to its key file
 * (`<key>.channels.json`, mode 0600: it holds the channel keys), with each channel's snapshot and the
 * ids of the openings already taken in (until their TTL), so a later `inbox` does not restart a channel.
 */
import { Channel } from "@weft/ephemeral"
import { Effect, Schema } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { CliError } from "../CliError.js"

const Snapshot = Schema.Struct({
  peer: Schema.String,
  opener: Schema.Boolean,
  key: Schema.String,
  seed: Schema.String,
  sent: Schema.Number,
  receiveBase: Schema.Number,
  received: Schema.Array(Schema.Number)
})

const File = Schema.Struct({
  channels: Schema.Array(Snapshot),
  /** Opening message id (hex) → its TTL (unix seconds). */
  openings: Schema.Record({ key: Schema.String, value: Schema.Number })
})

/** The account's channels as one `Channel.Inbox`, and the openings already taken in. */
export interface State {
  readonly file: string
  readonly inbox: Channel.Inbox
  readonly openings: Map<string, number>
}

/** The state file of a key file. */
export const fileOf = (keyFile: string): string => {
  const parsed = Path.parse(Path.resolve(keyFile))
  return Path.join(parsed.dir, `${parsed.ext === ".json" ? parsed.name : parsed.base}.channels.json`)
}

const failure = (file: string, what: string) => (cause: unknown) =>
  new CliError({ message: `cannot ${what} the channel state ${file}: ${cause instanceof Error ? cause.message : String(cause)}` })

/** Reads the state of `keyFile`'s account (none yet: empty). */
export const load = (keyFile: string, me: Channel.Party, window: number, channelsMax: number): Effect.Effect<State, CliError> =>
  Effect.gen(function*() {
    const file = fileOf(keyFile)
    const inbox = new Channel.Inbox(me, window, channelsMax)
    if (!Fs.existsSync(file)) return { file, inbox, openings: new Map() }
    const json = yield* Effect.try({ try: () => JSON.parse(Fs.readFileSync(file, "utf8")) as unknown, catch: failure(file, "read") })
    const decoded = yield* Schema.decodeUnknown(File)(json).pipe(Effect.mapError(failure(file, "decode")))
    for (const snapshot of decoded.channels) inbox.add(Channel.Session.restore(snapshot, window))
    return { file, inbox, openings: new Map(Object.entries(decoded.openings)) }
  })

/** Writes the state (replacing the file at once, so a crash leaves the old or the new one). */
export const save = (state: State, nowSeconds: number): Effect.Effect<void, CliError> =>
  Effect.try({
    try: () => {
      for (const [id, ttl] of state.openings) if (ttl <= nowSeconds) state.openings.delete(id)
      const body: typeof File.Encoded = {
        channels: state.inbox.channels.map((session) => session.snapshot()),
        openings: Object.fromEntries(state.openings)
      }
      const temporary = `${state.file}.${process.pid}.tmp`
      Fs.writeFileSync(temporary, JSON.stringify(body) + "\n", { mode: 0o600 })
      Fs.renameSync(temporary, state.file)
    },
    catch: failure(state.file, "write")
  })
