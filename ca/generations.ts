/**
 * CA generations in the CA's material (`material.ts`: a directory, or the
 * shared store). A generation is a root and the intermediate that
 * signs for it, kept under `gen-<N>/` (`root.crt`, `root.key`,
 * `intermediate.crt`, `intermediate.key`; a renewed intermediate is
 * `intermediate-<k>.*`; an imported CA may add `chain.crt`, the CA
 * certificates between its intermediate and its root). `state.json`
 * lists the generations with their stage and which intermediate file is
 * current; it is written last, atomically, so it is the commit point of every
 * change and a crash never leaves a half-made CA in use.
 */
import { z } from "zod";
import type { Clock } from "../core/clock.ts";
import { InvalidError } from "../core/errors.ts";
import {
  type CertFile,
  certFile,
  createIntermediateCertificate,
  createRootCertificate,
  fingerprintOf,
  hex,
} from "./ca_certificates.ts";
import { type ImportFiles, readImport } from "./import.ts";
import type { KeyBackend, SigningKey } from "./keys.ts";
import type { CaMaterial } from "./material.ts";
import { decodeCertificates } from "./pem.ts";
import { activeGeneration, type Stage } from "./rotation.ts";

const GenerationRecordSchema = z.strictObject({
  id: z.number().int().positive(),
  stage: z.enum(["published", "active", "retired"]),
  imported: z.boolean(),
  /** File stem of the current intermediate in `gen-<id>/`. */
  intermediate: z.string().regex(/^intermediate(-[0-9]+)?$/),
  rootFingerprint: z.string().regex(/^[0-9a-f]{64}$/),
  rootNotAfter: z.iso.datetime(),
  intermediateNotAfter: z.iso.datetime(),
  createdAt: z.iso.datetime(),
});
/** One generation as `state.json` records it. */
export type GenerationRecord = z.infer<typeof GenerationRecordSchema>;

const StateSchema = z.strictObject({
  version: z.literal(1),
  trustDomain: z.string(),
  generations: z.array(GenerationRecordSchema).min(1),
});
/** The contents of `state.json`. */
export type CaState = z.infer<typeof StateSchema>;

/** A generation whose files are loaded (every stage but `retired`). */
export interface LoadedGeneration {
  root: CertFile;
  intermediate: CertFile;
  intermediateKey: SigningKey;
  /** Imported CAs only: CA certificates between the intermediate and the root. */
  between: CertFile[];
}

/** A generation just written: its record for `state.json` and its loaded files. */
export interface NewGeneration {
  record: GenerationRecord;
  loaded: LoadedGeneration;
}

/** The file stem of the intermediate that follows `stem`: `intermediate` → `intermediate-2`. */
export function nextIntermediateStem(stem: string): string {
  const n = stem === "intermediate" ? 1 : Number(stem.slice("intermediate-".length));
  return `intermediate-${n + 1}`;
}

/**
 * The files of one CA. It writes certificates and keys but never decides
 * what is current: that is `state.json`, which only {@link save} writes,
 * after every file it names exists.
 */
export class CaDirectory {
  readonly #material: CaMaterial;
  readonly #keys: KeyBackend;

  constructor(material: CaMaterial, keys: KeyBackend) {
    this.#material = material;
    this.#keys = keys;
  }

  /** Where the CA is, for messages. */
  get path(): string {
    return this.#material.where;
  }

  /** The material the CA is kept in. */
  get material(): CaMaterial {
    return this.#material;
  }

  /** `state.json`, checked, or `undefined` before the CA exists. */
  async readState(): Promise<CaState | undefined> {
    const text = await this.#material.read(STATE);
    return text === undefined ? undefined : parseState(text, this.#material.describe(STATE));
  }

  /** Writes `state.json` (atomically, as one file or one row): the commit point of every change. */
  async save(state: CaState): Promise<void> {
    await this.#material.write(STATE, JSON.stringify(state, null, 2) + "\n", { secret: true });
  }

  /** Makes generation `id`'s root and first intermediate, with their keys, in `stage`. */
  async create(id: number, stage: Stage, trustDomain: string, now: number): Promise<NewGeneration> {
    const rootKey = await this.#keys.generate(`gen-${id}/root`);
    const root = await createRootCertificate({ id, trustDomain, key: rootKey, now });
    await this.#writeCert(id, "root.crt", root.pem);
    const stem = "intermediate";
    const loaded = await this.newIntermediate(id, stem, { root, rootKey, trustDomain, now });
    const record: GenerationRecord = {
      id,
      stage,
      imported: false,
      intermediate: stem,
      rootFingerprint: fingerprintOf(root.der),
      rootNotAfter: iso(root.cert.notAfter),
      intermediateNotAfter: iso(loaded.intermediate.cert.notAfter),
      createdAt: iso(now),
    };
    return { record, loaded };
  }

  /** Issues and writes an intermediate for generation `id` under `gen-<id>/<stem>.*`. */
  async newIntermediate(
    id: number,
    stem: string,
    options: { root: CertFile; rootKey: SigningKey; trustDomain: string; now: number },
  ): Promise<LoadedGeneration> {
    const { root, rootKey, trustDomain, now } = options;
    const key = await this.#keys.generate(`gen-${id}/${stem}`);
    const intermediate = await createIntermediateCertificate(
      { id, trustDomain, key, now },
      { root, rootKey },
    );
    await this.#writeCert(id, `${stem}.crt`, intermediate.pem);
    return { root, intermediate, intermediateKey: key, between: [] };
  }

  /** Adopts operator-supplied material as generation 1. */
  async adopt(
    files: ImportFiles,
    options: { clock: Clock; passphrase: string | undefined },
  ): Promise<NewGeneration> {
    const ca = await readImport(files, options);
    const pkcs8 = new Uint8Array(ca.key.export({ type: "pkcs8", format: "der" }));
    const key = await this.#keys.store("gen-1/intermediate", pkcs8);
    const root = certFile(new Uint8Array(ca.root.rawData));
    const intermediate = certFile(new Uint8Array(ca.signing.rawData));
    const between = ca.between.map((c) => certFile(new Uint8Array(c.rawData)));
    await this.#writeCert(1, "root.crt", root.pem);
    await this.#writeCert(1, "intermediate.crt", intermediate.pem);
    await this.#writeCert(1, "chain.crt", between.map((c) => c.pem).join(""));
    const record: GenerationRecord = {
      id: 1,
      stage: "active",
      imported: true,
      intermediate: "intermediate",
      rootFingerprint: fingerprintOf(root.der),
      rootNotAfter: iso(ca.root.notAfter),
      intermediateNotAfter: iso(ca.signing.notAfter),
      createdAt: iso(options.clock.now()),
    };
    return { record, loaded: { root, intermediate, intermediateKey: key, between } };
  }

  /** Reads a generation's files and checks them against `record`. */
  async load(record: GenerationRecord): Promise<LoadedGeneration> {
    const dir = this.#genDir(record.id);
    const read = async (file: string, optional = false): Promise<CertFile[]> => {
      const path = this.#material.describe(`${dir}/${file}`);
      const text = await this.#material.read(`${dir}/${file}`);
      if (text === undefined) {
        if (optional) return [];
        throw corrupt(path, "the file is missing");
      }
      try {
        return decodeCertificates(text).map(certFile);
      } catch {
        throw corrupt(path, "it does not hold valid certificates");
      }
    };
    const [root] = await read("root.crt");
    const [intermediate] = await read(`${record.intermediate}.crt`);
    const between = await read("chain.crt", true);
    if (!root || !intermediate) {
      throw corrupt(this.#material.describe(dir), "a certificate file is empty");
    }
    if (fingerprintOf(root.der) !== record.rootFingerprint) {
      throw corrupt(
        this.#material.describe(`${dir}/root.crt`),
        "it is not the root recorded in state.json",
      );
    }
    const key = await this.#keys.load(`gen-${record.id}/${record.intermediate}`);
    const certSpki = new Uint8Array(intermediate.cert.publicKey.rawData);
    if (hex(certSpki) !== hex(key.spki)) {
      throw corrupt(
        this.#material.describe(`${dir}/${record.intermediate}.key`),
        "it does not match its certificate",
      );
    }
    return { root, intermediate, intermediateKey: key, between };
  }

  /** The key of generation `id`'s root. */
  rootKey(id: number): Promise<SigningKey> {
    return this.#keys.load(`gen-${id}/root`);
  }

  /** Removes the key of a replaced intermediate; its certificate stays for the leaves it signed. */
  removeIntermediateKey(id: number, stem: string): Promise<void> {
    return this.#keys.remove(`gen-${id}/${stem}`);
  }

  #genDir(id: number): string {
    return `gen-${id}`;
  }

  async #writeCert(id: number, file: string, pem: string): Promise<void> {
    await this.#material.write(`${this.#genDir(id)}/${file}`, pem, { secret: false });
  }
}

const STATE = "state.json";

function parseState(text: string, path: string): CaState {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw corrupt(path, "it is not valid JSON");
  }
  const parsed = StateSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw corrupt(path, `/${issue.path.join("/")}: ${issue.message}`);
  }
  activeGeneration(parsed.data.generations);
  return parsed.data;
}

function corrupt(path: string, why: string): InvalidError {
  const message = `CA file "${path}" cannot be used: ${why}`;
  return new InvalidError(message, [{ pointer: "", message }]);
}

/** ISO 8601 of a time. */
export function iso(ms: number | Date): string {
  return new Date(ms).toISOString();
}
