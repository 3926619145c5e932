/**
 * Case 1: one envelope encoded and decoded at the edge (`Envelope.encode` + `Envelope.decoder`:
 * size check, structural pre-scan, msgpackr, schema) against raw msgpackr `pack` + `unpack` of the
 * same wire array.
 */
import { Effect, Either } from "effect"
import { Packr } from "msgpackr"
import * as Envelope from "../src/Envelope.js"
import * as Limits from "../src/Limits.js"
import type { Case } from "./harness.js"

const raw = new Packr({ useRecords: false })

/** A typical call envelope: an rpc tag, a correlation id and a ~100-byte body. */
const envelope: Envelope.Envelope = {
  kind: Envelope.Kind.call,
  stream: 2,
  seq: 1234,
  tag: "@weft/rpc",
  corr: 98765,
  to: undefined,
  body: { _tag: "Request", id: "1042", tag: "Echo", payload: { text: "hello from the bench, a short line" }, headers: [] }
}

/** The same shape as the wire array `Envelope.encode` writes. */
const wire = [Envelope.version, envelope.kind, envelope.stream, envelope.seq, envelope.tag, null, null, envelope.body]

/** Bytes of the encoded envelope (for the report on stderr). */
export const envelopeBytes = Envelope.encode(envelope).length

const decode = Envelope.decoder(Limits.defaults)

// A failed decode would make the subject look fast; it must stop the bench instead.
const weft = (ops: number) =>
  Effect.sync(() => {
    let seqSum = 0
    for (let i = 0; i < ops; i++) {
      const decoded = decode(Envelope.encode(envelope))
      if (Either.isLeft(decoded)) throw new Error(`envelope did not decode: ${decoded.left.detail}`)
      seqSum += decoded.right.seq
    }
    if (seqSum !== ops * envelope.seq) throw new Error("envelope decoded wrong")
  })

const baseline = (ops: number) =>
  Effect.sync(() => {
    let seqSum = 0
    for (let i = 0; i < ops; i++) seqSum += (raw.unpack(raw.pack(wire)) as Array<number>)[3]!
    if (seqSum !== ops * envelope.seq) throw new Error("msgpackr decoded wrong")
  })

/** The envelope case. */
export const cases = (quick: boolean): ReadonlyArray<Case> => [{
  bench: "envelope encode+decode",
  metric: "envelope_roundtrip",
  unit: "ops/s",
  ops: quick ? 20_000 : 200_000,
  subject: { name: "Envelope.encode+decoder", run: weft },
  baseline: { name: "msgpackr pack+unpack", run: baseline },
  target: 0.5
}]
