/** What the roles share. */

/** What a receiving server reports when asked for its count: bytes so far, on its own clock. */
export interface Count {
  readonly bytes: number
  readonly atMs: number
}

/** The request every round-trip test sends and every server echoes. */
export const requestBytes = 32

/** Resolves `take(n)` once n more bytes than were taken so far have been `feed`-ed (from a data callback). */
export const byteWaiter = () => {
  let received = 0
  let want = 0
  let wake: (() => void) | undefined
  return {
    feed: (bytes: number): void => {
      received += bytes
      if (wake !== undefined && received >= want) {
        const done = wake
        wake = undefined
        done()
      }
    },
    take: (bytes: number): Promise<void> => {
      want += bytes
      if (received >= want) return Promise.resolve()
      return new Promise<void>((resolve) => {
        wake = resolve
      })
    }
  }
}
