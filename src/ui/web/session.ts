/** The service token: asked for once, kept in sessionStorage, only ever sent in headers. */
const KEY = 'cronium.token';

export const getToken = (): string | null => sessionStorage.getItem(KEY);
export const setToken = (token: string): void => sessionStorage.setItem(KEY, token);
export const clearToken = (): void => sessionStorage.removeItem(KEY);

/** Called when the service refuses the token (401, websocket close 1008). */
let onRefused: () => void = () => undefined;
export const whenRefused = (fn: () => void): void => {
  onRefused = fn;
};
export const tokenRefused = (): void => onRefused();

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** GET on the REST API with `Authorization: Bearer`; the JSON body, or an ApiError. */
export async function api<T>(path: string): Promise<T> {
  const token = getToken();
  if (!token) throw new ApiError(401, 'no token');
  const res = await fetch(path, {
    headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' },
    cache: 'no-store',
    referrerPolicy: 'no-referrer',
  });
  const body = await res.json().catch(() => null);
  if (res.status === 401) tokenRefused();
  if (!res.ok) throw new ApiError(res.status, body?.message ?? `${res.status} ${res.statusText}`);
  return body as T;
}
