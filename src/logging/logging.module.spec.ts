import { redactTokenParams } from './logging.module';

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
