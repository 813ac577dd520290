// Outgoing signatures (src/outbox/sign.ts), checked with the standardwebhooks package's verifier as
// a receiver would: one secret, a rotation (two), and what must not verify.
import t from 'tap';
import { Webhook } from 'standardwebhooks';
import { generateSecret, secretProblem, signMessage } from '../src/outbox/sign.ts';

const body = JSON.stringify({ type: 'customer.updated', data: { id: 'cus_1', name: 'Zoë ✓' } });

t.test('one secret: the receiver verifies the body, and the headers carry id and Unix seconds', async (t) => {
  const secret = generateSecret();
  const now = new Date();
  const headers = signMessage({ id: 'msg_1', timestamp: now, body, secrets: [secret] });
  t.equal(headers['webhook-id'], 'msg_1');
  t.equal(headers['webhook-timestamp'], String(Math.floor(now.getTime() / 1000)));
  t.match(headers['webhook-signature'], /^v1,[A-Za-z0-9+/]+=*$/);
  t.same(new Webhook(secret).verify(body, headers), JSON.parse(body));
});

t.test('rotation: both signatures are sent and a receiver holding either secret verifies', async (t) => {
  const current = generateSecret();
  const previous = generateSecret();
  const headers = signMessage({ id: 'msg_2', timestamp: new Date(), body, secrets: [current, previous] });
  const parts = headers['webhook-signature'].split(' ');
  t.equal(parts.length, 2, 'two space-separated signatures');
  t.not(parts[0], parts[1]);
  t.same(new Webhook(current).verify(body, headers), JSON.parse(body), 'receiver with the new secret');
  t.same(new Webhook(previous).verify(body, headers), JSON.parse(body), 'receiver still on the old secret');
  t.throws(() => new Webhook(generateSecret()).verify(body, headers), /No matching signature/, 'any other secret fails');
});

t.test('what must not verify: another body, another id, a retry under the same signature', async (t) => {
  const secret = generateSecret();
  const receiver = new Webhook(secret);
  const headers = signMessage({ id: 'msg_3', timestamp: new Date(), body, secrets: [secret] });
  t.throws(() => receiver.verify(body.replace('cus_1', 'cus_2'), headers), /No matching signature/);
  t.throws(() => receiver.verify(body, { ...headers, 'webhook-id': 'msg_4' }), /No matching signature/);
  const later = String(Number(headers['webhook-timestamp']) + 1);
  t.throws(() => receiver.verify(body, { ...headers, 'webhook-timestamp': later }), /No matching signature/);
  const stale = signMessage({ id: 'msg_3', timestamp: new Date(Date.now() - 3600_000), body, secrets: [secret] });
  t.throws(() => receiver.verify(body, stale), /too old/, 'an attempt is signed with its own time');
});

t.test('generated secrets are whsec_ + base64 of 32 random bytes (24 to 64 on request)', async (t) => {
  const a = generateSecret();
  t.match(a, /^whsec_[A-Za-z0-9+/]+=*$/);
  t.equal(Buffer.from(a.slice(6), 'base64').length, 32);
  t.not(a, generateSecret(), 'random');
  t.equal(Buffer.from(generateSecret(24).slice(6), 'base64').length, 24);
  t.equal(secretProblem(a), null);
  t.throws(() => generateSecret(16), /24 to 64 random bytes/);
});

t.test('bad secrets and ids get a clear error that never echoes the secret', async (t) => {
  const short = 'whsec_' + Buffer.alloc(16, 7).toString('base64');
  const cases: [string, RegExp][] = [
    ['sk_live_abcdef', /starts with 'whsec_'/],
    ['whsec_not base64!', /standard base64/],
    [short, /24 to 64 bytes once decoded, this one 16/],
  ];
  for (const [secret, message] of cases) {
    t.match(secretProblem(secret), message, secret.slice(0, 8));
    const err = t.throws(() => signMessage({ id: 'msg_5', timestamp: new Date(), body, secrets: [generateSecret(), secret] })) as Error;
    t.match(err.message, /^secret 2 of 2: /);
    t.notOk(err.message.includes(secret), 'the secret is not in the message');
  }
  const secrets = [generateSecret()];
  t.throws(() => signMessage({ id: 'msg.5', timestamp: new Date(), body, secrets }), /without spaces or dots/);
  t.throws(() => signMessage({ id: '', timestamp: new Date(), body, secrets }), /1 to 255/);
  t.throws(() => signMessage({ id: 'msg_5', timestamp: new Date(Number.NaN), body, secrets }), /not a valid date/);
  t.throws(() => signMessage({ id: 'msg_5', timestamp: new Date(), body, secrets: [] }), /got 0 secrets/);
  t.throws(() => signMessage({ id: 'msg_5', timestamp: new Date(), body, secrets: [...secrets, ...secrets, ...secrets] }), /got 3/);
});
