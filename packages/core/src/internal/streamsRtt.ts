/**
 * Round-trip time estimation and the retransmission timeout, as RFC 6298 §2 specifies them, with
 * QUIC's two refinements (RFC 9002 §5): the peer's reported ACK delay is subtracted from a sample
 * when that leaves it above the minimum RTT, and the timeout allows for the peer's largest ACK delay.
 * Packet numbers are never reused, so every sample is unambiguous (Karn's problem does not arise).
 */

/** SRTT, RTTVAR and the timeout derived from them. */
export class RttEstimator {
  smoothedMs = 0
  variationMs = 0
  latestMs = 0
  minMs = Infinity
  samples = 0

  /** Takes one sample: the time from sending a packet to receiving its ACK, and the delay the peer reported. */
  update(sampleMs: number, ackDelayMs: number): void {
    const sample = Math.max(0, sampleMs)
    this.latestMs = sample
    this.minMs = Math.min(this.minMs, sample)
    const adjusted = sample - ackDelayMs >= this.minMs ? sample - ackDelayMs : sample
    if (this.samples === 0) {
      this.smoothedMs = adjusted
      this.variationMs = adjusted / 2
    } else {
      // RTTVAR first, with the old SRTT (RFC 6298 §2.3).
      this.variationMs = 0.75 * this.variationMs + 0.25 * Math.abs(this.smoothedMs - adjusted)
      this.smoothedMs = 0.875 * this.smoothedMs + 0.125 * adjusted
    }
    this.samples++
  }

  /** RTO = SRTT + max(G, 4·RTTVAR) + max ACK delay, within [min, max]; `initialMs` before any sample. */
  timeoutMs(initialMs: number, minMs: number, maxMs: number, ackDelayMaxMs: number): number {
    if (this.samples === 0) return Math.min(maxMs, Math.max(minMs, initialMs))
    const computed = this.smoothedMs + Math.max(1, 4 * this.variationMs) + ackDelayMaxMs
    return Math.min(maxMs, Math.max(minMs, computed))
  }

  /** How late a packet may be, behind a later acknowledged one, before it counts as lost (9/8 RTT). */
  lossDelayMs(initialMs: number): number {
    const basis = this.samples === 0 ? initialMs : Math.max(this.smoothedMs, this.latestMs)
    return Math.max(1, (9 / 8) * basis)
  }
}
