/**
 * Fetching remote media without letting a request reach the server's own network (SSRF).
 *
 * Every host name is resolved here (all its addresses), and the request is refused when any address is private,
 * loopback, link-local, unspecified, multicast or otherwise not globally routable — IPv4 and IPv6, including IPv4
 * addresses carried inside IPv6 (IPv4-mapped ::ffff:a.b.c.d, IPv4-translated ::ffff:0:a.b.c.d, IPv4-compatible
 * ::a.b.c.d, NAT64 64:ff9b::/96, 6to4 2002::/16: the embedded address is checked) and the IPv6 ranges that reach
 * arbitrary IPv4 or local networks by design (local-use NAT64 64:ff9b:1::/48, Teredo 2001::/32: refused whole). The connection then goes to the address that was checked (a custom `lookup`), so a second DNS answer
 * cannot swap in another target (DNS rebinding). Redirects are followed by hand, each target checked the same way.
 * `allowPrivate` (the server's --allow-private-media) turns the address check off, nothing else.
 */
import { createWriteStream } from "node:fs";
import http from "node:http";
import https from "node:https";
import dns from "node:dns/promises";
import net, { type LookupFunction } from "node:net";
import { pipeline } from "node:stream/promises";
import { Writable } from "node:stream";
import { badRequest, HttpError } from "./errors.js";
import { formatBytes } from "./http.js";

const blocked = new net.BlockList();
// IPv4 ranges that are not public unicast (RFC 6890 special-purpose registry).
for (const [net4, prefix] of [
  ["0.0.0.0", 8], // "this network"
  ["10.0.0.0", 8], // private
  ["100.64.0.0", 10], // carrier-grade NAT
  ["127.0.0.0", 8], // loopback
  ["169.254.0.0", 16], // link-local (cloud metadata 169.254.169.254)
  ["172.16.0.0", 12], // private
  ["192.0.0.0", 24], // IETF protocol assignments
  ["192.0.2.0", 24], // documentation
  ["192.88.99.0", 24], // 6to4 relay anycast
  ["192.168.0.0", 16], // private
  ["198.18.0.0", 15], // benchmarking
  ["198.51.100.0", 24], // documentation
  ["203.0.113.0", 24], // documentation
  ["224.0.0.0", 4], // multicast
  ["240.0.0.0", 4], // reserved, broadcast
] as const)
  blocked.addSubnet(net4, prefix, "ipv4");
for (const [net6, prefix] of [
  ["::", 128], // unspecified
  ["::1", 128], // loopback
  ["64:ff9b:1::", 48], // local-use NAT64 (RFC 8215): translates to any IPv4, private ones included
  ["100::", 64], // discard-only
  ["2001::", 23], // IETF protocol assignments, Teredo 2001::/32 among them (tunnels to arbitrary IPv4)
  ["2001:db8::", 32], // documentation
  ["3fff::", 20], // documentation (RFC 9637)
  ["5f00::", 16], // SRv6 segment identifiers (RFC 9602)
  ["fc00::", 7], // unique local
  ["fe80::", 10], // link-local
  ["fec0::", 10], // site-local (deprecated)
  ["ff00::", 8], // multicast
] as const)
  blocked.addSubnet(net6, prefix, "ipv6");

/** The 16 bytes of an IPv6 address (net.isIPv6 must hold). */
function ipv6Bytes(address: string): number[] {
  let text = address.split("%")[0]; // zone index
  // A trailing dotted IPv4 (::ffff:1.2.3.4) becomes two hex groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const b = v4[1].split(".").map(Number);
    text = text.slice(0, -v4[1].length) + `${((b[0] << 8) | b[1]).toString(16)}:${((b[2] << 8) | b[3]).toString(16)}`;
  }
  const [head, tail] = text.includes("::") ? text.split("::") : [text, undefined];
  const groups = (s: string | undefined) => (s ? s.split(":").filter((g) => g !== "") : []);
  const h = groups(head);
  const t = groups(tail);
  const all = tail === undefined ? h : [...h, ...new Array(8 - h.length - t.length).fill("0"), ...t];
  return all.flatMap((g) => {
    const v = parseInt(g, 16);
    return [v >> 8, v & 255];
  });
}

/** The IPv4 address an IPv6 address carries (mapped, translated, compatible, NAT64, 6to4), if any. */
export function embeddedIpv4(address: string): string | undefined {
  const b = ipv6Bytes(address);
  const v4 = (o: number) => `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;
  const zero = (from: number, to: number) => b.slice(from, to).every((x) => x === 0);
  if (zero(0, 10) && b[10] === 0xff && b[11] === 0xff) return v4(12); // ::ffff:a.b.c.d
  if (zero(0, 8) && b[8] === 0xff && b[9] === 0xff && zero(10, 12)) return v4(12); // ::ffff:0:a.b.c.d (IPv4-translated, SIIT)
  if (zero(0, 12) && !zero(12, 16)) return v4(12); // ::a.b.c.d (deprecated IPv4-compatible)
  if (b[0] === 0x00 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b && zero(4, 12)) return v4(12); // 64:ff9b::/96
  if (b[0] === 0x20 && b[1] === 0x02) return v4(2); // 2002:AABB:CCDD::/48
  return undefined;
}

/** True when `address` (an IP literal) is not a public unicast address. Non-IP strings count as not public. */
export function isNonPublicAddress(address: string): boolean {
  const ip = address.replace(/^\[|\]$/g, "");
  const family = net.isIP(ip);
  if (family === 4) return blocked.check(ip, "ipv4");
  if (family === 6) {
    if (blocked.check(ip, "ipv6")) return true;
    const inner = embeddedIpv4(ip);
    return inner !== undefined && blocked.check(inner, "ipv4");
  }
  return true;
}

export interface RemoteFetchOptions {
  maxBytes: number;
  /** Wall-clock limit for the whole fetch, redirects included. */
  timeoutMs: number;
  allowPrivate: boolean;
  maxRedirects?: number;
  signal?: AbortSignal;
  /** Which request field the URL came from, for error messages. */
  param?: string;
  /** The address check (default isNonPublicAddress); tests substitute one to exercise redirects. */
  isBlocked?: (address: string) => boolean;
}

const refusal = (url: string, why: string, param?: string) =>
  badRequest(`${url}: refused to fetch media from ${why}; only public addresses are allowed (the server's --allow-private-media turns this check off)`, param ?? null, "media_url_refused");

/** Resolves a host and checks every address; returns the addresses to connect to. */
async function resolveChecked(url: URL, opts: RemoteFetchOptions): Promise<{ address: string; family: number }[]> {
  const host = url.hostname.replace(/^\[|\]$/g, "");
  if (net.isIP(host)) {
    if (!opts.allowPrivate && (opts.isBlocked ?? isNonPublicAddress)(host)) throw refusal(url.href, `the non-public address ${host}`, opts.param);
    return [{ address: host, family: net.isIP(host) }];
  }
  let addresses: { address: string; family: number }[];
  try {
    addresses = await dns.lookup(host, { all: true, verbatim: true });
  } catch (err) {
    throw badRequest(`${url.href}: cannot resolve host ${host} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, opts.param ?? null, "media_url_unreachable");
  }
  if (addresses.length === 0) throw badRequest(`${url.href}: host ${host} has no addresses`, opts.param ?? null, "media_url_unreachable");
  if (!opts.allowPrivate) {
    const bad = addresses.find((a) => (opts.isBlocked ?? isNonPublicAddress)(a.address));
    if (bad) throw refusal(url.href, `${host}, which resolves to the non-public address ${bad.address}`, opts.param);
  }
  return addresses;
}

/** A `lookup` that answers with the already-checked address (no second DNS query). */
function pinnedLookup(address: string, family: number): LookupFunction {
  return ((_host: string, options: { all?: boolean }, callback: (...args: unknown[]) => void) => {
    if (options?.all) callback(null, [{ address, family }]);
    else callback(null, address, family);
  }) as unknown as LookupFunction;
}

interface Opened {
  response: http.IncomingMessage;
  url: URL;
}

async function openOnce(url: URL, opts: RemoteFetchOptions, signal: AbortSignal): Promise<Opened> {
  const [target] = await resolveChecked(url, opts);
  const lib = url.protocol === "https:" ? https : http;
  return new Promise<Opened>((resolve, reject) => {
    const req = lib.request(url, { method: "GET", lookup: pinnedLookup(target.address, target.family), signal, headers: { "User-Agent": "videolm-serve", Accept: "*/*" } }, (response) =>
      resolve({ response, url }),
    );
    req.on("error", reject);
    req.end();
  });
}

function checkScheme(url: URL, opts: RemoteFetchOptions): void {
  if (url.protocol !== "http:" && url.protocol !== "https:") throw badRequest(`${url.href}: only http(s) media URLs can be fetched`, opts.param ?? null, "invalid_media_url");
}

/**
 * GETs `href` (following up to `maxRedirects` redirects, each re-checked) and streams the body into `sink`,
 * refusing bodies over `maxBytes`. Errors are 400s naming the URL.
 */
async function fetchInto(href: string, opts: RemoteFetchOptions, sink: (body: AsyncIterable<Buffer>) => Promise<void>): Promise<{ contentType: string; bytes: number; finalUrl: string }> {
  let url: URL;
  try {
    url = new URL(href);
  } catch {
    throw badRequest(`${href.slice(0, 200)}: malformed URL`, opts.param ?? null, "invalid_media_url");
  }
  checkScheme(url, opts);
  const timeout = AbortSignal.timeout(opts.timeoutMs);
  const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
  const fail = (err: unknown): never => {
    if (err instanceof HttpError) throw err;
    if (timeout.aborted) throw badRequest(`${href}: download did not finish within ${opts.timeoutMs / 1000} s (the server's --media-timeout)`, opts.param ?? null, "media_timeout");
    if (opts.signal?.aborted) throw new HttpError(499, "client closed the request");
    const code = (err as NodeJS.ErrnoException)?.code;
    throw badRequest(`${href}: cannot download (${code ?? (err as Error)?.message ?? String(err)})`, opts.param ?? null, "media_url_unreachable");
  };
  let opened: Opened;
  for (let hop = 0; ; hop++) {
    try {
      opened = await openOnce(url, opts, signal);
    } catch (err) {
      return fail(err);
    }
    const status = opened.response.statusCode ?? 0;
    if (status >= 300 && status < 400 && opened.response.headers.location) {
      opened.response.resume();
      if (hop >= (opts.maxRedirects ?? 5)) throw badRequest(`${href}: too many redirects`, opts.param ?? null, "media_url_unreachable");
      try {
        url = new URL(opened.response.headers.location, url);
      } catch {
        throw badRequest(`${href}: redirect to a malformed URL`, opts.param ?? null, "invalid_media_url");
      }
      checkScheme(url, opts);
      continue;
    }
    if (status < 200 || status >= 300) {
      opened.response.resume();
      throw badRequest(`${href}: the media server answered HTTP ${status}${opened.response.statusMessage ? " " + opened.response.statusMessage : ""}`, opts.param ?? null, "media_url_unreachable");
    }
    break;
  }
  const { response } = opened;
  const declared = Number(response.headers["content-length"]);
  const limitError = () => new HttpError(400, `${href}: the media is larger than the server's limit of ${formatBytes(opts.maxBytes)} (--max-media-bytes)`, "invalid_request_error", opts.param ?? null, "media_too_large");
  if (Number.isFinite(declared) && declared > opts.maxBytes) {
    response.destroy();
    throw limitError();
  }
  let bytes = 0;
  let over = false;
  const counted = async function* () {
    for await (const chunk of response as AsyncIterable<Buffer>) {
      bytes += chunk.length;
      if (bytes > opts.maxBytes) {
        over = true;
        throw new Error("too large");
      }
      if (signal.aborted) throw signal.reason;
      yield chunk;
    }
  };
  try {
    await sink(counted());
  } catch (err) {
    response.destroy();
    if (over) throw limitError();
    return fail(err);
  }
  if (bytes === 0) throw badRequest(`${href}: the media server sent an empty body`, opts.param ?? null, "invalid_media");
  return { contentType: String(response.headers["content-type"] ?? ""), bytes, finalUrl: url.href };
}

/** Downloads to a file. */
export async function fetchToFile(href: string, file: string, opts: RemoteFetchOptions): Promise<{ contentType: string; bytes: number }> {
  return fetchInto(href, opts, (body) => pipeline(body, createWriteStream(file)));
}

/** Downloads into memory (images). */
export async function fetchToBuffer(href: string, opts: RemoteFetchOptions): Promise<{ data: Buffer; contentType: string }> {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk);
      cb();
    },
  });
  const r = await fetchInto(href, opts, (body) => pipeline(body, sink));
  return { data: Buffer.concat(chunks), contentType: r.contentType };
}
