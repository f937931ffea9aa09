import { notifyUrlProblem, shownUrl } from './allow-list';

describe('notifyUrlProblem', () => {
  const list = ['hooks.example.com', '127.0.0.1:8080', 'https://api.example.org/cronium/'];

  it.each([
    'https://hooks.example.com/x',
    'http://hooks.example.com:9000/any?q=1',
    'http://127.0.0.1:8080/hook',
    'https://api.example.org/cronium/done',
    'https://api.example.org/cronium/',
  ])('allows %s', (url) => expect(notifyUrlProblem(url, list)).toBeNull());

  it.each([
    ['https://evil.example.com/x', 'not in notifications.allowList'],
    ['https://hooks.example.com.evil.net/x', 'not in notifications.allowList'],
    ['http://127.0.0.1:8081/hook', 'not in notifications.allowList'],
    ['http://api.example.org/cronium/done', 'not in notifications.allowList'],
    ['https://api.example.org/cronium-other', 'not in notifications.allowList'],
    ['https://api.example.org/', 'not in notifications.allowList'],
    ['ftp://hooks.example.com/x', 'http or https'],
    ['file:///etc/passwd', 'http or https'],
    ['hooks.example.com/x', 'absolute http or https URL'],
    ['https://user:pw@hooks.example.com/x', 'credentials'],
  ])('refuses %s', (url, why) => expect(notifyUrlProblem(url, list)).toContain(why));

  it('an empty allow list refuses everything and says so', () => {
    expect(notifyUrlProblem('https://hooks.example.com/', [])).toContain(
      'notifications.allowList is empty',
    );
  });

  it('a host entry with a port matches the default port too', () => {
    expect(notifyUrlProblem('https://h.example/x', ['h.example:443'])).toBeNull();
    expect(notifyUrlProblem('http://h.example/x', ['h.example:443'])).not.toBeNull();
  });

  it('shows no credentials, query or fragment', () => {
    expect(shownUrl('https://u:p@h.example:8443/a/b?token=s#f')).toBe('https://h.example:8443/a/b');
  });
});
