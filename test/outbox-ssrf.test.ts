// SSRF guard (src/outbox/ssrf.ts): which addresses are refused, the allowlist, the registration
// check, and the connect-time lookup against a real local HTTP server that must never be reached.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import {
  classifyAddress,
  createSafeLookup,
  parseNetworkList,
  SsrfError,
  validateSubscriptionUrl,
  type AddressClass,
} from '../src/outbox/ssrf.ts';

const NONE = parseNetworkList('');
const LOOPBACK = parseNetworkList('127.0.0.0/8, ::1/128');

t.test('every non-public class of address is refused; public ones pass', async (t) => {
  const table: [string, AddressClass][] = [
    ['8.8.8.8', 'public'],
    ['93.184.215.14', 'public'],
    ['2606:4700:4700::1111', 'public'],
    ['2a00:1450:4001:80b::200e', 'public'],
    ['::ffff:8.8.8.8', 'public'], // IPv4-mapped: judged by the IPv4 address
    ['64:ff9b::8.8.8.8', 'public'], // NAT64 to a public address (IPv6-only hosts behind DNS64)
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['::1', 'loopback'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['0:0:0:0:0:ffff:7f00:0001', 'loopback'],
    ['64:ff9b::7f00:1', 'loopback'],
    ['10.1.2.3', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['::ffff:192.168.1.1', 'private'],
    ['fc00::1', 'private'],
    ['fd12:3456::1', 'private'],
    ['fec0::1', 'private'],
    ['64:ff9b:1::1', 'private'],
    ['169.254.1.1', 'link-local'],
    ['fe80::1', 'link-local'],
    ['fe80::1%eth0', 'link-local'],
    ['169.254.169.254', 'metadata'],
    ['::ffff:169.254.169.254', 'metadata'],
    ['64:ff9b::a9fe:a9fe', 'metadata'],
    ['169.254.170.2', 'metadata'],
    ['168.63.129.16', 'metadata'],
    ['100.100.100.200', 'metadata'],
    ['fd00:ec2::254', 'metadata'],
    ['100.64.0.1', 'cgnat'],
    ['100.127.255.255', 'cgnat'],
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'unspecified'],
    ['::', 'unspecified'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['ff02::1', 'multicast'],
    ['ff0e::1', 'multicast'],
    ['255.255.255.255', 'broadcast'],
    ['192.0.2.1', 'documentation'],
    ['198.51.100.7', 'documentation'],
    ['203.0.113.9', 'documentation'],
    ['2001:db8::1', 'documentation'],
    ['3fff::1', 'documentation'],
    ['198.18.0.1', 'benchmarking'],
    ['198.19.255.255', 'benchmarking'],
    ['2001:2::1', 'benchmarking'],
    ['192.0.0.192', 'reserved'],
    ['192.88.99.1', 'reserved'],
    ['240.0.0.1', 'reserved'],
    ['::2', 'reserved'], // IPv4-compatible (deprecated)
    ['100::1', 'reserved'],
    ['2001::1', 'reserved'], // Teredo
    ['2002:7f00:1::', 'reserved'], // 6to4
    ['4000::1', 'reserved'], // outside 2000::/3: unallocated
  ];
  for (const [address, expected] of table) t.equal(classifyAddress(address), expected, address);
  // Neighbours of the ranges stay public: the prefixes are not wider than they should be.
  for (const address of ['172.32.0.1', '100.128.0.1', '198.20.0.1', '11.0.0.1', '223.255.255.255']) {
    t.equal(classifyAddress(address), 'public', address);
  }
  t.throws(() => classifyAddress('localhost'), /not an IP address/);
});

t.test('the allowlist lets its networks through, IPv4-mapped forms included, and nothing else', async (t) => {
  t.same(LOOPBACK.cidrs, ['127.0.0.0/8', '::1/128']);
  t.ok(LOOPBACK.has('127.0.0.1'));
  t.ok(LOOPBACK.has('127.9.9.9'));
  t.ok(LOOPBACK.has('::1'));
  t.ok(LOOPBACK.has('::ffff:127.0.0.1'));
  t.notOk(LOOPBACK.has('10.0.0.1'));
  t.notOk(LOOPBACK.has('169.254.169.254'));
  t.notOk(NONE.has('127.0.0.1'));
  t.same(parseNetworkList('10.0.0.1').cidrs, ['10.0.0.1/32'], 'a bare address is one host');
  t.same(parseNetworkList(' fd00::/8 ,, 192.168.0.0/16 ,').cidrs, ['fd00::/8', '192.168.0.0/16']);
});

t.test('a bad CIDR is named with what a good one looks like', async (t) => {
  const cases: [string, RegExp][] = [
    ['10.0.0.0/33', /'10\.0\.0\.0\/33' is not a network: an IPv4 prefix length is 0 to 32/],
    ['::/129', /an IPv6 prefix length is 0 to 128/],
    ['10.0.0.0/eight', /the prefix length after '\/' is a number/],
    ['10.0.0.0/', /the prefix length after '\/' is a number/],
    ['localhost/8', /'localhost\/8' is not a network: write an address and a prefix length, like 10\.0\.0\.0\/8/],
    ['10.0.0/8', /is not a network/],
    ['1.2.3.4/8/1', /is not a network/],
    ['fe80::%eth0/64', /is not a network/],
    ['127.0.0.0/8, 300.1.1.1/8', /'300\.1\.1\.1\/8' is not a network/],
  ];
  for (const [text, message] of cases) t.throws(() => parseNetworkList(text), message, text);
});

t.test('registration: scheme, credentials and resolved addresses, each with a clear message', async (t) => {
  const strict = { allowHttp: false, allowNetworks: NONE };
  const refused: [string, RegExp][] = [
    ['not a url', /not an absolute URL/],
    ['/relative/path', /not an absolute URL/],
    ['http://93.184.215.14/hook', /uses http: deliveries go over https only \(OUTBOX_ALLOW_HTTP=true/],
    ['ftp://93.184.215.14/hook', /scheme is 'ftp'/],
    ['file:///etc/passwd', /scheme is 'file'/],
    ['https://user:s3cr3t@93.184.215.14/hook', /contains credentials .* custom header/],
    ['https://tok3n-s3cr3t@93.184.215.14/hook', /contains credentials/],
    ['https://localhost/hook', /localhost resolves to 127\.0\.0\.1, a loopback address: .*OUTBOX_ALLOW_NETWORKS/],
    ['https://127.0.0.1:8443/hook', /127\.0\.0\.1 is a loopback address/],
    ['https://2130706433/hook', /127\.0\.0\.1 is a loopback address/], // decimal IPv4, normalised by URL
    ['https://0x7f.1/hook', /127\.0\.0\.1 is a loopback address/],
    ['https://[::1]/hook', /::1 is a loopback address/],
    ['https://[::ffff:169.254.169.254]/latest/meta-data', /is a cloud metadata service address/],
    ['https://169.254.169.254/latest/meta-data', /169\.254\.169\.254 is a cloud metadata service address/],
    ['https://10.0.0.5/hook', /a private-network address/],
    ['https://100.64.1.1/hook', /carrier-grade NAT/],
    ['https://0.0.0.0/hook', /unspecified/],
    ['https://[fe80::1]/hook', /link-local/],
    ['https://no-such-host.invalid/hook', /the host no-such-host\.invalid does not resolve \(ENOTFOUND\)/],
    [`https://example.com/${'a'.repeat(2100)}`, /longer than 2048/],
  ];
  for (const [url, message] of refused) {
    const result = await validateSubscriptionUrl(url, strict);
    t.equal(result.ok, false, url.slice(0, 60));
    if (!result.ok) {
      t.match(result.error, message, url.slice(0, 60));
      t.notOk(result.error.includes('s3cr3t'), 'credentials are not echoed');
    }
  }
  for (const url of ['https://93.184.215.14/hook', 'https://[2606:4700:4700::1111]:8443/hook?x=1']) {
    const result = await validateSubscriptionUrl(url, strict);
    t.ok(result.ok, url);
  }
});

t.test('registration: the allowlist and OUTBOX_ALLOW_HTTP let local development through', async (t) => {
  const local = { allowHttp: true, allowNetworks: LOOPBACK };
  for (const url of ['http://localhost:3001/hook', 'http://127.0.0.1:3001/hook', 'https://[::1]/hook']) {
    const result = await validateSubscriptionUrl(url, local);
    t.ok(result.ok, url);
    if (result.ok) t.equal(result.url.href, url);
  }
  const stillRefused = await validateSubscriptionUrl('http://10.0.0.5/hook', local);
  t.match(stillRefused, { ok: false, error: /private-network/ }, 'only the listed networks');
});

// A real receiver on 127.0.0.1 that counts every connection it gets.
async function startReceiver(t: Test) {
  const seen = { connections: 0, requests: 0 };
  const server = http.createServer((_req, res) => {
    seen.requests++;
    res.end('ok');
  });
  server.on('connection', () => seen.connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  return { port: (server.address() as AddressInfo).port, seen };
}

function post(url: string, agent: http.Agent): Promise<{ status: number } | { error: Error }> {
  return new Promise((resolve) => {
    const req = http.request(url, { method: 'POST', agent }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode! }));
    });
    req.on('error', (error) => resolve({ error }));
    req.end('{}');
  });
}

t.test('connect time: a name resolving to loopback is refused inside the socket lookup', async (t) => {
  const receiver = await startReceiver(t);
  const agent = new http.Agent({ lookup: createSafeLookup(NONE) });
  t.teardown(() => agent.destroy());
  const result = await post(`http://localhost:${receiver.port}/hook`, agent);
  t.ok('error' in result, 'the request fails');
  if ('error' in result) {
    t.type(result.error, SsrfError);
    t.match(result.error, { code: 'ERR_OUTBOX_SSRF', host: 'localhost', address: '127.0.0.1', addressClass: 'loopback' });
    t.match(result.error.message, /localhost resolves to 127\.0\.0\.1, a loopback address/);
  }
  t.equal(receiver.seen.connections, 0, 'the receiver never saw a connection');
});

t.test('connect time: allowed networks connect, with or without the autoSelectFamily lookup', async (t) => {
  const receiver = await startReceiver(t);
  for (const autoSelectFamily of [true, false]) {
    const agent = new http.Agent({ lookup: createSafeLookup(LOOPBACK), autoSelectFamily } as http.AgentOptions);
    const result = await post(`http://localhost:${receiver.port}/hook`, agent);
    agent.destroy();
    t.same(result, { status: 200 }, `autoSelectFamily ${autoSelectFamily}`);
  }
  t.equal(receiver.seen.requests, 2);
});

t.test('connect time: a name that does not resolve is a DNS error, not an SSRF refusal', async (t) => {
  const agent = new http.Agent({ lookup: createSafeLookup(NONE) });
  t.teardown(() => agent.destroy());
  const result = await post('http://no-such-host.invalid/hook', agent);
  t.ok('error' in result && !(result.error instanceof SsrfError) && (result.error as NodeJS.ErrnoException).code === 'ENOTFOUND');
});
