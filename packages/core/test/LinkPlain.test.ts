import { assert, describe, it } from "@effect/vitest"
import type { Scope } from "effect"
import {
  Chunk, Context, Duration, Effect, Exit, FastCheck as fc, Fiber, Layer, Mailbox, Option, Random, Scope as ScopeModule, Stream, TestClock
} from "effect"
import { createHash } from "node:crypto"
import * as Identity from "../src/Identity.js"
import * as fragment from "../src/internal/fragment.js"
import * as Limits from "../src/Limits.js"
import type { Session } from "../src/Link.js"
import * as LinkPlain from "../src/LinkPlain.js"
import { Link } from "../src/Link.js"
import * as NodeId from "../src/NodeId.js"
import * as TransportMemory from "../src/TransportMemory.js"
import type { Address, Datagram, Endpoint } from "../src/Transport.js"
import { sendOf, Transport } from "../src/Transport.js"

const cellBytes = Limits.defaults.cellBytes
const Kind = { Hello: 1, HelloAck: 2, Confirm: 3, Data: 4, Keepalive: 5, Close: 6 } as const

// ---------------------------------------------------------------------------------------------------
// A fake medium: instant, ordered delivery through mailboxes; every cell recorded; a drop predicate.

interface Sent {
  readonly from: Address
  readonly to: Address
  /** The kind byte of the link frame the cell belongs to. */
  readonly kind: number | undefined
  readonly cell: Uint8Array
}

interface Net {
  readonly sent: Array<Sent>
  drop: (sent: Sent) => boolean
  readonly bind: (address: Address) => Effect.Effect<Endpoint, never, Scope.Scope>
  /** Delivers a frame to `to` as if `from` had sent it, bypassing `drop`. */
  readonly inject: (from: Address, to: Address, frame: Uint8Array) => void
  readonly injectCell: (from: Address, to: Address, cell: Uint8Array) => void
  /** Link frames sent to an address, reassembled. */
  readonly framesTo: (to: Address) => Array<Uint8Array>
  readonly countTo: (to: Address, kind?: number) => number
}

const makeNet = (): Net => {
  const inboxes = new Map<Address, Mailbox.Mailbox<Datagram>>()
  const kinds = new Map<string, number>()
  let injectedId = 0
  const kindOf = (from: Address, cell: Uint8Array): number | undefined => {
    const key = `${from}/${new DataView(cell.buffer, cell.byteOffset).getUint32(0)}`
    if (cell[4] === 0 && cell[5] === 0) kinds.set(key, cell[fragment.headerBytes]!)
    return kinds.get(key)
  }
  const deliver = (from: Address, to: Address, cell: Uint8Array) => {
    inboxes.get(to)?.unsafeOffer({ from, cell: cell.slice() })
  }
  const net: Net = {
    sent: [],
    drop: () => false,
    bind: (address) =>
      Effect.acquireRelease(Mailbox.make<Datagram>(), (inbox) =>
        Effect.sync(() => {
          inboxes.delete(address)
          inbox.unsafeDone(Exit.void)
        })).pipe(
          Effect.map((inbox): Endpoint => {
            inboxes.set(address, inbox)
            const unsafeSend = (to: string, cell: Uint8Array): undefined => {
              const sent: Sent = { from: address, to, kind: kindOf(address, cell), cell }
              net.sent.push(sent)
              if (!net.drop(sent)) deliver(address, to, cell)
            }
            return {
              kind: "fake",
              address,
              capabilities: { reliable: false, ordered: true, cellBytes },
              send: sendOf(unsafeSend),
              unsafeSend,
              receive: Mailbox.toStream(inbox),
              stats: Effect.succeed({ cellsSent: 0, cellsReceived: 0, cellsDroppedInboxFull: 0, cellsDroppedWrongSize: 0 })
            }
          })
        ),
    inject: (from, to, frame) => {
      for (const cell of fragment.cut(frame, 0x7000_0000 + injectedId++, cellBytes)) deliver(from, to, cell)
    },
    injectCell: deliver,
    framesTo: (to) => {
      const reassembler = fragment.makeReassembler({
        cellBytes, frameBytesMax: 1 << 17, partialsPerAddressMax: 64, addressesMax: 64, timeoutMs: 1e12
      })
      return net.sent.filter((sent) => sent.to === to).flatMap((sent) => {
        const frame = reassembler.accept(sent.from, sent.cell, 0)
        return frame === undefined ? [] : [frame]
      })
    },
    countTo: (to, kind) => net.sent.filter((sent) => sent.to === to && (kind === undefined || sent.kind === kind)).length
  }
  return net
}

// ---------------------------------------------------------------------------------------------------
// Signatures: the real scheme where it matters, a cheap stand-in (same sizes) for heavy tests.

const tag = (publicKey: Uint8Array, message: Uint8Array): Uint8Array => {
  const out = new Uint8Array(Identity.signatureBytes)
  out.set(createHash("sha256").update(publicKey).update(message).digest())
  return out
}

const cheap: LinkPlain.Signatures = {
  publicKeyBytes: Identity.publicKeyBytes,
  signatureBytes: Identity.signatureBytes,
  sign: (identity, message) => tag(identity.publicKey, message),
  verify: (publicKey, message, signature) => Buffer.from(tag(publicKey, message)).equals(signature)
}

const counting = (base: LinkPlain.Signatures) => {
  const counts = { sign: 0, verify: 0 }
  const signatures: LinkPlain.Signatures = {
    ...base,
    sign: (identity, message) => (counts.sign++, base.sign(identity, message)),
    verify: (publicKey, message, signature) => (counts.verify++, base.verify(publicKey, message, signature))
  }
  return { counts, signatures }
}

/** An identity for the cheap scheme: any bytes will do as a key when nothing real signs with it. */
const fakeIdentity = (n: number): Identity.Identity => {
  const publicKey = new Uint8Array(Identity.publicKeyBytes).fill(n)
  publicKey[0] = n >>> 8
  return { id: NodeId.fromPublicKey(publicKey), publicKey, secretKey: publicKey }
}

const seed = (n: number) => new Uint8Array(32).fill(n)

// ---------------------------------------------------------------------------------------------------
// Helpers

interface Node {
  readonly link: LinkPlain.Service
  readonly identity: Identity.Identity
  /** Every session the link announced, in order. */
  readonly announced: Array<Session>
}

const startNode = (
  net: Net,
  address: Address,
  identity: Identity.Identity,
  options: { readonly limits?: Partial<Limits.Values>; readonly signatures?: LinkPlain.Signatures } = {}
): Effect.Effect<Node, never, Scope.Scope> =>
  Effect.gen(function*() {
    const endpoint = yield* net.bind(address)
    const link = yield* LinkPlain.makeWith(options.signatures ?? cheap).pipe(
      Effect.provideService(Transport, endpoint),
      Effect.provideService(Identity.NodeIdentity, identity),
      Effect.provideService(Limits.Limits, { ...Limits.defaults, ...options.limits })
    )
    const announced: Array<Session> = []
    yield* Stream.runForEach(link.sessions, (session) => Effect.sync(() => announced.push(session))).pipe(Effect.forkScoped)
    return { link, identity, announced }
  })

/** Lets the other fibers run until `check` holds (no clock involved). */
const until = (label: string, check: () => boolean) =>
  Effect.gen(function*() {
    for (let round = 0; round < 5000; round++) {
      if (check()) return
      yield* Effect.yieldNow()
    }
    assert.fail(`timed out waiting for: ${label}`)
  })

const untilEffect = (label: string, check: Effect.Effect<boolean>) =>
  Effect.gen(function*() {
    for (let round = 0; round < 5000; round++) {
      if (yield* check) return
      yield* Effect.yieldNow()
    }
    assert.fail(`timed out waiting for: ${label}`)
  })

/** Moves the test clock in small steps so the link's fibers run between them. */
const advance = (total: Duration.DurationInput, step: Duration.DurationInput = "100 millis") =>
  Effect.gen(function*() {
    const steps = Math.ceil(Duration.toMillis(total) / Duration.toMillis(step))
    for (let index = 0; index < steps; index++) {
      yield* TestClock.adjust(step)
      for (let spin = 0; spin < 20; spin++) yield* Effect.yieldNow()
    }
  })

const takeFrames = (session: Session, n: number) =>
  Stream.runCollect(Stream.take(session.frames, n)).pipe(Effect.map((chunk) => Chunk.toReadonlyArray(chunk)))

const bytes = (length: number, fill = 7) => Uint8Array.from({ length }, (_, index) => (index * 31 + fill) & 0xff)

const tables = (node: Node) => Effect.runSync(node.link.tables)
const stats = (node: Node) => Effect.runSync(node.link.stats)

// ---------------------------------------------------------------------------------------------------

describe("LinkPlain", () => {
  it.scoped("authenticates both sides with ML-DSA-65 (one sign, one verify each) and carries frames both ways", () =>
    Effect.gen(function*() {
      const net = makeNet()
      const countA = counting(LinkPlain.mlDsa65)
      const countB = counting(LinkPlain.mlDsa65)
      const a = yield* startNode(net, "fake:a", Identity.generate(seed(1)), { signatures: countA.signatures })
      const b = yield* startNode(net, "fake:b", Identity.generate(seed(2)), { signatures: countB.signatures })

      const atA = yield* a.link.dial("fake:b")
      assert.strictEqual(atA.peer, b.identity.id)
      assert.strictEqual(atA.remote, "fake:b")
      assert.isTrue(atA.initiator)
      yield* until("B accepts", () => b.announced.length === 1)
      const atB = b.announced[0]!
      assert.strictEqual(atB.peer, a.identity.id)
      assert.strictEqual(atB.remote, "fake:a")
      assert.isFalse(atB.initiator)
      assert.deepStrictEqual(countA.counts, { sign: 1, verify: 1 })
      assert.deepStrictEqual(countB.counts, { sign: 1, verify: 1 })

      const frames = [bytes(10), bytes(cellBytes * 3 + 17), bytes(Limits.defaults.frameBytesMax), new Uint8Array(0)]
      for (const frame of frames) yield* atA.send(frame)
      assert.deepStrictEqual(yield* takeFrames(atB, frames.length), frames)
      for (const frame of frames) yield* atB.send(frame)
      assert.deepStrictEqual(yield* takeFrames(atA, frames.length), frames)

      // Every cell on the wire had exactly the cell size.
      assert.isTrue(net.sent.every((sent) => sent.cell.length === cellBytes))
      const peers = yield* a.link.peers
      assert.deepStrictEqual(peers.map((peer) => [peer.peer, peer.remote, peer.initiator]), [[b.identity.id, "fake:b", true]])
      assert.strictEqual(stats(a).framesSent, frames.length)
      assert.strictEqual(stats(b).framesReceived, frames.length)
      assert.deepStrictEqual([stats(a).sessionsOpened, stats(b).sessionsOpened], [1, 1])
    }))

  it.scoped("refuses oversized frames, self-dials and sends after close; close reaches the peer", () =>
    Effect.gen(function*() {
      const net = makeNet()
      const a = yield* startNode(net, "fake:a", fakeIdentity(1))
      const b = yield* startNode(net, "fake:b", fakeIdentity(2))
      const atA = yield* a.link.dial("fake:b")
      yield* until("B accepts", () => b.announced.length === 1)
      const atB = b.announced[0]!

      const tooLarge = yield* Effect.flip(atA.send(new Uint8Array(atA.frameBytesMax + 1)))
      assert.strictEqual(tooLarge.reason, "FrameTooLarge")
      const self = yield* Effect.flip(a.link.dial("fake:a"))
      assert.strictEqual(self.reason, "SelfDial")

      const framesAtB = yield* Stream.runCollect(atB.frames).pipe(Effect.fork)
      yield* atA.send(bytes(5))
      yield* atA.close
      yield* atA.close // idempotent
      yield* atA.closed
      assert.strictEqual((yield* Effect.flip(atA.send(bytes(1)))).reason, "Closed")
      yield* atB.closed
      // The peer's frame stream delivers what arrived, then ends.
      assert.deepStrictEqual(Chunk.toReadonlyArray(yield* Fiber.join(framesAtB)), [bytes(5)])
      assert.deepStrictEqual([tables(a).sessions, tables(b).sessions], [0, 0])
      assert.deepStrictEqual([stats(a).sessionsClosed, stats(b).sessionsClosed], [1, 1])
      assert.strictEqual(net.countTo("fake:a", Kind.Close), 0, "the closed side gets no CLOSE back")
    }))

  it.scoped("1,000 concurrent dials of one address share one handshake and one session", () =>
    Effect.gen(function*() {
      const net = makeNet()
      const countA = counting(cheap)
      const countB = counting(cheap)
      const a = yield* startNode(net, "fake:a", fakeIdentity(1), { signatures: countA.signatures })
      const b = yield* startNode(net, "fake:b", fakeIdentity(2), { signatures: countB.signatures })
      const sessions = yield* Effect.forEach(Array.from({ length: 1000 }), () => a.link.dial("fake:b"), {
        concurrency: "unbounded"
      })
      assert.isTrue(sessions.every((session) => session === sessions[0]))
      yield* until("B accepts", () => b.announced.length === 1)
      assert.strictEqual(yield* a.link.dial("fake:b"), sessions[0])
      yield* Effect.forEach(Array.from({ length: 50 }), () => Effect.yieldNow())
      assert.deepStrictEqual([a.announced.length, b.announced.length], [1, 1])
      assert.strictEqual(a.announced[0], sessions[0])
      assert.strictEqual(net.countTo("fake:b", Kind.Hello), fragment.cellsFor(1 + 32 + 32 + Identity.publicKeyBytes, cellBytes))
      assert.deepStrictEqual([countA.counts.sign, countB.counts.sign], [1, 1])
      assert.deepStrictEqual([tables(a).handshakes, tables(b).handshakes], [0, 0])
    }))

  it.scoped("simultaneous dials from both sides end with one session on each side, announced once", () =>
    Effect.gen(function*() {
      const net = makeNet()
      const a = yield* startNode(net, "fake:a", fakeIdentity(1))
      const b = yield* startNode(net, "fake:b", fakeIdentity(2))
      const [atA, atB] = yield* Effect.all([a.link.dial("fake:b"), b.link.dial("fake:a")], { concurrency: "unbounded" })
      // Both really dialed: each side sent a HELLO before learning of the other's.
      assert.isAbove(net.countTo("fake:a", Kind.Hello), 0)
      assert.isAbove(net.countTo("fake:b", Kind.Hello), 0)
      assert.strictEqual(atA.peer, b.identity.id)
      assert.strictEqual(atB.peer, a.identity.id)
      yield* Effect.forEach(Array.from({ length: 100 }), () => Effect.yieldNow())
      assert.deepStrictEqual([a.announced, b.announced], [[atA], [atB]])
      assert.deepStrictEqual([stats(a).sessionsOpened, stats(b).sessionsOpened], [1, 1])
      assert.deepStrictEqual([tables(a), tables(b)].map((t) => [t.sessions, t.handshakes]), [[1, 0], [1, 0]])
      assert.strictEqual(yield* a.link.dial("fake:b"), atA)
      yield* atA.send(bytes(3))
      assert.deepStrictEqual(yield* takeFrames(atB, 1), [bytes(3)])
    }))

  it.scoped("a peer that restarts re-handshakes and replaces its old session", () =>
    Effect.gen(function*() {
      const net = makeNet()
      const a = yield* startNode(net, "fake:a", fakeIdentity(1))
      const identityB = fakeIdentity(2)
      const firstRun = yield* ScopeModule.make()
      const b1 = yield* ScopeModule.extend(startNode(net, "fake:b", identityB), firstRun)
      yield* b1.link.dial("fake:a")
      yield* until("A accepts", () => a.announced.length === 1)
      const old = a.announced[0]!

      // B crashes: nothing it says on the way down reaches A.
      net.drop = (sent) => sent.from === "fake:b"
      yield* ScopeModule.close(firstRun, Exit.void)
      net.drop = () => false
      assert.strictEqual(tables(a).sessions, 1, "A has not noticed")

      const b2 = yield* startNode(net, "fake:b", identityB)
      const fresh = yield* b2.link.dial("fake:a")
      yield* until("A replaces", () => a.announced.length === 2)
      yield* old.closed
      const replaced = a.announced[1]!
      assert.notStrictEqual(replaced, old)
      assert.strictEqual(replaced.peer, identityB.id)
      assert.deepStrictEqual((yield* a.link.peers).map((peer) => peer.peer), [identityB.id])
      yield* fresh.send(bytes(9))
      assert.deepStrictEqual(yield* takeFrames(replaced, 1), [bytes(9)])
    }))

  it.scoped("bad signatures, ID mismatches, junk and data from strangers are counted and get no reply", () =>
    Effect.gen(function*() {
      const net = makeNet()
      const b = yield* startNode(net, "fake:b", fakeIdentity(2))
      const stranger = fakeIdentity(9)
      const idBytes = NodeId.toBytes(stranger.id)
      const nonceA = bytes(32, 1)

      // Junk cells and a DATA frame from an address with no session.
      net.injectCell("fake:x", "fake:b", bytes(cellBytes, 3))
      net.injectCell("fake:x", "fake:b", new Uint8Array(cellBytes).fill(0xff))
      net.inject("fake:x", "fake:b", Uint8Array.of(Kind.Data, 1, 2, 3))
      net.inject("fake:x", "fake:b", Uint8Array.of(99))
      // A HELLO of the wrong length, and one whose key does not hash to the claimed ID.
      net.inject("fake:x", "fake:b", Uint8Array.of(Kind.Hello, 1, 2))
      const wrongKey = fakeIdentity(10).publicKey
      net.inject("fake:x", "fake:b", Uint8Array.from([Kind.Hello, ...idBytes, ...nonceA, ...wrongKey]))
      yield* until("all counted", () => stats(b).cellsRejected >= 5 && stats(b).handshakesFailed >= 1)
      assert.deepStrictEqual([stats(b).cellsRejected, stats(b).handshakesFailed], [5, 1])
      assert.strictEqual(net.countTo("fake:x"), 0)
      assert.strictEqual(tables(b).handshakes, 0)

      // A valid HELLO gets its HELLO_ACK; a CONFIRM with a bad signature gets nothing.
      net.inject("fake:x", "fake:b", Uint8Array.from([Kind.Hello, ...idBytes, ...nonceA, ...stranger.publicKey]))
      yield* until("HELLO_ACK sent", () => net.framesTo("fake:x").length === 1)
      const ack = net.framesTo("fake:x")[0]!
      assert.strictEqual(ack[0], Kind.HelloAck)
      const nonceB = ack.subarray(1 + 32 + 32, 1 + 32 + 64)
      const badSignature = new Uint8Array(Identity.signatureBytes).fill(1)
      net.inject("fake:x", "fake:b", Uint8Array.from([Kind.Confirm, ...nonceA, ...nonceB, ...badSignature]))
      yield* until("bad CONFIRM counted", () => stats(b).handshakesFailed === 2)
      assert.strictEqual(net.framesTo("fake:x").length, 1)
      assert.strictEqual(tables(b).sessions, 0)
      // The half-open handshake expires: nothing is left behind.
      yield* advance("8 seconds", "250 millis")
      assert.deepStrictEqual([tables(b).handshakes, tables(b).sessions], [0, 0])
      assert.strictEqual(stats(b).handshakesFailed, 3)
      assert.strictEqual(stats(b).sessionsOpened, 0)
    }))

  it.scoped("a dialer ignores a HELLO_ACK with a bad signature and sends no CONFIRM", () =>
    Effect.gen(function*() {
      const net = makeNet()
      const a = yield* startNode(net, "fake:a", fakeIdentity(1))
      const impostor = fakeIdentity(9)
      const dial = yield* Effect.fork(a.link.dial("fake:x"))
      yield* until("HELLO sent", () => net.framesTo("fake:x").length === 1)
      const hello = net.framesTo("fake:x")[0]!
      const nonceA = hello.subarray(1 + 32, 1 + 64)
      const badSignature = new Uint8Array(Identity.signatureBytes).fill(2)
      net.inject("fake:x", "fake:a", Uint8Array.from([
        Kind.HelloAck, ...NodeId.toBytes(impostor.id), ...nonceA, ...bytes(32), ...impostor.publicKey, ...badSignature
      ]))
      yield* until("counted", () => stats(a).handshakesFailed === 1)
      assert.strictEqual(net.countTo("fake:x", Kind.Confirm), 0)
      yield* advance("6 seconds", "250 millis")
      const error = yield* Effect.flip(Fiber.join(dial))
      assert.strictEqual(error.reason, "Timeout")
      assert.strictEqual(net.countTo("fake:x", Kind.Hello) / fragment.cellsFor(hello.length, cellBytes), Limits.defaults.handshakeAttemptsMax)
      assert.deepStrictEqual([tables(a).handshakes, tables(a).sessions], [0, 0])
    }))

  it.scoped("retransmits lost handshake messages from caches, signing once per side", () =>
    Effect.gen(function*() {
      const net = makeNet()
      const countA = counting(cheap)
      const countB = counting(cheap)
      const a = yield* startNode(net, "fake:a", fakeIdentity(1), { signatures: countA.signatures })
      const b = yield* startNode(net, "fake:b", fakeIdentity(2), { signatures: countB.signatures })
      // Lose the first copy of each handshake message (all of its cells).
      const lost = new Map<number, string>()
      net.drop = (sent) => {
        if (sent.kind === undefined || sent.kind > Kind.Confirm) return false
        const frameId = new DataView(sent.cell.buffer, sent.cell.byteOffset).getUint32(0)
        const first = lost.get(sent.kind)
        if (first === undefined) lost.set(sent.kind, `${sent.from}/${frameId}`)
        return (first ?? `${sent.from}/${frameId}`) === `${sent.from}/${frameId}`
      }
      const dial = yield* Effect.fork(a.link.dial("fake:b"))
      yield* advance("5 seconds", "250 millis")
      const atA = yield* Fiber.join(dial)
      yield* until("B accepts", () => b.announced.length === 1)
      assert.deepStrictEqual([...lost.keys()].sort(), [Kind.Hello, Kind.HelloAck, Kind.Confirm])
      assert.deepStrictEqual([countA.counts.sign, countB.counts.sign], [1, 1])
      yield* atA.send(bytes(4))
      assert.deepStrictEqual(yield* takeFrames(b.announced[0]!, 1), [bytes(4)])
      assert.deepStrictEqual([tables(a).handshakes, tables(b).handshakes], [0, 0])
    }))

  it.scoped("keepalives hold an idle session open; silence closes it after sessionIdleTimeout", () =>
    Effect.gen(function*() {
      const net = makeNet()
      // Timers scaled so the link's sweep runs once a second of test time.
      const limits: Partial<Limits.Values> = {
        keepaliveInterval: Duration.seconds(4),
        sessionIdleTimeout: Duration.seconds(12),
        handshakeAttemptTimeout: Duration.seconds(4),
        reassemblyTimeout: Duration.seconds(4)
      }
      const a = yield* startNode(net, "fake:a", fakeIdentity(1), { limits })
      const b = yield* startNode(net, "fake:b", fakeIdentity(2), { limits })
      const atA = yield* a.link.dial("fake:b")
      yield* until("B accepts", () => b.announced.length === 1)
      yield* advance("30 seconds", "1 second")
      assert.deepStrictEqual([tables(a).sessions, tables(b).sessions], [1, 1])
      assert.isAtLeast(net.countTo("fake:b", Kind.Keepalive), 5)
      assert.isAtLeast(net.countTo("fake:a", Kind.Keepalive), 5)

      // The last keepalive came at most 5 s ago (interval 4 s, checked each second): open 6 s on.
      net.drop = () => true
      yield* advance("6 seconds", "1 second")
      assert.strictEqual(tables(a).sessions, 1)
      yield* advance("8 seconds", "1 second")
      yield* atA.closed
      yield* b.announced[0]!.closed
      assert.deepStrictEqual([tables(a).sessions, tables(b).sessions], [0, 0])
    }))

  it.scoped("random and mutated cells never break the link", () =>
    Effect.gen(function*() {
      const net = makeNet()
      const a = yield* startNode(net, "fake:a", fakeIdentity(1))
      const b = yield* startNode(net, "fake:b", fakeIdentity(2))
      const atA = yield* a.link.dial("fake:b")
      yield* until("B accepts", () => b.announced.length === 1)
      const handshake = net.sent.filter((sent) => sent.kind !== undefined && sent.kind <= Kind.Confirm)
      const junk = fc.sample(
        fc.oneof(
          fc.uint8Array({ minLength: cellBytes, maxLength: cellBytes }),
          fc.uint8Array({ maxLength: cellBytes + 8 }),
          fc.tuple(fc.constantFrom(...handshake), fc.nat(cellBytes - 1), fc.integer({ min: 1, max: 255 })).map(
            ([sent, at, xor]) => {
              const cell = sent.cell.slice()
              cell[at] = cell[at]! ^ xor
              return cell
            }
          )
        ),
        { numRuns: 500, seed: 42 }
      )
      junk.forEach((cell, index) => net.injectCell(["fake:x", "fake:y", "fake:a"][index % 3]!, "fake:b", cell))
      yield* until("all processed", () => stats(b).cellsRejected > 0 && net.sent.length > 0)
      yield* Effect.forEach(Array.from({ length: 200 }), () => Effect.yieldNow())
      assert.strictEqual(net.countTo("fake:x") + net.countTo("fake:y"), 0)
      yield* atA.send(bytes(2000))
      assert.deepStrictEqual(yield* takeFrames(b.announced[0]!, 1), [bytes(2000)])
      assert.strictEqual(tables(b).sessions, 1)
    }))

  it.scoped("1,000 connect/close cycles leave every table empty", () =>
    Effect.gen(function*() {
      const net = makeNet()
      const a = yield* startNode(net, "fake:a", fakeIdentity(1))
      const b = yield* startNode(net, "fake:b", fakeIdentity(2))
      for (let cycle = 0; cycle < 1000; cycle++) {
        const session = yield* a.link.dial("fake:b")
        yield* session.send(bytes(cellBytes + 1))
        yield* session.close
        yield* untilEffect("B closes", Effect.map(b.link.stats, (s) => s.sessionsClosed === cycle + 1))
      }
      assert.deepStrictEqual([stats(a).sessionsOpened, stats(b).sessionsOpened], [1000, 1000])
      assert.deepStrictEqual([stats(a).sessionsClosed, stats(b).sessionsClosed], [1000, 1000])
      yield* advance("6 seconds", "1 second")
      const empty = { sessions: 0, handshakes: 0, reassemblyAddresses: 0, reassemblyPartials: 0 }
      assert.deepStrictEqual([tables(a), tables(b)], [empty, empty])
    }))

  it.scoped("peersMax and handshakesInFlightMax bound the tables", () =>
    Effect.gen(function*() {
      const net = makeNet()
      const a = yield* startNode(net, "fake:a", fakeIdentity(1), { limits: { peersMax: 1, handshakesInFlightMax: 1 } })
      const b = yield* startNode(net, "fake:b", fakeIdentity(2))
      const c = yield* startNode(net, "fake:c", fakeIdentity(3))
      yield* a.link.dial("fake:b")
      assert.strictEqual((yield* Effect.flip(a.link.dial("fake:c"))).reason, "PeersFull")
      // A is full, so C's HELLO is dropped (and counted) and C's dial times out.
      const fromC = yield* Effect.fork(c.link.dial("fake:a"))
      yield* until("A drops C", () => stats(a).handshakesFailed === 2)
      yield* advance("6 seconds", "250 millis")
      assert.strictEqual((yield* Effect.flip(Fiber.join(fromC))).reason, "Timeout")
      assert.strictEqual(net.countTo("fake:c", Kind.HelloAck), 0)

      const d = yield* startNode(net, "fake:d", fakeIdentity(4), { limits: { handshakesInFlightMax: 1 } })
      const silent = yield* Effect.fork(d.link.dial("fake:nobody"))
      yield* until("HELLO sent", () => net.countTo("fake:nobody") > 0)
      assert.strictEqual((yield* Effect.flip(d.link.dial("fake:b"))).reason, "HandshakesFull")
      yield* advance("6 seconds", "250 millis")
      assert.strictEqual((yield* Effect.flip(Fiber.join(silent))).reason, "Timeout")
      assert.strictEqual(tables(d).handshakes, 0)
      assert.isDefined(yield* d.link.dial("fake:b"))
      yield* until("B accepts D", () => tables(b).sessions === 2)
    }))

  it.scoped("a full session inbox drops new frames and counts them", () =>
    Effect.gen(function*() {
      const net = makeNet()
      const a = yield* startNode(net, "fake:a", fakeIdentity(1))
      const b = yield* startNode(net, "fake:b", fakeIdentity(2), { limits: { sessionInboxFrames: 2 } })
      const atA = yield* a.link.dial("fake:b")
      for (let index = 0; index < 5; index++) yield* atA.send(bytes(8, index))
      yield* until("B counts", () => stats(b).framesReceived + stats(b).framesDroppedInboxFull === 5)
      assert.deepStrictEqual([stats(b).framesReceived, stats(b).framesDroppedInboxFull], [2, 3])
      yield* until("B announces", () => b.announced.length === 1)
      assert.deepStrictEqual(yield* takeFrames(b.announced[0]!, 2), [bytes(8, 0), bytes(8, 1)])
    }))

  it.scoped("closing the link closes its sessions, tells the peers, and ends the sessions stream", () =>
    Effect.gen(function*() {
      const net = makeNet()
      const b = yield* startNode(net, "fake:b", fakeIdentity(2))
      const scope = yield* ScopeModule.make()
      const a = yield* ScopeModule.extend(startNode(net, "fake:a", fakeIdentity(1)), scope)
      const atA = yield* a.link.dial("fake:b")
      yield* until("B accepts", () => b.announced.length === 1)
      const pending = yield* Effect.fork(a.link.dial("fake:nobody"))
      yield* until("HELLO sent", () => net.countTo("fake:nobody") > 0)
      yield* ScopeModule.close(scope, Exit.void)
      yield* atA.closed
      yield* b.announced[0]!.closed
      assert.strictEqual((yield* Effect.flip(Fiber.join(pending))).reason, "Closed")
      assert.strictEqual((yield* Effect.flip(a.link.dial("fake:b"))).reason, "Closed")
      const ended = yield* Stream.runCollect(a.link.sessions).pipe(Effect.timeout("1 second"), Effect.option, Effect.fork)
      yield* TestClock.adjust("2 seconds")
      assert.isTrue(Option.isSome(yield* Fiber.join(ended)))
    }))

  it.scoped("LinkPlain.layer works over TransportMemory with latency and loss (seeded)", () =>
    Effect.gen(function*() {
      const network = yield* TransportMemory.makeNetwork({ latency: "5 millis", loss: 0.1 })
      const node = (address: Address, identity: Identity.Identity) =>
        Layer.build(
          LinkPlain.layer.pipe(
            Layer.provide(TransportMemory.layer(network, { address })),
            Layer.provide(Identity.layer(identity)),
            Layer.provide(Limits.layer())
          )
        ).pipe(Effect.orDie, Effect.map((context) => Context.get(context, Link)))
      const a = yield* node("mem:a", Identity.generate(seed(3)))
      const b = yield* node("mem:b", Identity.generate(seed(4)))
      const accepted = yield* Stream.runHead(b.sessions).pipe(Effect.fork)
      const dial = yield* Effect.fork(a.dial("mem:b"))
      yield* advance("10 seconds", "50 millis")
      const atA = yield* Fiber.join(dial)
      const atB = Option.getOrThrow(yield* Fiber.join(accepted))
      assert.strictEqual(atA.peer, b.local)
      assert.strictEqual(atB.peer, a.local)
      // Frames are datagrams over a lossy medium: send until one arrives.
      const received = yield* Stream.runHead(atB.frames).pipe(Effect.fork)
      for (let attempt = 0; attempt < 20; attempt++) {
        yield* atA.send(bytes(3000))
        yield* advance("50 millis", "10 millis")
      }
      assert.deepStrictEqual(Option.getOrThrow(yield* Fiber.join(received)), bytes(3000))
    }).pipe(Effect.withRandom(Random.make(42))))
})
