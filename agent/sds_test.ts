import assert from "node:assert/strict";
// Tests may reach sideways: the strict codec checks the agent's hand-written bytes against
// Envoy's own descriptor.
import { decodeStrict, encodeStrict } from "../xds/proto/codec.ts";
import { violations } from "../xds/proto/validate.ts";
import { tlsCertificateSecret, workloadCertificate } from "../core/workload_secret.ts";
import { SDS_TYPE_URL } from "../core/xds_type_urls.ts";
import { isLocalResource, LocalResources } from "./sds.ts";
import { encodeSotwResponse } from "./xds_relay_wire.ts";

const CHAIN = "-----BEGIN CERTIFICATE-----\nLEAF\n-----END CERTIFICATE-----\n" +
  "-----BEGIN CERTIFICATE-----\nINTERMEDIATE\n-----END CERTIFICATE-----\n";
const KEY = "-----BEGIN PRIVATE KEY-----\nSECRETKEY\n-----END PRIVATE KEY-----\n";
const CDS_TYPE_URL = "type.googleapis.com/envoy.config.cluster.v3.Cluster";

Deno.test("tlsCertificateSecret() is a strict Secret in an Any; the version hashes the chain", () => {
  const cert = workloadCertificate(CHAIN, KEY);
  assert.match(cert.version, /^[0-9a-f]{16}$/);
  assert.equal(workloadCertificate(CHAIN, "another key").version, cert.version, "hash of the cert");
  assert.notEqual(workloadCertificate(CHAIN + "\n", KEY).version, cert.version);
  // An Any is what a DiscoveryResponse carries: decode one holding it.
  const response = "envoy.service.discovery.v3.DiscoveryResponse";
  const bytes = tlsCertificateSecret("default", cert);
  const wrapped = encodeSotwResponse({
    versionInfo: "",
    resources: [bytes],
    typeUrl: "",
    nonce: "",
  });
  const decoded = decodeStrict(response, wrapped);
  assert.deepEqual(decoded, {
    resources: [{
      "@type": SDS_TYPE_URL,
      name: "default",
      tls_certificate: {
        certificate_chain: { inline_string: CHAIN },
        private_key: { inline_string: KEY },
      },
    }],
  });
  // The bytes are what the strict encoder makes of the same message.
  assert.deepEqual(wrapped, encodeStrict(response, decoded));
  // And the Secret keeps Envoy's own validation rules (protoc-gen-validate).
  assert.deepEqual(violations(response, decoded), []);
});

Deno.test("LocalResources serves `default` of SDS from the current certificate, nothing else", () => {
  let cert = workloadCertificate(CHAIN, KEY);
  const local = new LocalResources(() => cert);
  assert.equal(isLocalResource(SDS_TYPE_URL, "default"), true);
  assert.equal(isLocalResource(SDS_TYPE_URL, "ROOTCA"), false);
  assert.equal(isLocalResource(CDS_TYPE_URL, "default"), false);
  assert.equal(local.get(SDS_TYPE_URL, "ROOTCA"), undefined);
  assert.equal(local.get(CDS_TYPE_URL, "default"), undefined);
  const first = local.get(SDS_TYPE_URL, "default")!;
  assert.deepEqual(first, {
    name: "default",
    version: cert.version,
    any: tlsCertificateSecret("default", cert),
  });
  assert.equal(local.get(SDS_TYPE_URL, "default"), first, "built once per certificate");
  cert = workloadCertificate(CHAIN + "\n", KEY);
  assert.equal(local.get(SDS_TYPE_URL, "default")!.version, cert.version, "renewed");
});
