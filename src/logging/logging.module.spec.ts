import type { ServerResponse } from 'node:http';
import { logFormat, redactTokenParams, requestIdFor, responseLevel } from './logging.module';

describe('redactTokenParams', () => {
  it('hides every token query parameter, whatever its case or place', () => {
    const r = redactTokenParams({
      url: '/v1/servers?limit=2&token=svc-secret-1234&x=1&TOKEN=again',
      query: { limit: '2', token: 'svc-secret-1234', TOKEN: 'again', x: '1' },
    });
    expect(r.url).toBe('/v1/servers?limit=2&token=[redacted]&x=1&TOKEN=[redacted]');
    expect(r.query).toEqual({ limit: '2', token: '[redacted]', TOKEN: '[redacted]', x: '1' });
    expect(JSON.stringify(r)).not.toMatch(/svc-secret|again/);
  });

  it('leaves a request without one alone', () => {
    const req = { url: '/v1/jobs?tokens=3', query: { tokens: '3' } };
    expect(redactTokenParams({ ...req })).toEqual(req);
  });
});

describe('requestIdFor', () => {
  const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

  it("keeps a caller's id of up to 128 safe characters", () => {
    for (const id of ['a', 'req-1', 'A.b:c_d-9', 'x'.repeat(128)])
      expect(requestIdFor(id)).toBe(id);
  });

  it('makes a new UUID for a missing, long, repeated or unsafe one', () => {
    const ids = [undefined, '', 'x'.repeat(129), ['a', 'b'], 'a, b', 'new\nline', '<script>', 'é'];
    for (const given of ids) expect(requestIdFor(given)).toMatch(UUID_RE);
    expect(requestIdFor(undefined)).not.toBe(requestIdFor(undefined));
  });
});

describe('responseLevel', () => {
  const res = (statusCode: number) => ({ statusCode }) as ServerResponse;
  it("is info for a success and a caller's mistake, error for a fault of the service", () => {
    expect([200, 202, 400, 401, 404, 409, 429].map((c) => responseLevel(res(c)))).toEqual(
      Array(7).fill('info'),
    );
    expect(responseLevel(res(500))).toBe('error');
    expect(responseLevel(res(503))).toBe('error');
    expect(responseLevel(res(200), new Error('aborted'))).toBe('error');
  });
});

describe('logFormat', () => {
  it('follows LOG_FORMAT, else pretty on a terminal outside tests, else json', () => {
    expect(logFormat({ logFormat: 'json', nodeEnv: 'development' }, true)).toBe('json');
    expect(logFormat({ logFormat: 'pretty', nodeEnv: 'production' }, false)).toBe('pretty');
    expect(logFormat({ logFormat: '', nodeEnv: 'development' }, true)).toBe('pretty');
    expect(logFormat({ logFormat: '', nodeEnv: 'production' }, true)).toBe('pretty');
    expect(logFormat({ logFormat: '', nodeEnv: 'production' }, false)).toBe('json');
    expect(logFormat({ logFormat: '', nodeEnv: 'test' }, true)).toBe('json');
  });
});
