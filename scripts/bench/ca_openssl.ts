/**
 * The "what would faster crypto buy" probe of the CA benchmark: ECDSA P-256
 * sign and verify through the host's OpenSSL (`libcrypto.so.3`) called with
 * Deno FFI, next to WebCrypto (RustCrypto `p256`), raw and inside the real
 * signing pipeline. A measurement only: the CA does not use it. Everything
 * here returns `null` when libcrypto or FFI is unavailable.
 */
import { ecdsaDerToRaw, ecdsaRawToDer } from "../../ca/der.ts";

/** Sign and verify rates on one thread. */
export interface OpenSslRates {
  library: string;
  signPerSecond: number;
  verifyPerSecond: number;
}

const SYMBOLS = {
  OpenSSL_version: { parameters: ["i32"], result: "pointer" },
  d2i_AutoPrivateKey: { parameters: ["pointer", "buffer", "i64"], result: "pointer" },
  d2i_PUBKEY: { parameters: ["pointer", "buffer", "i64"], result: "pointer" },
  EVP_sha256: { parameters: [], result: "pointer" },
  EVP_MD_CTX_new: { parameters: [], result: "pointer" },
  EVP_MD_CTX_free: { parameters: ["pointer"], result: "void" },
  EVP_MD_CTX_reset: { parameters: ["pointer"], result: "i32" },
  EVP_DigestSignInit: {
    parameters: ["pointer", "pointer", "pointer", "pointer", "pointer"],
    result: "i32",
  },
  EVP_DigestSign: { parameters: ["pointer", "buffer", "buffer", "buffer", "usize"], result: "i32" },
  EVP_DigestVerifyInit: {
    parameters: ["pointer", "pointer", "pointer", "pointer", "pointer"],
    result: "i32",
  },
  EVP_DigestVerify: {
    parameters: ["pointer", "buffer", "usize", "buffer", "usize"],
    result: "i32",
  },
  EVP_PKEY_free: { parameters: ["pointer"], result: "void" },
} as const;

/** ECDSA P-256/SHA-256 through libcrypto, synchronous on the calling thread. */
export interface Libcrypto {
  version: string;
  /** A signer for a PKCS#8 private key: message → DER ECDSA-Sig-Value. */
  signer(pkcs8: Uint8Array): (data: Uint8Array) => Uint8Array<ArrayBuffer>;
  /** Verifies a DER signature over `data` with a SubjectPublicKeyInfo (parsed on each call). */
  verify(spki: Uint8Array, signature: Uint8Array, data: Uint8Array): boolean;
  close(): void;
}

/** Opens the host's `libcrypto.so.3`, or returns `null` when it (or FFI) is not there. */
export function openLibcrypto(): Libcrypto | null {
  let lib: Deno.DynamicLibrary<typeof SYMBOLS>;
  try {
    lib = Deno.dlopen("libcrypto.so.3", SYMBOLS);
  } catch {
    return null;
  }
  const f = lib.symbols;
  const sha256 = f.EVP_sha256();
  const ctx = f.EVP_MD_CTX_new();
  const keys: Deno.PointerValue[] = [];
  // d2i_* take `const unsigned char **` and advance it: pass a cell holding the address.
  const cellOf = (der: Uint8Array) =>
    new BigUint64Array([BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(der)!))]);
  const version = f.OpenSSL_version(0);
  return {
    version: version ? new Deno.UnsafePointerView(version).getCString() : "libcrypto.so.3",
    signer(pkcs8) {
      const der = pkcs8.slice();
      const key = f.d2i_AutoPrivateKey(null, cellOf(der), BigInt(der.length));
      if (!key) throw new Error("libcrypto cannot read the private key");
      keys.push(key);
      const out = new Uint8Array(80);
      const length = new BigUint64Array(1);
      return (data) => {
        f.EVP_MD_CTX_reset(ctx);
        length[0] = BigInt(out.length);
        if (
          f.EVP_DigestSignInit(ctx, null, sha256, null, key) !== 1 ||
          f.EVP_DigestSign(ctx, out, length, data, BigInt(data.length)) !== 1
        ) throw new Error("EVP_DigestSign failed");
        return out.slice(0, Number(length[0]));
      };
    },
    verify(spki, signature, data) {
      const der = spki.slice();
      const key = f.d2i_PUBKEY(null, cellOf(der), BigInt(der.length));
      if (!key) return false;
      try {
        f.EVP_MD_CTX_reset(ctx);
        return f.EVP_DigestVerifyInit(ctx, null, sha256, null, key) === 1 &&
          f.EVP_DigestVerify(
              ctx,
              signature,
              BigInt(signature.length),
              data,
              BigInt(data.length),
            ) === 1;
      } finally {
        f.EVP_PKEY_free(key);
      }
    },
    close() {
      f.EVP_MD_CTX_free(ctx);
      for (const k of keys) f.EVP_PKEY_free(k);
      lib.close();
    },
  };
}

/** Measures `count` signs and `count` verifies of a certificate-sized message on this thread. */
export async function measureOpenSsl(count = 4000): Promise<OpenSslRates | null> {
  const lib = openLibcrypto();
  if (!lib) return null;
  try {
    const keys = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
      "sign",
      "verify",
    ]);
    const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", keys.privateKey));
    const spki = new Uint8Array(await crypto.subtle.exportKey("spki", keys.publicKey));
    const sign = lib.signer(pkcs8);
    const tbs = crypto.getRandomValues(new Uint8Array(420));
    // Cross-check once: OpenSSL's signature verifies under WebCrypto (DER → raw r‖s).
    const signature = sign(tbs);
    const alg = { name: "ECDSA", hash: "SHA-256" } as const;
    const raw = ecdsaDerToRaw(signature, 32);
    if (
      !lib.verify(spki, signature, tbs) ||
      !(await crypto.subtle.verify(alg, keys.publicKey, raw, tbs))
    ) {
      throw new Error("OpenSSL's signature does not verify");
    }
    const rate = (op: () => unknown) => {
      for (let i = 0; i < 200; i++) op();
      const start = performance.now();
      for (let i = 0; i < count; i++) op();
      return count / ((performance.now() - start) / 1000);
    };
    const signPerSecond = rate(() => sign(tbs));
    const verifyPerSecond = rate(() => lib.verify(spki, signature, tbs));
    return { library: lib.version, signPerSecond, verifyPerSecond };
  } finally {
    lib.close();
  }
}

/**
 * For an in-process experiment only: routes WebCrypto's ECDSA P-256 work of
 * the signing pipeline to libcrypto — `sign` with `signerKey` (whose PKCS#8
 * is `signerPkcs8`), and `verify` with any P-256 key imported from SPKI after
 * this call (the CSR check imports one per request). Everything else goes to
 * WebCrypto as before. Returns the function that undoes it, or `null` when
 * libcrypto is not available.
 */
export function routeEcdsaToOpenSsl(
  signerKey: CryptoKey,
  signerPkcs8: Uint8Array,
): (() => void) | null {
  const lib = openLibcrypto();
  if (!lib) return null;
  const subtle = crypto.subtle;
  const original = { importKey: subtle.importKey, sign: subtle.sign, verify: subtle.verify };
  const spkiOf = new WeakMap<CryptoKey, Uint8Array>();
  const sign = lib.signer(signerPkcs8);
  // A copy, as a plain `Uint8Array<ArrayBuffer>`.
  const bytes = (b: BufferSource): Uint8Array<ArrayBuffer> =>
    ArrayBuffer.isView(b)
      ? new Uint8Array(new Uint8Array(b.buffer, b.byteOffset, b.byteLength))
      : new Uint8Array(new Uint8Array(b));
  const patched = subtle as unknown as Record<string, unknown>;
  patched.importKey = async function (...args: Parameters<SubtleCrypto["importKey"]>) {
    const key = await (original.importKey as (...a: unknown[]) => Promise<CryptoKey>).apply(
      subtle,
      args,
    );
    const [format, data, algorithm] = args;
    if (
      format === "spki" && typeof algorithm === "object" &&
      (algorithm as EcKeyImportParams).name === "ECDSA" &&
      (algorithm as EcKeyImportParams).namedCurve === "P-256"
    ) spkiOf.set(key, bytes(data as BufferSource));
    return key;
  };
  patched.sign = function (algorithm: unknown, key: CryptoKey, data: BufferSource) {
    if (key !== signerKey) {
      return (original.sign as (...a: unknown[]) => Promise<ArrayBuffer>).call(
        subtle,
        algorithm,
        key,
        data,
      );
    }
    const raw = ecdsaDerToRaw(sign(bytes(data)), 32);
    return Promise.resolve(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  };
  patched.verify = function (
    algorithm: unknown,
    key: CryptoKey,
    signature: BufferSource,
    data: BufferSource,
  ) {
    const spki = spkiOf.get(key);
    if (!spki) {
      return (original.verify as (...a: unknown[]) => Promise<boolean>).call(
        subtle,
        algorithm,
        key,
        signature,
        data,
      );
    }
    const raw = bytes(signature);
    if (raw.length !== 64) return Promise.resolve(false);
    return Promise.resolve(lib.verify(spki, ecdsaRawToDer(raw), bytes(data)));
  };
  return () => {
    delete patched.importKey;
    delete patched.sign;
    delete patched.verify;
    lib.close();
  };
}

if (import.meta.main) console.log(await measureOpenSsl());
