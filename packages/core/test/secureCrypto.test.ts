import { assert, describe, it } from "@effect/vitest"
import { ml_kem768_x25519 } from "@noble/post-quantum/hybrid.js"
import { FastCheck as fc } from "effect"
import { randomBytes } from "node:crypto"
import * as Identity from "../src/Identity.js"
import * as crypto from "../src/internal/secureCrypto.js"
import * as hs from "../src/internal/secureHandshake.js"
import * as LinkPlain from "../src/LinkPlain.js"
import * as NodeId from "../src/NodeId.js"

/** Fresh random bytes. */
const fresh = (length: number) => new Uint8Array(randomBytes(length))
const seeded = (length: number, fill: number) => Uint8Array.from({ length }, (_, index) => (index * 131 + fill * 17 + 1) & 0xff)
const equal = (a: Uint8Array | undefined, b: Uint8Array | undefined) => a !== undefined && b !== undefined && crypto.equalBytes(a, b)

describe("X-Wing (ML-KEM-768 from noble, X25519 from node:crypto)", () => {
  it("matches noble's ml_kem768_x25519 byte for byte: keys, ciphertexts, shared secrets, both directions", () => {
    for (let round = 0; round < 4; round++) {
      const seed = seeded(32, round)
      const random = seeded(64, round + 100)
      const ours = crypto.xwing.keygen(seed)
      const noble = ml_kem768_x25519.keygen(seed)
      assert.isTrue(equal(ours.publicKey, noble.publicKey), "same public key from the same seed")

      const encapsulated = crypto.xwing.encapsulate(noble.publicKey, random)!
      const nobleEncapsulated = ml_kem768_x25519.encapsulate(noble.publicKey, random)
      assert.isTrue(equal(encapsulated.cipherText, nobleEncapsulated.cipherText), "same ciphertext")
      assert.isTrue(equal(encapsulated.sharedSecret, nobleEncapsulated.sharedSecret), "same shared secret")
      // Encapsulate on one side, decapsulate on the other, each way.
      assert.isTrue(equal(ml_kem768_x25519.decapsulate(encapsulated.cipherText, noble.secretKey), encapsulated.sharedSecret))
      const fromNoble = ml_kem768_x25519.encapsulate(ours.publicKey)
      assert.isTrue(equal(ours.decapsulate(fromNoble.cipherText), fromNoble.sharedSecret))
    }
  })

  it("a key pair that decapsulates again (its public key expanded from the second time on) matches noble every time, implicit rejection included", () => {
    const seed = seeded(32, 21)
    const ours = crypto.xwing.keygen(seed)
    const noble = ml_kem768_x25519.keygen(seed)
    for (let round = 0; round < 4; round++) {
      const fromNoble = ml_kem768_x25519.encapsulate(ours.publicKey, seeded(64, round + 200))
      assert.isTrue(equal(ours.decapsulate(fromNoble.cipherText)!, fromNoble.sharedSecret), `decapsulation ${2 * round + 1}`)
      const corrupted = fromNoble.cipherText.slice()
      corrupted[10] = corrupted[10]! ^ 1
      const rejected = ml_kem768_x25519.decapsulate(corrupted, noble.secretKey)
      assert.isTrue(equal(ours.decapsulate(corrupted)!, rejected), `implicit rejection, decapsulation ${2 * round + 2}`)
      assert.isFalse(equal(rejected, fromNoble.sharedSecret))
    }
  })

  it("never throws on hostile input: bad lengths, a low-order X25519 point, a corrupted ciphertext", () => {
    const pair = crypto.xwing.keygen(seeded(32, 9))
    assert.isUndefined(crypto.xwing.encapsulate(pair.publicKey.subarray(1), seeded(64, 1)))
    const lowOrder = pair.publicKey.slice()
    lowOrder.fill(0, 1184)
    assert.isUndefined(crypto.xwing.encapsulate(lowOrder, seeded(64, 1)))
    const badMlKem = pair.publicKey.slice()
    badMlKem.fill(0xff, 0, 384) // coefficients out of range fail noble's modulus check
    assert.isUndefined(crypto.xwing.encapsulate(badMlKem, seeded(64, 1)))
    assert.isUndefined(pair.decapsulate(new Uint8Array(5)))
    const { cipherText, sharedSecret } = crypto.xwing.encapsulate(pair.publicKey, seeded(64, 2))!
    const corrupted = cipherText.slice()
    corrupted[10] = corrupted[10]! ^ 1
    // ML-KEM's implicit rejection: a different (pseudo-random) secret, never an exception.
    assert.isFalse(equal(pair.decapsulate(corrupted), sharedSecret))
  })
})

describe("cells", () => {
  const psk = seeded(32, 1)
  const inner = seeded(1200, 2)

  it("a handshake cell opens under its PSK only, and any flipped byte refuses it", () => {
    const cell = crypto.sealHandshakeCell(psk, randomBytes(16), inner)
    assert.strictEqual(cell.length, 1232)
    assert.isTrue(equal(crypto.openHandshakeCell(psk, cell), inner))
    assert.isUndefined(crypto.openHandshakeCell(seeded(32, 2), cell))
    for (let at = 0; at < cell.length; at += 7) {
      const tampered = cell.slice()
      tampered[at] = tampered[at]! ^ 0x40
      assert.isUndefined(crypto.openHandshakeCell(psk, tampered), `byte ${at}`)
    }
    assert.isUndefined(crypto.openHandshakeCell(psk, cell.subarray(0, 20)))
  })

  it("a data cell carries its packet number hidden, opens under its keys only, and refuses tampering", () => {
    const secrets = crypto.directionSecrets(seeded(crypto.directionSecretBytes, 3))
    const sealer = crypto.makeSealer(secrets)
    const opener = crypto.makeOpener(secrets, 64)
    const other = crypto.makeOpener(crypto.directionSecrets(seeded(crypto.directionSecretBytes, 4)), 64)
    const cells = [0, 1, 2].map(() => crypto.sealData(sealer, inner))
    cells.forEach((cell, pn) => {
      assert.strictEqual(crypto.packetNumberOf(opener, cell), pn)
      assert.isTrue(equal(crypto.openData(opener, cell, pn), inner))
      assert.isUndefined(crypto.packetNumberOf(other, cell))
    })
    assert.isFalse(equal(cells[0]!.subarray(0, 16), cells[1]!.subarray(0, 16)), "the header changes every cell")
    for (let at = 0; at < cells[0]!.length; at += 5) {
      const tampered = cells[0]!.slice()
      tampered[at] = tampered[at]! ^ 1
      const pn = crypto.packetNumberOf(opener, tampered)
      assert.isTrue(pn === undefined || crypto.openData(opener, tampered, pn) === undefined, `byte ${at}`)
    }
  })

  it("the replay window accepts each packet number once and refuses those below it", () => {
    fc.assert(
      fc.property(fc.array(fc.nat(300), { maxLength: 400 }), (pns) => {
        const window = crypto.makeReplayWindow(64)
        const seen = new Set<number>()
        let highest = -1
        for (const pn of pns) {
          const expected = !seen.has(pn) && pn > highest - window.size
          if (crypto.replayFresh(window, pn) !== expected) return false
          if (expected) {
            crypto.replayMark(window, pn)
            seen.add(pn)
            highest = Math.max(highest, pn)
          }
        }
        return true
      }),
      { numRuns: 300, seed: 7 }
    )
  })
})

describe("cookies and the INIT replay cache", () => {
  it("a cookie is valid for its epoch and the next, expired after, invalid for another address or bytes", () => {
    const master = seeded(32, 5)
    const cookie = hs.makeCookie(master, 10, "udp:1.2.3.4:5")
    assert.strictEqual(hs.checkCookie(master, 10, "udp:1.2.3.4:5", cookie), "ok")
    assert.strictEqual(hs.checkCookie(master, 11, "udp:1.2.3.4:5", cookie), "ok")
    assert.strictEqual(hs.checkCookie(master, 12, "udp:1.2.3.4:5", cookie), "expired")
    assert.strictEqual(hs.checkCookie(master, 10, "udp:1.2.3.4:6", cookie), "invalid")
    assert.strictEqual(hs.checkCookie(seeded(32, 6), 10, "udp:1.2.3.4:5", cookie), "invalid")
    const forged = cookie.slice()
    forged[20] = forged[20]! ^ 1
    assert.strictEqual(hs.checkCookie(master, 10, "udp:1.2.3.4:5", forged), "invalid")
    assert.strictEqual(hs.checkCookie(master, 9, "udp:1.2.3.4:5", cookie), "invalid", "from the future")
  })

  it("the replay cache is bounded and refuses anything not newer than what it evicted", () => {
    const cache = hs.makeReplayCache(3)
    const nonce = (n: number) => seeded(32, n)
    for (let n = 0; n < 3; n++) hs.record(cache, nonce(n), 100 + n)
    assert.isTrue(hs.isReplay(cache, nonce(1), 101))
    assert.isFalse(hs.isReplay(cache, nonce(9), 150))
    hs.record(cache, nonce(3), 103)
    assert.strictEqual(cache.seen.size, 3)
    assert.isTrue(hs.isReplay(cache, nonce(0), 100), "evicted, but refused by the watermark")
    assert.isFalse(hs.isReplay(cache, nonce(7), 104))
    hs.sweepReplays(cache, 103)
    assert.strictEqual(cache.seen.size, 1)
  })
})

describe("certificates", () => {
  const psk = seeded(32, 3)
  const countingSuite = () => {
    const counts = { verify: 0 }
    const suite: hs.Suite = {
      psk,
      kem: crypto.xwing,
      signatures: { ...LinkPlain.mlDsa65, verify: (...args) => (counts.verify++, LinkPlain.mlDsa65.verify(...args)) }
    }
    return { suite, counts }
  }
  const identities = [1, 2, 3].map((n) => Identity.generate(seeded(32, n)))

  it("a node's credentials follow its identity: the same static key and certificate every time, naming its node ID", () => {
    const { suite } = countingSuite()
    const first = hs.makeCredentials(suite, identities[0]!)
    const again = hs.makeCredentials(suite, identities[0]!)
    const other = hs.makeCredentials(suite, identities[1]!)
    assert.isTrue(crypto.equalBytes(first.certificate, again.certificate))
    assert.isTrue(crypto.equalBytes(first.staticKey.publicKey, again.staticKey.publicKey))
    assert.isFalse(crypto.equalBytes(first.staticKey.publicKey, other.staticKey.publicKey))
    assert.strictEqual(first.certificate.length, hs.certificateBytes(suite))
    const certified = hs.checkCertificate(suite, hs.makeCertificateCache(4), first.certificate)
    assert.strictEqual(certified?.id, identities[0]!.id)
    assert.isTrue(crypto.equalBytes(certified!.kemPublicKey, first.staticKey.publicKey))
  })

  it("the cache answers a certificate verified before, stays bounded, and forgets the least recently used first", () => {
    const { counts, suite } = countingSuite()
    const [one, two, three] = identities.map((identity) => hs.makeCredentials(suite, identity).certificate)
    const cache = hs.makeCertificateCache(2)
    const check = (certificate: Uint8Array) => hs.checkCertificate(suite, cache, certificate)?.id
    assert.strictEqual(check(one!), identities[0]!.id)
    assert.strictEqual(check(one!), identities[0]!.id)
    assert.strictEqual(counts.verify, 1, "the second check came from the cache")
    check(two!)
    check(one!) // one is now the most recently used
    check(three!) // evicts two
    assert.deepStrictEqual([cache.verified.size, counts.verify], [2, 3])
    check(one!)
    assert.strictEqual(counts.verify, 3)
    check(two!)
    assert.deepStrictEqual([cache.verified.size, counts.verify], [2, 4], "two was evicted, so it was verified again")
    const none = hs.makeCertificateCache(0)
    hs.checkCertificate(suite, none, one!)
    hs.checkCertificate(suite, none, one!)
    assert.deepStrictEqual([none.verified.size, counts.verify], [0, 6])
  })

  it("a tampered, truncated or mismatched certificate is refused and never cached", () => {
    const { suite } = countingSuite()
    const cache = hs.makeCertificateCache(8)
    const credentials = hs.makeCredentials(suite, identities[0]!)
    for (const at of [0, 1951, 1952, 3000, credentials.certificate.length - 1]) {
      const tampered = credentials.certificate.slice()
      tampered[at] = tampered[at]! ^ 0x10
      assert.isUndefined(hs.checkCertificate(suite, cache, tampered), `byte ${at}`)
    }
    assert.isUndefined(hs.checkCertificate(suite, cache, credentials.certificate.subarray(1)))
    // Signed by the right key, but naming another node.
    const kem = credentials.staticKey.publicKey
    const forAnother = hs.signCertificate(suite, identities[0]!, identities[0]!.publicKey, NodeId.toBytes(identities[1]!.id), kem)
    assert.isUndefined(hs.checkCertificate(suite, cache, forAnother))
    assert.strictEqual(cache.verified.size, 0)
  })
})

describe("the handshake's messages", () => {
  const psk = seeded(32, 4)
  const suite: hs.Suite = { psk, kem: crypto.xwing, signatures: LinkPlain.mlDsa65 }
  const [initiator, responder] = [5, 6].map((n) => hs.makeCredentials(suite, Identity.generate(seeded(32, n))))
  const run = () => {
    const keyPair = crypto.xwing.keygen(fresh(32))
    const fields: hs.Init = {
      rekey: false, id: NodeId.toBytes(initiator!.id), nonce: fresh(32), timeMs: 0,
      publicKey: keyPair.publicKey, cookie: undefined
    }
    const initFrame = hs.encodeInit(crypto.xwing, fields)
    const state: hs.Initiating = { initFrame, nonce: fields.nonce, keyPair }
    const responded = hs.respond(suite, responder!, initFrame, fields, fresh(32), fresh(64))!
    const cache = hs.makeCertificateCache(4)
    const finished = hs.finish(suite, initiator!, cache, state, responded.frame, fresh(64)) as hs.Finished
    const confirmed = hs.confirm(suite, responder!, cache, responded, fields.id, finished.frame, fresh(64)) as hs.Confirmed
    return { state, responded, finished, confirmed, cache, id: fields.id }
  }

  it("RESP, FINISH and CONFIRM give both sides the same session keys, and the initiator its peer's node ID", () => {
    const { confirmed, finished } = run()
    assert.strictEqual(finished.peer, responder!.id)
    const secrets = hs.complete(suite, initiator!, finished, confirmed.frame)
    assert.notTypeOf(secrets, "string")
    const keys = secrets as hs.SessionSecrets
    assert.isTrue(crypto.equalBytes(keys.initiatorToResponder.key, confirmed.secrets.initiatorToResponder.key))
    assert.isTrue(crypto.equalBytes(keys.responderToInitiator.hp, confirmed.secrets.responderToInitiator.hp))
    assert.isFalse(crypto.equalBytes(keys.initiatorToResponder.key, keys.responderToInitiator.key))
    // RESP and FINISH carry a certificate each; CONFIRM only a KEM ciphertext.
    assert.deepStrictEqual([hs.respBytes(suite), hs.finishBytes(suite), hs.confirmBytes(suite)], [7678, 7694, 1201])
  })

  it("random and mutated RESP, FINISH and CONFIRM frames are refused with a reason, never a throw", () => {
    const { cache, confirmed, finished, id, responded, state } = run()
    const random = fresh(64)
    const mutate = (frame: Uint8Array) =>
      fc.tuple(fc.nat(frame.length - 1), fc.integer({ min: 1, max: 255 })).map(([at, xor]) => {
        const copy = frame.slice()
        copy[at] = copy[at]! ^ xor
        return copy
      })
    const frames = (frame: Uint8Array) =>
      fc.oneof(
        mutate(frame),
        fc.uint8Array({ minLength: frame.length, maxLength: frame.length }),
        fc.uint8Array({ maxLength: 64 })
      )
    const refused = (frame: Uint8Array, step: (frame: Uint8Array) => unknown) =>
      fc.assert(fc.property(frames(frame), (mutated) => typeof step(mutated) === "string"), { numRuns: 60, seed: frame.length })
    refused(responded.frame, (frame) => hs.finish(suite, initiator!, cache, state, frame, random))
    refused(finished.frame, (frame) => hs.confirm(suite, responder!, cache, responded, id, frame, random))
    refused(confirmed.frame, (frame) => hs.complete(suite, initiator!, finished, frame))
  })
})
