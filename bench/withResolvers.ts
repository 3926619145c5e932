/**
 * `Promise.withResolvers` for Node 20 (it arrived in Node 22). js-libp2p 3.x calls it in
 * `@libp2p/utils` ≥ 7.0.4, yamux 8's ping and `it-queue`; without it the first dial fails with
 * "Promise.withResolvers is not a function" (shared notes, perf-baselines §3). Imported first by the
 * libp2p role only, so no Weft process ever runs with it.
 */
interface Resolvers<T> {
  promise: Promise<T>
  resolve: (value: T | PromiseLike<T>) => void
  reject: (reason?: unknown) => void
}

const promise = Promise as unknown as { withResolvers?: <T>() => Resolvers<T> }
if (typeof promise.withResolvers !== "function") {
  promise.withResolvers = <T>(): Resolvers<T> => {
    let resolve!: Resolvers<T>["resolve"]
    let reject!: Resolvers<T>["reject"]
    const made = new Promise<T>((res, rej) => {
      resolve = res
      reject = rej
    })
    return { promise: made, resolve, reject }
  }
}

export {}
