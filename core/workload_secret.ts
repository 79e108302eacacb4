/**
 * The workload-certificate secret the agent serves its own Envoy over SDS:
 * an `envoy.extensions.transport_sockets.tls.v3.Secret` with a
 * `tls_certificate`, as a `google.protobuf.Any`, written at the wire level
 * with protobufjs's Writer (the agent's relay keeps resources as bytes and
 * adds this one to its SDS responses; see `agent/sds.ts`). The tests check
 * these bytes against Envoy's descriptor with the strict codec.
 *
 * Field numbers: Any type_url 1, value 2; Secret name 1, tls_certificate 2;
 * TlsCertificate certificate_chain 1, private_key 2; DataSource inline_string 3.
 */
import { createHash } from "node:crypto";
import protobuf from "protobufjs";
import { SDS_TYPE_URL } from "./xds_type_urls.ts";

/** The wire type of strings, bytes and messages. */
const LEN = 2;
const tag = (field: number, wireType: number) => (field << 3 | wireType) >>> 0;

/** The agent's certificate as `default` serves it. */
export interface WorkloadCertificate {
  /** PEM chain, leaf first. */
  chainPem: string;
  /** PEM PKCS#8 private key of the leaf. */
  keyPem: string;
  /** First 16 hex digits of the SHA-256 of the chain: the SDS version. */
  version: string;
}

/** The agent's chain and key as the `default` secret serves them, with their version. */
export function workloadCertificate(chainPem: string, keyPem: string): WorkloadCertificate {
  const version = createHash("sha256").update(chainPem).digest("hex").slice(0, 16);
  return { chainPem, keyPem, version };
}

/**
 * One Secret named `name` with a `tls_certificate`
 * (`envoy.extensions.transport_sockets.tls.v3.Secret`), as the
 * `google.protobuf.Any` a discovery response carries.
 */
export function tlsCertificateSecret(name: string, cert: WorkloadCertificate): Uint8Array {
  const dataSource = (text: string) =>
    protobuf.Writer.create().uint32(tag(3, LEN)).string(text).finish();
  const tlsCertificate = protobuf.Writer.create()
    .uint32(tag(1, LEN)).bytes(dataSource(cert.chainPem))
    .uint32(tag(2, LEN)).bytes(dataSource(cert.keyPem))
    .finish();
  const secret = protobuf.Writer.create()
    .uint32(tag(1, LEN)).string(name)
    .uint32(tag(2, LEN)).bytes(tlsCertificate)
    .finish();
  return protobuf.Writer.create()
    .uint32(tag(1, LEN)).string(SDS_TYPE_URL)
    .uint32(tag(2, LEN)).bytes(secret)
    .finish();
}
