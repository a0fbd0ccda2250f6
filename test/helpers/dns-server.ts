// A small authoritative DNS server for tests (dns-packet on UDP and TCP, one ephemeral port on
// 127.0.0.1), serving zone lines like
//
//   example.test        MX    10 mx.example.test
//   example.test        TXT   v=spf1 ip4:127.0.0.1 -all
//   mx.example.test     A     127.0.0.1
//   broken.test         SERVFAIL
//
// A name with no record of the asked type answers NOERROR/no data; an unknown name NXDOMAIN;
// SERVFAIL names fail every query. Answers too big for the client's UDP size set TC, so the
// resolver asks again over TCP, as with a real server. `set()` replaces the zone.

import dgram from 'node:dgram';
import net from 'node:net';

import * as packet from 'dns-packet';

interface Rr {
  name: string;
  type: string;
  data: unknown;
}

export interface DnsServer {
  port: number;
  /** "127.0.0.1:PORT", for [dns] servers. */
  address: string;
  /** Queries answered so far, as "NAME TYPE". */
  queries: string[];
  set(zone: string): void;
  close(): Promise<void>;
}

function parseZone(zone: string): { records: Rr[]; servfail: Set<string> } {
  const records: Rr[] = [];
  const servfail = new Set<string>();
  for (const raw of zone.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith(';')) continue;
    const m = /^(\S+)\s+(\S+)\s*(.*)$/.exec(line);
    if (!m) throw new Error(`bad zone line ${line}`);
    const name = m[1]!.toLowerCase().replace(/\.$/, '');
    const type = m[2]!.toUpperCase();
    const rest = m[3]!.trim();
    switch (type) {
      case 'SERVFAIL':
        servfail.add(name);
        break;
      case 'A':
      case 'AAAA':
      case 'CNAME':
      case 'PTR':
        records.push({ name, type, data: rest });
        break;
      case 'MX': {
        const [pref, exchange] = rest.split(/\s+/);
        records.push({ name, type, data: { preference: Number(pref), exchange: exchange!.replace(/\.$/, '') } });
        break;
      }
      case 'TXT': {
        const text = rest.replace(/^"(.*)"$/, '$1');
        const chunks: Buffer[] = [];
        const b = Buffer.from(text, 'utf8');
        for (let i = 0; i < b.length || i === 0; i += 255) chunks.push(b.subarray(i, i + 255));
        records.push({ name, type, data: chunks });
        break;
      }
      default:
        throw new Error(`zone type ${type} not supported`);
    }
  }
  return { records, servfail };
}

/** startDnsServer - listen on 127.0.0.1 (UDP and TCP, same port) serving ZONE. */
export async function startDnsServer(zone = ''): Promise<DnsServer> {
  let current = parseZone(zone);
  const queries: string[] = [];

  const answer = (query: packet.Packet, maxUdp: number | null): Buffer => {
    const q = query.questions?.[0];
    const res: packet.Packet = { id: query.id, type: 'response', flags: packet.AUTHORITATIVE_ANSWER | ((query.flags ?? 0) & packet.RECURSION_DESIRED), questions: query.questions, answers: [] };
    // dns-packet takes the response code from the low bits of flags.
    const fail = (rcode: number): Buffer => packet.encode({ ...res, flags: (res.flags ?? 0) | rcode });
    if (!q) return fail(1); // FORMERR
    const name = q.name.toLowerCase().replace(/\.$/, '');
    queries.push(`${name} ${q.type}`);
    if (current.servfail.has(name)) return fail(2); // SERVFAIL
    const own = current.records.filter((r) => r.name === name);
    if (own.length === 0) return fail(3); // NXDOMAIN
    const cname = own.find((r) => r.type === 'CNAME');
    const match = cname && q.type !== 'CNAME' ? [cname, ...current.records.filter((r) => r.name === cname.data && r.type === q.type)] : own.filter((r) => r.type === q.type);
    res.answers = match.map((r) => ({ name: r.name, type: r.type, class: 'IN', ttl: 60, data: r.data }) as packet.Answer);
    let buf = packet.encode(res);
    if (maxUdp !== null && buf.length > maxUdp) {
      buf = packet.encode({ ...res, answers: [], flags: (res.flags ?? 0) | packet.TRUNCATED_RESPONSE });
    }
    return buf;
  };

  // UDP and TCP on the same ephemeral port: take a free UDP port, then TCP on it; if that one
  // is taken over TCP, try again (bounded).
  let udp: dgram.Socket | null = null;
  let tcp: net.Server | null = null;
  let port = 0;
  for (let attempt = 0; attempt < 20 && !tcp; attempt++) {
    const u = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      u.once('error', reject);
      u.bind(0, '127.0.0.1', () => resolve());
    });
    const p = u.address().port;
    const t = net.createServer((sock) => serveTcp(sock));
    const ok = await new Promise<boolean>((resolve) => {
      t.once('error', () => resolve(false));
      t.listen(p, '127.0.0.1', () => resolve(true));
    });
    if (ok) {
      udp = u;
      tcp = t;
      port = p;
    } else u.close();
  }
  if (!udp || !tcp) throw new Error('dns-server: no port free for both UDP and TCP');
  udp.on('message', (msg, rinfo) => {
    let query: packet.Packet;
    try {
      query = packet.decode(msg);
    } catch {
      return;
    }
    const opt = query.additionals?.find((a) => a.type === 'OPT') as { udpPayloadSize?: number } | undefined;
    udp!.send(answer(query, opt?.udpPayloadSize ?? 512), rinfo.port, rinfo.address);
  });

  function serveTcp(sock: net.Socket): void {
    let buf = Buffer.alloc(0);
    sock.on('error', () => {});
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        if (buf.length < 2 + len) break;
        let query: packet.Packet;
        try {
          query = packet.decode(buf.subarray(2, 2 + len));
        } catch {
          sock.destroy();
          return;
        }
        buf = buf.subarray(2 + len);
        const out = answer(query, null);
        const head = Buffer.alloc(2);
        head.writeUInt16BE(out.length);
        sock.write(Buffer.concat([head, out]));
      }
    });
  }

  return {
    port,
    address: `127.0.0.1:${port}`,
    queries,
    set(z: string) {
      current = parseZone(z);
    },
    close: async () => {
      udp!.close();
      await new Promise<void>((r) => tcp!.close(() => r()));
    },
  };
}
