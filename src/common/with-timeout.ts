/**
 * `p`, or a rejection once `ms` has passed without an answer (`p` itself carries on).
 * `timeoutError` makes that rejection; by default "no answer within <ms> ms".
 */
export function withTimeout<T>(
  p: Promise<T>,
  ms: number,
  timeoutError: () => Error = () => new Error(`no answer within ${ms} ms`),
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(timeoutError()), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}
