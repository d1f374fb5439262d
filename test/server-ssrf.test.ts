/**
 * The SSRF guard's address classification (hand-derived from the IANA special-purpose registries) and its redirect
 * handling: every hop is resolved and checked before connecting.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { embeddedIpv4, fetchToBuffer, isNonPublicAddress } from "../src/server/ssrf.js";
import { makeTestVideo, startMediaHost, tempDir, type MediaHost } from "./server-helpers.js";

describe("isNonPublicAddress", () => {
  const nonPublic = [
    "127.0.0.1", "127.255.255.254", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254", "0.0.0.0",
    "100.64.0.1", "224.0.0.1", "255.255.255.255", "198.18.0.1", "192.0.2.1",
    "::1", "::", "fe80::1", "fe80::1%eth0", "fc00::1", "fd12:3456::1", "ff02::1", "fec0::1", "2001:db8::1",
    "::ffff:127.0.0.1", "::ffff:7f00:1", "::ffff:169.254.169.254", "::ffff:10.0.0.1", "::127.0.0.1", "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "2002:7f00:1::1", "2001:0:4136:e378::1",
    "[::1]", "not-an-ip",
    // IPv4-translated (::ffff:0:a.b.c.d), IPv4-compatible in hex, local-use NAT64 (64:ff9b:1::/48), Teredo, 6to4 with
    // private IPv4 inside, the other IETF protocol assignments, documentation 3fff::/20
    "::ffff:0:7f00:1", "::ffff:0:127.0.0.1", "::ffff:0:a9fe:a9fe", "::ffff:0:10.1.2.3", "::7f00:1", "::a00:1",
    "64:ff9b:1::7f00:1", "64:ff9b:1::808:808", "64:ff9b:1:ffff:ffff:ffff:ffff:ffff", "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    "2002:a00:1::1", "2002:c0a8:101::1", "2002:a9fe:a9fe::", "2001:2::1", "3fff::1", "5f00::1",
  ];
  const publicOnes = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "172.32.0.1", "100.128.0.1", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1", "::ffff:0:808:808", "64:ff9b:2::1"];
  for (const a of nonPublic) it(`${a} is not public`, () => expect(isNonPublicAddress(a)).toBe(true));
  for (const a of publicOnes) it(`${a} is public`, () => expect(isNonPublicAddress(a)).toBe(false));
  it("finds IPv4 inside IPv6", () => {
    expect(embeddedIpv4("::ffff:7f00:1")).toBe("127.0.0.1");
    expect(embeddedIpv4("::ffff:1.2.3.4")).toBe("1.2.3.4");
    expect(embeddedIpv4("64:ff9b::a9fe:a9fe")).toBe("169.254.169.254");
    expect(embeddedIpv4("2002:c0a8:101::")).toBe("192.168.1.1");
    expect(embeddedIpv4("::ffff:0:7f00:1")).toBe("127.0.0.1");
    expect(embeddedIpv4("::ffff:0:10.0.0.1")).toBe("10.0.0.1");
    expect(embeddedIpv4("2606:4700::1111")).toBeUndefined();
  });
});

describe("redirects", () => {
  let host: MediaHost;
  let dir: string;
  beforeAll(async () => {
    dir = tempDir("videolm-ssrf-");
    const video = makeTestVideo(dir, "v.mp4", 1);
    host = await startMediaHost({ video, image: video });
  });
  afterAll(async () => {
    await host.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  // Treat the media host's address (127.0.0.1) as public, everything else non-public as usual.
  const isBlocked = (a: string) => a !== "127.0.0.1" && isNonPublicAddress(a);
  const opts = { maxBytes: 1 << 20, timeoutMs: 5000, allowPrivate: false, isBlocked };

  it("follows a redirect to an allowed target", async () => {
    const r = await fetchToBuffer(`${host.url}/redirect?to=/clip.mp4`, opts);
    expect(r.data.length).toBe(fs.statSync(path.join(dir, "v.mp4")).size);
  });
  for (const target of ["http://127.0.0.2/x", "http://[::1]/x", "http://169.254.169.254/latest/meta-data/", "http://[::ffff:10.0.0.1]/x"]) {
    it(`refuses a redirect to ${target}`, async () => {
      await expect(fetchToBuffer(`${host.url}/redirect?to=${encodeURIComponent(target)}`, opts)).rejects.toMatchObject({ status: 400, code: "media_url_refused" });
    });
  }
  it("refuses a redirect to another scheme", async () => {
    await expect(fetchToBuffer(`${host.url}/redirect?to=${encodeURIComponent("file:///etc/passwd")}`, opts)).rejects.toMatchObject({ status: 400, code: "invalid_media_url" });
  });
  it("limits size and time", async () => {
    await expect(fetchToBuffer(`${host.url}/clip.mp4`, { ...opts, maxBytes: 100 })).rejects.toMatchObject({ status: 400, code: "media_too_large" });
    await expect(fetchToBuffer(`${host.url}/hang`, { ...opts, timeoutMs: 300 })).rejects.toMatchObject({ status: 400, code: "media_timeout" });
    await expect(fetchToBuffer(`${host.url}/missing`, opts)).rejects.toMatchObject({ status: 400, message: expect.stringMatching(/HTTP 404/) });
  });
  it("reports an unreachable host", async () => {
    await expect(fetchToBuffer("http://no-such-host.invalid/x.mp4", { ...opts, allowPrivate: false })).rejects.toMatchObject({ status: 400, code: "media_url_unreachable" });
  });
});
