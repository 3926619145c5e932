/**
 * Secure channels over ephemeral messages, opened with the lattice keys accounts publish on the chain.
 *
 * Opening (A to B): A encapsulates to B's ML-KEM-768 key (from `ChainView.latticeKey`) and sends, sealed
 * with AES-256-GCM under a key derived from the shared secret: the channel's symmetric key K, a PRF seed
 * S, A's account and A's ML-DSA-65 signature over the transcript (a label, B's account, the KEM
 * ciphertext, K, S, A's account). B decapsulates, opens, and checks the signature against the ML-DSA key
 * the chain holds for A: the origin is the chain's word, not the message's.
 *
 * Data: direction d (0: opener to recipient, 1: back) and counter c give the message id
 * ID0 = HMAC-SHA-256(S, "id0" ‖ d ‖ c), ID1 = HMAC-SHA-256(S, "id1" ‖ d ‖ c) and the AES-256-GCM nonce
 * d ‖ 0 0 0 ‖ c (K, with the id as associated data). Only the two parties can tell which ids belong to
 * the channel; a receiver watches a bounded window of expected ids per channel (`channelWindowMessages`),
 * and a replayed id is no longer in it.
 *
 * On the wire every channel message is an ordinary ephemeral message whose payload is exactly
 * `sizeClassBytes` long (openings and data alike), with no marker: ids are PRF outputs or random, the
 * rest is ciphertext. Recognising an opening costs one decapsulation per candidate message.
 */
import { ml_kem768 } from "@noble/post-quantum/ml-kem.js"
import { Entropy, Identity, NodeId } from "@weft/core"
import { Effect, Either, Option } from "effect"
import { createCipheriv, createDecipheriv, createHmac, hkdfSync } from "node:crypto"
import type { AccountId, LatticeKey } from "./Chain.js"
import { accountOf, ChainView } from "./Chain.js"
import { EphemeralError } from "./EphemeralError.js"
import type { Unsealed } from "./Message.js"
import * as MessageModule from "./Message.js"

/** The payload length of every channel message, opening or data. */
export const sizeClassBytes = 4608
const tagBytes = 16
const kemCipherTextBytes = 1088
const accountBytes = 32
/** The longest text one data message carries. */
export const textBytesMax = sizeClassBytes - tagBytes - 2
const openLabel = "weft/ephemeral/channel-open/v1"

/** A party: an account's signing keys and its KEM key pair. */
export interface Party {
  readonly account: AccountId
  readonly dsa: { readonly publicKey: Uint8Array; readonly secretKey: Uint8Array }
  readonly kem: { readonly publicKey: Uint8Array; readonly secretKey: Uint8Array }
}

/** A fresh party; with a 32-byte seed it is deterministic. */
export const generateParty = (seed?: Uint8Array): Party => {
  const identity = Identity.generate(seed)
  const kemSeed = seed === undefined ? undefined : new Uint8Array(hkdfSync("sha256", seed, new Uint8Array(0), "weft/ephemeral/kem-seed", 64))
  const kem = ml_kem768.keygen(kemSeed)
  return { account: accountOf(identity.publicKey), dsa: { publicKey: identity.publicKey, secretKey: identity.secretKey }, kem }
}

/** The keys a party registers on the chain. */
export const latticeKeyOf = (party: Party): LatticeKey => ({ kemPublicKey: party.kem.publicKey, dsaPublicKey: party.dsa.publicKey })

// ---------------------------------------------------------------------------------------------------
// Primitives

const seal = (key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Uint8Array => {
  const cipher = createCipheriv("aes-256-gcm", key, nonce)
  cipher.setAAD(aad)
  const body = cipher.update(plaintext)
  cipher.final()
  const out = new Uint8Array(body.length + tagBytes)
  out.set(body, 0)
  out.set(cipher.getAuthTag(), body.length)
  return out
}

const unseal = (key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Uint8Array | undefined => {
  if (sealed.length < tagBytes) return undefined
  try {
    const decipher = createDecipheriv("aes-256-gcm", key, nonce)
    decipher.setAAD(aad)
    decipher.setAuthTag(sealed.subarray(sealed.length - tagBytes))
    const body = decipher.update(sealed.subarray(0, sealed.length - tagBytes))
    decipher.final()
    return new Uint8Array(body)
  } catch {
    return undefined
  }
}

const counterBytes = (direction: number, counter: number): Uint8Array => {
  const bytes = new Uint8Array(9)
  bytes[0] = direction
  new DataView(bytes.buffer).setBigUint64(1, BigInt(counter))
  return bytes
}

/** The id of message `counter` in `direction`: a PRF of the seed, random-looking to anyone else. */
export const messageId = (seed: Uint8Array, direction: number, counter: number): Uint8Array => {
  const input = counterBytes(direction, counter)
  const id = new Uint8Array(MessageModule.idBytes)
  id.set(createHmac("sha256", seed).update("id0").update(input).digest(), 0)
  id.set(createHmac("sha256", seed).update("id1").update(input).digest(), MessageModule.idHalfBytes)
  return id
}

const nonceOf = (direction: number, counter: number): Uint8Array => {
  const nonce = new Uint8Array(12)
  nonce[0] = direction
  new DataView(nonce.buffer).setBigUint64(4, BigInt(counter))
  return nonce
}

const openKey = (sharedSecret: Uint8Array): Uint8Array =>
  new Uint8Array(hkdfSync("sha256", sharedSecret, new Uint8Array(0), openLabel, 32))

const transcript = (recipient: AccountId, cipherText: Uint8Array, key: Uint8Array, seed: Uint8Array, sender: AccountId): Uint8Array =>
  Buffer.concat([Buffer.from(openLabel), Buffer.from(recipient, "hex"), cipherText, key, seed, Buffer.from(sender, "hex")])

// ---------------------------------------------------------------------------------------------------
// A channel's state

/** A snapshot of a channel (to keep it across processes); holds secrets. */
export interface Snapshot {
  readonly peer: AccountId
  readonly opener: boolean
  readonly key: string
  readonly seed: string
  readonly sent: number
  readonly receiveBase: number
  readonly received: ReadonlyArray<number>
}

/** One end of a channel: the keys, the send counter and the receive window. */
export class Session {
  private sent: number
  private receiveBase: number
  /** Counters above `receiveBase` already received (out of order). */
  private readonly received: Set<number>
  /** Expected id key → counter, for counters in [receiveBase, receiveBase + window) not yet received. */
  private readonly expected = new Map<string, number>()

  constructor(
    /** The other party. */
    readonly peer: AccountId,
    /** Whether this end opened the channel (it sends in direction 0). */
    readonly opener: boolean,
    private readonly key: Uint8Array,
    private readonly seed: Uint8Array,
    readonly window: number,
    state: { readonly sent: number; readonly receiveBase: number; readonly received: ReadonlyArray<number> } = { sent: 0, receiveBase: 0, received: [] }
  ) {
    this.sent = state.sent
    this.receiveBase = state.receiveBase
    this.received = new Set(state.received)
    this.fill()
  }

  private get sendDirection(): number {
    return this.opener ? 0 : 1
  }

  private get receiveDirection(): number {
    return this.opener ? 1 : 0
  }

  /** Encrypts `text` as the next message of this end; fails with "TooLarge" above `textBytesMax`. */
  seal(text: Uint8Array): Either.Either<Pick<Unsealed, "id" | "payload">, EphemeralError> {
    if (text.length > textBytesMax) return Either.left(new EphemeralError({ reason: "TooLarge", detail: `${text.length} bytes of text, at most ${textBytesMax}` }))
    const counter = this.sent++
    const id = messageId(this.seed, this.sendDirection, counter)
    const plaintext = new Uint8Array(sizeClassBytes - tagBytes)
    new DataView(plaintext.buffer).setUint16(0, text.length)
    plaintext.set(text, 2)
    return Either.right({ id, payload: seal(this.key, nonceOf(this.sendDirection, counter), id, plaintext) })
  }

  /** Whether `id` is one this end expects (one map lookup). */
  recognises(id: Uint8Array): boolean {
    return this.expected.has(MessageModule.idKey(id))
  }

  /** Decrypts a message of this channel; undefined if the id is not expected or the ciphertext does not open. */
  open(message: Pick<Unsealed, "id" | "payload">): Uint8Array | undefined {
    const key = MessageModule.idKey(message.id)
    const counter = this.expected.get(key)
    if (counter === undefined || message.payload.length !== sizeClassBytes) return undefined
    const plaintext = unseal(this.key, nonceOf(this.receiveDirection, counter), message.id, message.payload)
    if (plaintext === undefined) return undefined
    const length = new DataView(plaintext.buffer).getUint16(0)
    if (length > textBytesMax) return undefined
    this.accept(key, counter)
    return plaintext.slice(2, 2 + length)
  }

  /** ID0 of every id this end expects now (what an inbox RPC watches for). */
  expectedId0s(): Array<Uint8Array> {
    const counters = [...this.expected.values()]
    return counters.map((counter) => messageId(this.seed, this.receiveDirection, counter).subarray(0, MessageModule.idHalfBytes))
  }

  snapshot(): Snapshot {
    return {
      peer: this.peer,
      opener: this.opener,
      key: Buffer.from(this.key).toString("hex"),
      seed: Buffer.from(this.seed).toString("hex"),
      sent: this.sent,
      receiveBase: this.receiveBase,
      received: [...this.received]
    }
  }

  /** A channel from its snapshot. */
  static restore(snapshot: Snapshot, window: number): Session {
    return new Session(snapshot.peer, snapshot.opener, Buffer.from(snapshot.key, "hex"), Buffer.from(snapshot.seed, "hex"), window, snapshot)
  }

  private accept(key: string, counter: number): void {
    this.expected.delete(key)
    this.received.add(counter)
    while (this.received.delete(this.receiveBase)) this.receiveBase++
    this.fill()
  }

  private fill(): void {
    for (let counter = this.receiveBase; counter < this.receiveBase + this.window; counter++) {
      if (this.received.has(counter)) continue
      const key = MessageModule.idKey(messageId(this.seed, this.receiveDirection, counter))
      if (!this.expected.has(key)) this.expected.set(key, counter)
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Opening

/** What `open` returns: this end of the channel, and the opening message to stamp and send. */
export interface Opened {
  readonly session: Session
  readonly message: Pick<Unsealed, "id" | "payload">
}

const noKey = (account: AccountId) => new EphemeralError({ reason: "NoKey", detail: `account ${account} has no lattice keys on the chain` })

/** Opens a channel from `me` to `to`; fails with "NoKey" if the chain has no usable key for `to`. */
export const open = (me: Party, to: AccountId, window: number): Effect.Effect<Opened, EphemeralError, ChainView | Entropy.Entropy> =>
  Effect.gen(function*() {
    const chain = yield* ChainView
    const entropy = yield* Entropy.Entropy
    const recipient = to.toLowerCase()
    const found = yield* chain.latticeKey(recipient)
    if (Option.isNone(found)) return yield* noKey(recipient)
    const random = entropy.bytes(32 + 32 + 32 + MessageModule.idBytes)
    const [key, seed, kemRandom, id] = [random.slice(0, 32), random.slice(32, 64), random.slice(64, 96), random.slice(96)]
    const encapsulated = yield* Effect.try({
      try: () => ml_kem768.encapsulate(found.value.kemPublicKey, kemRandom),
      catch: () => new EphemeralError({ reason: "NoKey", detail: `account ${recipient} registered a malformed ML-KEM key` })
    })
    const signature = Identity.sign(
      { id: NodeId.fromPublicKey(me.dsa.publicKey), publicKey: me.dsa.publicKey, secretKey: me.dsa.secretKey },
      transcript(recipient, encapsulated.cipherText, key, seed, me.account)
    )
    const plaintext = new Uint8Array(sizeClassBytes - kemCipherTextBytes - tagBytes)
    plaintext.set(key, 0)
    plaintext.set(seed, 32)
    plaintext.set(Buffer.from(me.account, "hex"), 64)
    plaintext.set(signature, 64 + accountBytes)
    const payload = new Uint8Array(sizeClassBytes)
    payload.set(encapsulated.cipherText, 0)
    payload.set(seal(openKey(encapsulated.sharedSecret), new Uint8Array(12), id, plaintext), kemCipherTextBytes)
    return { session: new Session(recipient, true, key, seed, window), message: { id, payload } }
  })

/**
 * Tries `message` as an opening addressed to `me`. None if it is not one (wrong size, or it does not
 * open under the decapsulated key: what every message not meant for `me` looks like). Fails with
 * "BadChannel" if it opens but its origin does not check out against the chain.
 */
export const accept = (me: Party, message: Pick<Unsealed, "id" | "payload">, window: number): Effect.Effect<Option.Option<Session>, EphemeralError, ChainView> =>
  Effect.gen(function*() {
    if (message.payload.length !== sizeClassBytes || message.id.length !== MessageModule.idBytes) return Option.none()
    const cipherText = message.payload.subarray(0, kemCipherTextBytes)
    const sharedSecret = ml_kem768.decapsulate(cipherText, me.kem.secretKey)
    const plaintext = unseal(openKey(sharedSecret), new Uint8Array(12), message.id, message.payload.subarray(kemCipherTextBytes))
    if (plaintext === undefined) return Option.none()
    const key = plaintext.slice(0, 32)
    const seed = plaintext.slice(32, 64)
    const sender = Buffer.from(plaintext.subarray(64, 64 + accountBytes)).toString("hex")
    const signature = plaintext.subarray(64 + accountBytes, 64 + accountBytes + Identity.signatureBytes)
    const chain = yield* ChainView
    const senderKey = yield* chain.latticeKey(sender)
    const bad = (detail: string) => new EphemeralError({ reason: "BadChannel", detail })
    if (Option.isNone(senderKey)) return yield* bad(`opening from account ${sender}, which has no keys on the chain`)
    if (!Identity.verify(senderKey.value.dsaPublicKey, transcript(me.account, cipherText, key, seed, sender), signature)) {
      return yield* bad(`opening claiming account ${sender} is not signed by that account's key`)
    }
    return Option.some(new Session(sender, false, key, seed, window))
  })

// ---------------------------------------------------------------------------------------------------
// An inbox of channels

/** What the inbox made of a message. */
export type Received =
  | { readonly _tag: "Opened"; readonly session: Session }
  | { readonly _tag: "Text"; readonly session: Session; readonly text: Uint8Array }

/**
 * One party's channels: recognises incoming messages by their ids (one map lookup per channel), tries
 * the rest of the size class as openings, and keeps at most `channelsMax` channels (the least recently
 * used is forgotten and counted).
 */
export class Inbox {
  private readonly sessions = new Map<AccountId, Session>()
  /** Openings that opened but failed their origin check. */
  badOpenings = 0
  forgotten = 0

  constructor(readonly me: Party, readonly window: number, readonly channelsMax: number) {}

  /** The channel with `peer`, if any. */
  session(peer: AccountId): Session | undefined {
    return this.sessions.get(peer.toLowerCase())
  }

  /** Adds (or replaces) a channel. */
  add(session: Session): void {
    this.sessions.delete(session.peer)
    if (this.sessions.size >= this.channelsMax) {
      const oldest = this.sessions.keys().next()
      if (oldest.done !== true) {
        this.sessions.delete(oldest.value)
        this.forgotten++
      }
    }
    this.sessions.set(session.peer, session)
  }

  get channels(): ReadonlyArray<Session> {
    return [...this.sessions.values()]
  }

  /** ID0s of every id any channel expects. */
  expectedId0s(): Array<Uint8Array> {
    return this.channels.flatMap((session) => session.expectedId0s())
  }

  /** Processes one incoming message; None if it is not for `me`. */
  receive(message: Pick<Unsealed, "id" | "payload">): Effect.Effect<Option.Option<Received>, never, ChainView> {
    for (const session of this.sessions.values()) {
      if (!session.recognises(message.id)) continue
      const text = session.open(message)
      if (text === undefined) continue
      this.add(session)
      return Effect.succeed(Option.some({ _tag: "Text", session, text }))
    }
    return accept(this.me, message, this.window).pipe(
      Effect.map(Option.map((session): Received => {
        this.add(session)
        return { _tag: "Opened", session }
      })),
      Effect.catchAll(() => Effect.sync(() => {
        this.badOpenings++
        return Option.none<Received>()
      }))
    )
  }
}
