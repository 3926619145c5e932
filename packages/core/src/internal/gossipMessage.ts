/**
 * The gossip wire model shared by every dissemination engine (Weft, flood, GossipSub-like): message
 * kinds, their shapes, content-hash ids and the byte sizes the simulator and the token buckets charge.
 *
 * Messages are plain immutable objects: an engine forwards the very DATA object it received (no copy),
 * and a control message's id array may be shared by several receivers, so nobody mutates one.
 */
import { createHash } from "node:crypto"

/** Message kinds (numbers, so an engine's dispatch is a jump table). */
export const Kind = {
  Data: 0,
  Ihave: 1,
  Iwant: 2,
  Graft: 3,
  Prune: 4,
  Idontwant: 5,
  Subscribe: 6,
  Tree: 7
} as const

/** One of `Kind`. */
export type Kind = typeof Kind[keyof typeof Kind]

/**
 * An application message. `id` is the content hash of topic and payload: the service computes it when it
 * decodes DATA at the edge and never trusts an id from the wire, so a peer cannot poison seen-caches.
 */
export interface Data<K, D> {
  readonly kind: typeof Kind.Data
  readonly topic: string
  readonly id: K
  readonly data: D
  /** Payload size in bytes (size limits, token buckets, byte accounting). */
  readonly bytes: number
}

/** "I have these messages": lazy announcement (Plumtree) or heartbeat gossip (GossipSub). */
export interface Ihave<K> {
  readonly kind: typeof Kind.Ihave
  readonly topic: string
  readonly ids: ReadonlyArray<K>
}

/** "Send me these messages", without changing the dissemination tree or mesh. */
export interface Iwant<K> {
  readonly kind: typeof Kind.Iwant
  readonly ids: ReadonlyArray<K>
}

/** "Make me an eager (tree / mesh) peer on this topic", optionally also fetching `ids`. */
export interface Graft<K> {
  readonly kind: typeof Kind.Graft
  readonly topic: string
  readonly ids: ReadonlyArray<K>
}

/** "Stop pushing this topic to me eagerly" (announcements still welcome). */
export interface Prune {
  readonly kind: typeof Kind.Prune
  readonly topic: string
}

/** "I already have these; do not send them to me" (GossipSub v1.2 IDONTWANT). */
export interface Idontwant<K> {
  readonly kind: typeof Kind.Idontwant
  readonly ids: ReadonlyArray<K>
}

/** The sender's topic subscriptions changed (sent to every peer at session start and on change). */
export interface Subscribe {
  readonly kind: typeof Kind.Subscribe
  readonly topics: ReadonlyArray<string>
  readonly subscribe: boolean
}

/** Weft's tree advertisement for one topic (see `gossipTree.ts`); `P` is a peer id. */
export interface Tree<P> {
  readonly kind: typeof Kind.Tree
  readonly topic: string
  readonly root: P
  readonly seq: number
  readonly dist: number
  readonly parentIsMe: boolean
}

/** Any gossip message; `P` (a peer id) appears only in tree advertisements. */
export type Message<K, D, P = unknown> =
  | Data<K, D>
  | Ihave<K>
  | Iwant<K>
  | Graft<K>
  | Prune
  | Idontwant<K>
  | Subscribe
  | Tree<P>

/** Bytes one message id takes on the wire (a SHA-256). */
export const idBytes = 32

/** Bytes of framing per message (kind, lengths, topic reference) charged by the byte estimates. */
export const headerBytes = 8

/** The estimated wire size of a message: what token buckets charge and the simulator counts. */
export const wireBytes = <K, D, P>(message: Message<K, D, P>): number => {
  switch (message.kind) {
    case Kind.Data:
      return headerBytes + idBytes + message.topic.length + message.bytes
    case Kind.Ihave:
    case Kind.Graft:
      return headerBytes + message.topic.length + idBytes * message.ids.length
    case Kind.Iwant:
    case Kind.Idontwant:
      return headerBytes + idBytes * message.ids.length
    case Kind.Prune:
      return headerBytes + message.topic.length
    case Kind.Subscribe:
      return headerBytes + message.topics.reduce((sum, topic) => sum + 1 + topic.length, 0)
    case Kind.Tree:
      // root id, seq (4), dist (1), flag (1)
      return headerBytes + message.topic.length + idBytes + 6
  }
}

/** The content-addressed id of a message: SHA-256 over the topic's length, the topic, and the payload (hex). */
export const messageId = (topic: string, payload: Uint8Array): string => {
  const topicBytes = Buffer.from(topic, "utf8")
  const length = Buffer.allocUnsafe(4)
  // The length prefix keeps (topic "ab", payload "c") and (topic "a", payload "bc") apart.
  length.writeUInt32BE(topicBytes.length, 0)
  return createHash("sha256").update(length).update(topicBytes).update(payload).digest("hex")
}
