import assert from "node:assert/strict";
import { silentLogger } from "../core/log.ts";
// Tests may reach sideways: the strict codec checks the agent's hand-written bytes against
// Envoy's own descriptor.
import { decodeStrict, encodeStrict } from "../xds/proto/codec.ts";
import {
  SDS_TYPE_URL,
  tlsCertificateResponse,
  type WorkloadCertificate,
  workloadCertificate,
} from "../core/workload_secret.ts";
import { parseDiscoveryRequest, rewriteDiscoveryRequest, SdsSplitter } from "./sds.ts";

const REQUEST = "envoy.service.discovery.v3.DiscoveryRequest";
const RESPONSE = "envoy.service.discovery.v3.DiscoveryResponse";
const CDS_TYPE_URL = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const NODE = {
  id: "vm-1",
  cluster: "vm-1",
  metadata: { IRONMESH_PROXY: "sidecar" },
  locality: { region: "r1", zone: "z1" },
};
const CHAIN = "-----BEGIN CERTIFICATE-----\nLEAF\n-----END CERTIFICATE-----\n" +
  "-----BEGIN CERTIFICATE-----\nINTERMEDIATE\n-----END CERTIFICATE-----\n";
const KEY = "-----BEGIN PRIVATE KEY-----\nSECRETKEY\n-----END PRIVATE KEY-----\n";

function request(fields: Record<string, unknown>): Uint8Array {
  return encodeStrict(REQUEST, fields);
}

Deno.test("SDS protobuf as the splitter reads it: a DiscoveryRequest's top-level fields", () => {
  const bytes = request({
    version_info: "v1",
    node: NODE,
    resource_names: ["ROOTCA", "default"],
    type_url: SDS_TYPE_URL,
    response_nonce: "7",
    error_detail: { code: 3, message: "bad secret" },
  });
  const head = parseDiscoveryRequest(bytes);
  assert.equal(head.versionInfo, "v1");
  assert.deepEqual(head.resourceNames, ["ROOTCA", "default"]);
  assert.equal(head.typeUrl, SDS_TYPE_URL);
  assert.equal(head.responseNonce, "7");
  assert.equal(head.error, "bad secret");
  assert.deepEqual(decodeStrict(REQUEST, head.node!), { node: NODE });

  const bare = parseDiscoveryRequest(request({ type_url: CDS_TYPE_URL }));
  assert.deepEqual(bare, {
    versionInfo: "",
    typeUrl: CDS_TYPE_URL,
    responseNonce: "",
    resourceNames: [],
    error: null,
    node: null,
  });
  // An ACK has no error_detail; an empty one is still a NACK.
  assert.equal(parseDiscoveryRequest(request({ error_detail: {} })).error, "");
  assert.throws(() => parseDiscoveryRequest(new TextEncoder().encode("not protobuf")));
});

Deno.test("SDS protobuf: a rewritten request keeps every other field as it was", () => {
  const bytes = request({
    version_info: "agent-version",
    node: NODE,
    resource_names: ["ROOTCA", "default"],
    type_url: SDS_TYPE_URL,
    response_nonce: "agent-1",
    resource_locators: [{ name: "xdstp://x/y" }],
  });
  const rewritten = rewriteDiscoveryRequest(bytes, {
    versionInfo: "server-version",
    responseNonce: "",
    resourceNames: ["ROOTCA"],
  });
  assert.deepEqual(decodeStrict(REQUEST, rewritten), {
    version_info: "server-version",
    node: NODE,
    resource_names: ["ROOTCA"],
    type_url: SDS_TYPE_URL,
    resource_locators: [{ name: "xdstp://x/y" }],
  });
});

Deno.test("SDS protobuf: the workload certificate response is a strict DiscoveryResponse", () => {
  const cert = workloadCertificate(CHAIN, KEY);
  assert.match(cert.version, /^[0-9a-f]{16}$/);
  assert.equal(workloadCertificate(CHAIN, "another key").version, cert.version, "hash of the cert");
  assert.notEqual(workloadCertificate(CHAIN + "\n", KEY).version, cert.version);
  const decoded = decodeStrict(RESPONSE, tlsCertificateResponse("default", cert, "agent-1"));
  assert.deepEqual(decoded, {
    version_info: cert.version,
    resources: [{
      "@type": SDS_TYPE_URL,
      name: "default",
      tls_certificate: {
        certificate_chain: { inline_string: CHAIN },
        private_key: { inline_string: KEY },
      },
    }],
    type_url: SDS_TYPE_URL,
    nonce: "agent-1",
  });
  // The bytes are what the strict encoder makes of the same message.
  assert.deepEqual(
    tlsCertificateResponse("default", cert, "agent-1"),
    encodeStrict(RESPONSE, decoded),
  );
});

/** A splitter with what it sent to Envoy, decoded. */
function splitter(initial: WorkloadCertificate = workloadCertificate(CHAIN, KEY)) {
  let cert = initial;
  const toEnvoy: Record<string, unknown>[] = [];
  const sds = new SdsSplitter({
    send: (bytes) => toEnvoy.push(decodeStrict(RESPONSE, bytes)),
    certificate: () => cert,
    log: silentLogger,
    stream: 1,
  });
  return {
    sds,
    toEnvoy,
    renew(next: WorkloadCertificate) {
      cert = next;
      sds.renewed();
    },
    /** What Envoy's request becomes upstream, decoded; `null` when nothing goes up. */
    up(fields: Record<string, unknown>): Record<string, unknown> | null {
      const out = sds.fromApp(request(fields));
      return out === null ? null : decodeStrict(REQUEST, out);
    },
  };
}

Deno.test("SdsSplitter answers `default` itself and sends only the other names upstream", () => {
  const s = splitter();
  const version = workloadCertificate(CHAIN, KEY).version;

  // Envoy's first SDS request: default is answered here, ROOTCA goes up with the node.
  assert.deepEqual(
    s.up({ node: NODE, resource_names: ["ROOTCA", "default"], type_url: SDS_TYPE_URL }),
    { node: NODE, resource_names: ["ROOTCA"], type_url: SDS_TYPE_URL },
  );
  assert.equal(s.toEnvoy.length, 1);
  const first = s.toEnvoy[0] as { version_info: string; nonce: string };
  assert.equal(first.version_info, version);
  assert.equal(first.nonce, "agent-1");

  // Envoy ACKs the agent's response: nothing for the server.
  const ackOurs = {
    version_info: version,
    resource_names: ["ROOTCA", "default"],
    type_url: SDS_TYPE_URL,
    response_nonce: "agent-1",
  };
  assert.equal(s.up(ackOurs), null);

  // Envoy ACKs the server's ROOTCA response: up as it is, without default.
  assert.deepEqual(
    s.up({
      version_info: "s1",
      resource_names: ["ROOTCA", "default"],
      type_url: SDS_TYPE_URL,
      response_nonce: "1",
    }),
    { version_info: "s1", resource_names: ["ROOTCA"], type_url: SDS_TYPE_URL, response_nonce: "1" },
  );

  // Envoy NACKs the server's next response after accepting the agent's: the server sees the
  // version Envoy last accepted from it, not the agent's.
  assert.deepEqual(
    s.up({
      version_info: version,
      resource_names: ["ROOTCA", "default"],
      type_url: SDS_TYPE_URL,
      response_nonce: "2",
      error_detail: { message: "no" },
    }),
    {
      version_info: "s1",
      resource_names: ["ROOTCA"],
      type_url: SDS_TYPE_URL,
      response_nonce: "2",
      error_detail: { message: "no" },
    },
  );

  // A subscription change riding on an ACK of the agent's response goes up as a fresh request.
  assert.deepEqual(
    s.up({ ...ackOurs, resource_names: ["ROOTCA", "default", "extra"] }),
    { version_info: "s1", resource_names: ["ROOTCA", "extra"], type_url: SDS_TYPE_URL },
  );
  assert.equal(s.toEnvoy.length, 1, "the certificate was sent once");

  // Other types pass byte for byte.
  const cds = request({ version_info: version, type_url: CDS_TYPE_URL, response_nonce: "3" });
  assert.equal(s.sds.fromApp(cds), cds);
});

Deno.test("SdsSplitter pushes a renewed certificate, and never resends a rejected one", () => {
  const s = splitter();
  s.up({ resource_names: ["default"], type_url: SDS_TYPE_URL });
  assert.equal(s.toEnvoy.length, 1);
  // Envoy rejects it: the same version is not sent again.
  const nack = {
    resource_names: ["default"],
    type_url: SDS_TYPE_URL,
    response_nonce: "agent-1",
    error_detail: { message: "bad key" },
  };
  assert.equal(s.up(nack), null);
  assert.equal(s.toEnvoy.length, 1);

  const renewed = workloadCertificate(CHAIN.replace("LEAF", "RENEWED"), "new key");
  s.renew(renewed);
  assert.equal(s.toEnvoy.length, 2);
  assert.deepEqual(s.toEnvoy[1], {
    version_info: renewed.version,
    resources: [{
      "@type": SDS_TYPE_URL,
      name: "default",
      tls_certificate: {
        certificate_chain: { inline_string: renewed.chainPem },
        private_key: { inline_string: "new key" },
      },
    }],
    type_url: SDS_TYPE_URL,
    nonce: "agent-2",
  });
  // The same certificate again sends nothing.
  s.renew(renewed);
  assert.equal(s.toEnvoy.length, 2);

  // Envoy drops default: a renewal no longer reaches it; subscribing again sends it at once.
  assert.equal(
    s.up({ resource_names: [], type_url: SDS_TYPE_URL, response_nonce: "agent-2" }),
    null,
  );
  s.renew(workloadCertificate("third", "k"));
  assert.equal(s.toEnvoy.length, 2);
  s.up({ resource_names: ["default"], type_url: SDS_TYPE_URL, response_nonce: "agent-2" });
  assert.equal(s.toEnvoy.length, 3);
});

Deno.test("SdsSplitter gives the server Envoy's node when the request carrying it stays local", () => {
  const s = splitter();
  // Envoy sends its node once, on its first message, which here asks for default only.
  assert.equal(
    s.up({ node: NODE, resource_names: ["default"], type_url: SDS_TYPE_URL }),
    null,
  );
  assert.deepEqual(s.up({ type_url: CDS_TYPE_URL }), { node: NODE, type_url: CDS_TYPE_URL });
  // Only the first message upstream gets it.
  assert.deepEqual(s.up({ type_url: CDS_TYPE_URL, version_info: "c1", response_nonce: "1" }), {
    type_url: CDS_TYPE_URL,
    version_info: "c1",
    response_nonce: "1",
  });
});

Deno.test("SdsSplitter passes what it cannot read and SDS without default unchanged", () => {
  const s = splitter();
  const garbage = new TextEncoder().encode("not protobuf");
  assert.equal(s.sds.fromApp(garbage), garbage);
  const rootOnly = request({ resource_names: ["ROOTCA"], type_url: SDS_TYPE_URL, node: NODE });
  assert.equal(s.sds.fromApp(rootOnly), rootOnly);
  assert.equal(s.toEnvoy.length, 0);
});
