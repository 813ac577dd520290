// Keeps deliveries away from our own networks (SSRF): classifies IP addresses, parses the allowlist
// of networks, validates a subscription URL at registration, and gives agents a DNS lookup that
// refuses non-public addresses at every connect. It never connects anywhere itself.
import dns from 'node:dns';
import net from 'node:net';

/** Why an address is refused; 'public' is the only class a delivery may reach unless allowlisted. */
export type AddressClass =
  | 'public'
  | 'loopback'
  | 'private'
  | 'link-local'
  | 'metadata'
  | 'cgnat'
  | 'unspecified'
  | 'multicast'
  | 'broadcast'
  | 'documentation'
  | 'benchmarking'
  | 'reserved';

const DESCRIPTION: Record<AddressClass, string> = {
  public: 'a public address',
  loopback: 'a loopback address',
  private: 'a private-network address',
  'link-local': 'a link-local address',
  metadata: 'a cloud metadata service address',
  cgnat: 'a carrier-grade NAT (shared) address',
  unspecified: "a 'this host' / unspecified address",
  multicast: 'a multicast address',
  broadcast: 'the broadcast address',
  documentation: 'a documentation-only address',
  benchmarking: 'a benchmarking-only address',
  reserved: 'a reserved or special-purpose address',
};

// IANA's special-purpose registries (RFC 6890 and successors). First match wins, so the narrow
// ranges (metadata, broadcast) come before the ranges that contain them.
const V4: [AddressClass, string[]][] = [
  // AWS/GCP/Azure/OpenStack IMDS, ECS task metadata, Azure's wireserver, Alibaba's IMDS.
  ['metadata', ['169.254.169.254/32', '169.254.170.2/32', '168.63.129.16/32', '100.100.100.200/32']],
  ['broadcast', ['255.255.255.255/32']],
  ['unspecified', ['0.0.0.0/8']],
  ['loopback', ['127.0.0.0/8']],
  ['private', ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16']],
  ['cgnat', ['100.64.0.0/10']],
  ['link-local', ['169.254.0.0/16']],
  ['documentation', ['192.0.2.0/24', '198.51.100.0/24', '203.0.113.0/24']],
  ['benchmarking', ['198.18.0.0/15']],
  ['multicast', ['224.0.0.0/4']],
  // 192.0.0.0/24: IETF protocol assignments (Oracle's metadata service is 192.0.0.192);
  // 192.88.99.0/24: the retired 6to4 relay anycast; 240.0.0.0/4: never allocated.
  ['reserved', ['192.0.0.0/24', '192.88.99.0/24', '240.0.0.0/4']],
];

const V6: [AddressClass, string[]][] = [
  ['unspecified', ['::/128']],
  ['loopback', ['::1/128']],
  ['metadata', ['fd00:ec2::254/128']], // AWS IMDS over IPv6
  ['documentation', ['2001:db8::/32', '3fff::/20']],
  ['benchmarking', ['2001:2::/48']],
  // ::/96 (IPv4-compatible), ::ffff:0:0:0/96 (SIIT), 100::/64 (discard), 2001::/23 (IETF protocol
  // assignments, Teredo among them), 2002::/16 (6to4 tunnels), 5f00::/16 (SRv6 segment ids).
  ['reserved', ['::/96', '::ffff:0:0:0/96', '100::/64', '2001::/23', '2002::/16', '5f00::/16']],
  // fc00::/7 unique local, fec0::/10 the old site-local, 64:ff9b:1::/48 NAT64 for local use.
  ['private', ['fc00::/7', 'fec0::/10', '64:ff9b:1::/48']],
  ['link-local', ['fe80::/10']],
  ['multicast', ['ff00::/8']],
];

function blockList(cidrs: string[]): net.BlockList {
  const list = new net.BlockList();
  for (const cidr of cidrs) {
    const [address, prefix] = cidr.split('/') as [string, string];
    list.addSubnet(address, Number(prefix), net.isIPv6(address) ? 'ipv6' : 'ipv4');
  }
  return list;
}

const V4_LISTS = V4.map(([cls, cidrs]) => [cls, blockList(cidrs)] as const);
const V6_LISTS = V6.map(([cls, cidrs]) => [cls, blockList(cidrs)] as const);
// Everything public in IPv6 today is global unicast, 2000::/3; the rest is unallocated.
const GLOBAL_UNICAST = blockList(['2000::/3']);
const MAPPED = blockList(['::ffff:0:0/96']);
const NAT64 = blockList(['64:ff9b::/96']);

/** The eight 16-bit words of an IPv6 address (with or without an embedded dotted quad). */
function ipv6Words(address: string): number[] {
  let text = address;
  if (text.includes('.')) {
    const colon = text.lastIndexOf(':');
    const [a = 0, b = 0, c = 0, d = 0] = text.slice(colon + 1).split('.').map(Number);
    text = `${text.slice(0, colon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const words = (part: string) => (part === '' ? [] : part.split(':').map((w) => parseInt(w, 16)));
  const left = words(head);
  const right = tail === undefined ? [] : words(tail);
  return [...left, ...Array<number>(8 - left.length - right.length).fill(0), ...right];
}

/** The IPv4 address carried in the last 32 bits of an IPv6 one. */
function embeddedIPv4(address: string): string {
  const words = ipv6Words(address);
  const hi = words[6]!;
  const lo = words[7]!;
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

function stripZone(address: string): string {
  const zone = address.indexOf('%');
  return zone === -1 ? address : address.slice(0, zone);
}

/**
 * What kind of address this is. IPv4-mapped (::ffff:a.b.c.d) and NAT64 (64:ff9b::a.b.c.d)
 * addresses are judged by the IPv4 address they lead to: on an IPv6-only host behind DNS64 every
 * public IPv4 site resolves to 64:ff9b::/96, and 64:ff9b::7f00:1 is loopback all the same.
 */
export function classifyAddress(address: string): AddressClass {
  const ip = stripZone(address);
  const family = net.isIP(ip);
  if (family === 4) {
    for (const [cls, list] of V4_LISTS) if (list.check(ip, 'ipv4')) return cls;
    return 'public';
  }
  if (family === 6) {
    if (MAPPED.check(ip, 'ipv6') || NAT64.check(ip, 'ipv6')) return classifyAddress(embeddedIPv4(ip));
    for (const [cls, list] of V6_LISTS) if (list.check(ip, 'ipv6')) return cls;
    return GLOBAL_UNICAST.check(ip, 'ipv6') ? 'public' : 'reserved';
  }
  throw new TypeError(`not an IP address: '${address}'`);
}

/** The networks an operator lets deliveries reach although they are not public. */
export type NetworkList = {
  readonly cidrs: readonly string[];
  has(address: string): boolean;
};

/**
 * Parses a comma-separated list of CIDRs (`127.0.0.0/8, ::1/128`); a bare address is one host.
 * Throws a message naming the bad entry and what a good one looks like.
 */
export function parseNetworkList(text: string): NetworkList {
  const list = new net.BlockList();
  const cidrs: string[] = [];
  for (const entry of text.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    const [address = '', prefix, extra] = entry.split('/');
    const family = net.isIP(address);
    const max = family === 6 ? 128 : 32;
    if (family === 0 || extra !== undefined || address.includes('%')) {
      throw new TypeError(`'${entry}' is not a network: write an address and a prefix length, like 10.0.0.0/8 or fd00::/8`);
    }
    const bits = prefix === undefined ? max : Number(prefix);
    if (prefix !== undefined && !/^\d{1,3}$/.test(prefix)) {
      throw new TypeError(`'${entry}' is not a network: the prefix length after '/' is a number from 0 to ${max}`);
    }
    if (bits > max) {
      throw new TypeError(`'${entry}' is not a network: an IPv${family} prefix length is 0 to ${max}`);
    }
    list.addSubnet(address, bits, family === 6 ? 'ipv6' : 'ipv4');
    cidrs.push(`${address}/${bits}`);
  }
  const check = (ip: string) => list.check(ip, net.isIPv6(ip) ? 'ipv6' : 'ipv4');
  return {
    cidrs,
    has(address) {
      const ip = stripZone(address);
      if (check(ip)) return true;
      // ::ffff:127.0.0.1 is 127.0.0.1: an IPv4 allowlist entry covers it.
      return net.isIPv6(ip) && (MAPPED.check(ip, 'ipv6') || NAT64.check(ip, 'ipv6')) && check(embeddedIPv4(ip));
    },
  };
}

/** A delivery was refused because of where it would go; `message` says what to change. */
export class SsrfError extends Error {
  readonly code = 'ERR_OUTBOX_SSRF';
  readonly host: string;
  readonly address: string | undefined;
  readonly addressClass: AddressClass | undefined;
  constructor(message: string, details: { host: string; address?: string; addressClass?: AddressClass }) {
    super(message);
    this.name = 'SsrfError';
    this.host = details.host;
    this.address = details.address;
    this.addressClass = details.addressClass;
  }
}

/** Null when deliveries may reach `address` (as the address of `host`), else why not. */
export function checkAddress(host: string, address: string, allow: NetworkList): SsrfError | null {
  const cls = classifyAddress(address);
  if (cls === 'public' || allow.has(address)) return null;
  const what = host === address ? `${address} is` : `${host} resolves to ${address},`;
  return new SsrfError(
    `${what} ${DESCRIPTION[cls]}: deliveries only go to public addresses (list the network in OUTBOX_ALLOW_NETWORKS to allow it)`,
    { host, address, addressClass: cls },
  );
}

/** A URL's hostname as an address or name: without the brackets of an IPv6 literal. */
export function hostOf(url: URL): string {
  return url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
}

export type UrlOptions = { allowHttp: boolean; allowNetworks: NetworkList };

const MAX_URL_LENGTH = 2048;

/** The parts of a subscription URL that do not need DNS: scheme, credentials, host. */
export function urlProblem(raw: string, options: { allowHttp: boolean }): string | null {
  if (raw.length > MAX_URL_LENGTH) return `the URL is longer than ${MAX_URL_LENGTH} characters`;
  if (!URL.canParse(raw)) return 'not an absolute URL: write it like https://example.com/webhooks';
  const url = new URL(raw);
  const schemes = options.allowHttp ? ['https:', 'http:'] : ['https:'];
  if (!schemes.includes(url.protocol)) {
    return url.protocol === 'http:'
      ? 'the URL uses http: deliveries go over https only (OUTBOX_ALLOW_HTTP=true permits http, for development)'
      : `the URL's scheme is '${url.protocol.slice(0, -1)}': deliveries go to https URLs`;
  }
  if (url.username !== '' || url.password !== '') {
    return 'the URL contains credentials (user:password@): remove them and send them as a custom header (e.g. Authorization) instead';
  }
  if (hostOf(url) === '') return 'the URL has no host';
  return null;
}

/**
 * Registration check: scheme, no credentials, and every address the host resolves to allowed.
 * Returns the parsed URL, or an error that names what is wrong. Connect time checks again (the
 * DNS answer may change), this is for telling the user early.
 */
export async function validateSubscriptionUrl(
  raw: string,
  options: UrlOptions,
): Promise<{ ok: true; url: URL } | { ok: false; error: string }> {
  const problem = urlProblem(raw, options);
  if (problem) return { ok: false, error: problem };
  const url = new URL(raw);
  const host = hostOf(url);
  let addresses: string[];
  if (net.isIP(host)) {
    addresses = [host];
  } else {
    try {
      addresses = (await dns.promises.lookup(host, { all: true })).map((a) => a.address);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      return { ok: false, error: `the host ${host} does not resolve (${code}): check the name` };
    }
  }
  for (const address of addresses) {
    const refused = checkAddress(host, address, options.allowNetworks);
    if (refused) return { ok: false, error: refused.message };
  }
  return { ok: true, url };
}

/**
 * A `lookup` for http(s).Agent: resolves like dns.lookup and refuses the connection when any
 * address is not allowed. The socket connects to the addresses checked here, so a DNS answer
 * that changes after registration (DNS rebinding) cannot slip a private address in. Node skips
 * lookup for a literal IP: check those with checkAddress before the request.
 */
export function createSafeLookup(allow: NetworkList): net.LookupFunction {
  return (hostname, options, callback) => {
    dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, '', 0);
      for (const { address } of addresses) {
        const refused = checkAddress(hostname, address, allow);
        if (refused) return callback(refused, '', 0);
      }
      if (options.all) return callback(null, addresses);
      const first = addresses[0];
      if (!first) return callback(Object.assign(new Error(`no address for ${hostname}`), { code: 'ENOTFOUND' }), '', 0);
      return callback(null, first.address, first.family);
    });
  };
}
