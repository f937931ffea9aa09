import { createHmac } from 'node:crypto';
import { ExecutionTokensService } from './execution-tokens.service';

const config: any = { auth: { jwtSecret: 's'.repeat(48), jwtMarginSeconds: 60 } };
const claims = {
  jobId: 'j',
  executionId: 'e',
  serverId: 's',
  userId: 'u',
  eventId: null,
  jti: 't1',
};
const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
const decode = (tok: string) => JSON.parse(Buffer.from(tok.split('.')[1], 'base64url').toString());

describe('ExecutionTokensService', () => {
  const svc = new ExecutionTokensService(config);

  it('issues HS256 tokens with the spec claims, issuer, audience and expiry = timeout + margin', () => {
    const tok = svc.issue(claims, 100);
    const header = JSON.parse(Buffer.from(tok.split('.')[0], 'base64url').toString());
    expect(header.alg).toBe('HS256');
    const p = decode(tok);
    expect(p).toMatchObject({
      jobId: 'j',
      executionId: 'e',
      serverId: 's',
      userId: 'u',
      eventId: null,
      jti: 't1',
    });
    expect(p.iss).toBe('cronium-orchestrator');
    expect(p.aud).toBe('cronium-runtime');
    expect(p.exp - p.iat).toBe(160);
    expect(svc.verify(tok)).toEqual(claims);
  });

  it('signs with the configured secret itself: an HMAC over header.payload with it matches', () => {
    const tok = svc.issue(claims, 100);
    const [h, p, s] = tok.split('.');
    const mac = createHmac('sha256', config.auth.jwtSecret).update(`${h}.${p}`).digest('base64url');
    expect(s).toBe(mac);
    // and another process with the same secret (a replica) takes it
    expect(new ExecutionTokensService(config).verify(tok)).toEqual(claims);
  });

  it('refuses tokens signed another way or for someone else', () => {
    const tok = svc.issue(claims, 100);
    const [h, p] = tok.split('.');
    const sign = (hp: string, alg = 'sha256', key = config.auth.jwtSecret) =>
      `${hp}.${createHmac(alg, key).update(hp).digest('base64url')}`;
    const payload = decode(tok);
    expect(
      svc.verify(`${h}.${b64({ ...payload, executionId: 'other' })}.${tok.split('.')[2]}`),
    ).toBeNull();
    expect(svc.verify(`${b64({ alg: 'none', typ: 'JWT' })}.${p}.`)).toBeNull();
    expect(svc.verify(sign(`${b64({ alg: 'HS384', typ: 'JWT' })}.${p}`, 'sha384'))).toBeNull();
    expect(svc.verify(sign(`${h}.${b64({ ...payload, aud: 'x' })}`))).toBeNull();
    expect(svc.verify(sign(`${h}.${b64({ ...payload, iss: 'x' })}`))).toBeNull();
    expect(svc.verify(sign(`${h}.${b64({ ...payload, exp: 1 })}`))).toBeNull();
    const noExp = { ...payload };
    delete noExp.exp;
    expect(svc.verify(sign(`${h}.${b64(noExp)}`))).toBeNull(); // never expires: not ours
    expect(
      svc.verify(sign(`${h}.${p}`, 'sha256', 'another-secret-another-secret-another')),
    ).toBeNull();
    expect(svc.verify(sign(`${h}.${p}`))).toEqual(claims); // control: same claims re-signed properly
    expect(svc.verify('garbage')).toBeNull();
  });
});
