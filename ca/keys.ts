/**
 * Where CA private keys live. The authority asks a {@link KeyBackend} for a
 * named ECDSA P-256 key and gets WebCrypto keys back; whether the key sits in
 * a file, is encrypted, or one day lives in an HSM or KMS is the backend's
 * business alone (the smallstep/SPIRE "key manager" split).
 */
import { Buffer } from "node:buffer";
import { createPrivateKey, createPublicKey, type KeyObject } from "node:crypto";
import { join } from "node:path";
import { InvalidError, NotFoundError } from "../core/errors.ts";
import { type CaMaterial, DirectoryMaterial } from "./material.ts";
import type { Bytes } from "./der.ts";
import { encodePem } from "./pem.ts";

/** The only key type the CA signs with or accepts. */
export const P256 = { name: "ECDSA", namedCurve: "P-256" } as const;

/** A P-256 key pair ready for WebCrypto. */
export interface SigningKey {
  /** The backend's name for the key, e.g. `gen-1/root`. */
  name: string;
  /** Signs with `{ name: "ECDSA", hash: "SHA-256" }`; not extractable. */
  privateKey: CryptoKey;
  /** Extractable, so certificates can embed it. */
  publicKey: CryptoKey;
  /** The public key as DER SubjectPublicKeyInfo. */
  spki: Bytes;
}

/** Loads, creates and stores named ECDSA P-256 private keys. */
export interface KeyBackend {
  /** Creates a new key, stores it under `name` (replacing any old one) and returns it. */
  generate(name: string): Promise<SigningKey>;
  /** The key stored under `name`; `NotFoundError` when there is none. */
  load(name: string): Promise<SigningKey>;
  /** Stores a P-256 key given as PKCS#8 DER under `name` and returns it. */
  store(name: string, pkcs8: Uint8Array): Promise<SigningKey>;
  /** Destroys the key stored under `name`; nothing happens when there is none. */
  remove(name: string): Promise<void>;
}

/** Options of {@link PemKeyBackend}. */
export interface PemKeyBackendOptions {
  /**
   * Encrypts keys at rest (PKCS#8 PBES2, AES-256-CBC, as `openssl pkcs8
   * -topk8 -v2 aes-256-cbc` writes them). Default: none, keys are plain PKCS#8.
   */
  passphrase?: string;
}

/** Options of {@link FileKeyBackend}. */
export type FileKeyBackendOptions = PemKeyBackendOptions;

const NAME = /^[a-z0-9][a-z0-9._-]*(\/[a-z0-9][a-z0-9._-]*)*$/;

/**
 * Keys as PEM texts `<name>.key` in the CA's material (`material.ts`): files
 * of mode 0600 on one server, rows of the shared store for replicas. A name
 * may contain `/` to group keys (`gen-1/root` is `gen-1/root.key`).
 */
export class PemKeyBackend implements KeyBackend {
  readonly #material: CaMaterial;
  readonly #passphrase: string | undefined;

  constructor(material: CaMaterial, options: PemKeyBackendOptions = {}) {
    this.#material = material;
    this.#passphrase = options.passphrase;
  }

  /** The name in the material of the key `name`. */
  fileOf(name: string): string {
    if (!NAME.test(name) || name.split("/").some((s) => s === "." || s === "..")) {
      throw new InvalidError(
        `Key name "${name}" is not valid: use lower-case segments joined by "/"`,
      );
    }
    return `${name}.key`;
  }

  async generate(name: string): Promise<SigningKey> {
    const pair = await crypto.subtle.generateKey(P256, true, ["sign", "verify"]);
    const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
    return await this.store(name, pkcs8);
  }

  async load(name: string): Promise<SigningKey> {
    const file = this.fileOf(name);
    const source = this.#material.describe(file);
    const text = await this.#material.read(file);
    if (text === undefined) {
      throw new NotFoundError(`Key "${name}" does not exist: no "${source}"`);
    }
    const key = parsePrivateKeyPem(text, { source, passphrase: this.#passphrase });
    return await toSigningKey(name, key);
  }

  async store(name: string, pkcs8: Uint8Array): Promise<SigningKey> {
    const file = this.fileOf(name);
    const key = parsePrivateKeyDer(pkcs8, `key "${name}"`);
    await this.#material.write(file, encodePrivateKeyPem(key, this.#passphrase), {
      secret: true,
    });
    return await toSigningKey(name, key);
  }

  remove(name: string): Promise<void> {
    return this.#material.remove(this.fileOf(name));
  }
}

/** Keys as PEM files `<dir>/<name>.key` (see {@link PemKeyBackend}). */
export class FileKeyBackend extends PemKeyBackend {
  readonly #dir: string;

  constructor(dir: string, options: FileKeyBackendOptions = {}) {
    super(new DirectoryMaterial(dir), options);
    this.#dir = dir;
  }

  /** The file that holds the key `name`. */
  pathOf(name: string): string {
    return join(this.#dir, this.fileOf(name));
  }
}

/**
 * A private key as PEM: plain PKCS#8, or with `passphrase` encrypted PKCS#8
 * (PBES2, AES-256-CBC), the one format CA keys are kept in at rest.
 */
export function encodePrivateKeyPem(key: KeyObject, passphrase: string | undefined): string {
  return passphrase === undefined ? encodePem("PRIVATE KEY", exportPkcs8(key)) : key.export({
    type: "pkcs8",
    format: "pem",
    cipher: "aes-256-cbc",
    passphrase,
  }) as string;
}

/** Options of {@link parsePrivateKeyPem}. */
export interface ParseKeyOptions {
  /** Names the key in errors, e.g. its file. */
  source: string;
  /** Decrypts an encrypted PEM. Default: none. */
  passphrase?: string | undefined;
}

/**
 * A P-256 private key from PEM: PKCS#8 (`PRIVATE KEY`), encrypted PKCS#8
 * (`ENCRYPTED PRIVATE KEY`) or SEC 1 (`EC PRIVATE KEY`, what `openssl
 * ecparam -genkey` writes). Every failure is an `InvalidError` that names
 * `source` and says what to do; a wrong passphrase is said to be one.
 */
export function parsePrivateKeyPem(text: string, options: ParseKeyOptions): KeyObject {
  const key = decodePrivateKeyPem(text, options);
  requireP256(key, options.source);
  return key;
}

/** {@link parsePrivateKeyPem} for a key of any algorithm (the join tokens' Ed25519 key). */
export function decodePrivateKeyPem(text: string, options: ParseKeyOptions): KeyObject {
  const { source, passphrase } = options;
  const encrypted = /-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: *4, *ENCRYPTED/.test(text);
  const problem = (message: string) => new InvalidError(message, [{ pointer: "", message }]);
  if (encrypted && passphrase === undefined) {
    throw problem(`Key "${source}" is encrypted: a passphrase is needed to read it`);
  }
  if (!/-----BEGIN (ENCRYPTED |EC )?PRIVATE KEY-----/.test(text)) {
    throw problem(`Key "${source}" is not a PEM private key: expected a "PRIVATE KEY" block`);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(
      passphrase === undefined
        ? { key: text, format: "pem" }
        : { key: text, format: "pem", passphrase },
    );
  } catch {
    throw problem(
      encrypted
        ? `Cannot decrypt key "${source}": the passphrase is wrong`
        : `Key "${source}" cannot be read: the PEM does not hold a valid private key`,
    );
  }
  return key;
}

function parsePrivateKeyDer(pkcs8: Uint8Array, source: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: Buffer.from(pkcs8), format: "der", type: "pkcs8" });
  } catch {
    throw new InvalidError(`The ${source} is not a valid PKCS#8 private key`);
  }
  requireP256(key, source);
  return key;
}

function requireP256(key: KeyObject, source: string): void {
  const what = describeKey(key);
  if (what !== "ECDSA P-256") {
    const message = `Key algorithm "${what}" is not allowed: use ECDSA P-256`;
    throw new InvalidError(`${message} (${source})`, [{ pointer: "", message }]);
  }
}

const CURVES: Readonly<Record<string, string>> = {
  prime256v1: "P-256",
  secp384r1: "P-384",
  secp521r1: "P-521",
};

/** A short human name for a key's algorithm: `ECDSA P-256`, `RSA 2048`, `Ed25519`. */
export function describeKey(key: KeyObject): string {
  const details = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case "ec": {
      const curve = details.namedCurve ?? "unknown curve";
      return `ECDSA ${CURVES[curve] ?? curve}`;
    }
    case "rsa":
      return `RSA ${details.modulusLength ?? "?"}`;
    case "rsa-pss":
      return `RSA-PSS ${details.modulusLength ?? "?"}`;
    case "ed25519":
      return "Ed25519";
    case "ed448":
      return "Ed448";
    default:
      return key.asymmetricKeyType ?? "unknown";
  }
}

/** {@link describeKey} for a DER SubjectPublicKeyInfo; `fallback` when node:crypto cannot read it. */
export function describeSpki(spki: Uint8Array, fallback: string): string {
  try {
    return describeKey(createPublicKey({ key: Buffer.from(spki), format: "der", type: "spki" }));
  } catch {
    return fallback;
  }
}

function exportPkcs8(key: KeyObject): Bytes {
  return new Uint8Array(key.export({ type: "pkcs8", format: "der" }));
}

/** WebCrypto keys for a P-256 node:crypto private key. */
export async function toSigningKey(name: string, key: KeyObject): Promise<SigningKey> {
  const privateKey = await crypto.subtle.importKey("pkcs8", exportPkcs8(key), P256, false, [
    "sign",
  ]);
  const spki = new Uint8Array(
    createPublicKey(key).export({ type: "spki", format: "der" }),
  );
  const publicKey = await crypto.subtle.importKey("spki", spki, P256, true, ["verify"]);
  return { name, privateKey, publicKey, spki };
}
