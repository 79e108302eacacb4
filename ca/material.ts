/**
 * Where the CA's material lives: named texts (certificates, PEM keys,
 * `state.json`). A single server keeps them as files in its data directory
 * ({@link DirectoryMaterial}); replicas on a shared store keep them in the
 * database ({@link StoreMaterial}), so they all sign under one CA. The CA
 * code above reads and writes names only and never knows which.
 */
import { dirname, join } from "node:path";
import type { SharedCaMaterial } from "../store/store.ts";
import { ensurePrivateDir, readTextIfExists, writeFileAtomic } from "./files.ts";

/** Named texts of the CA, changed one name at a time. */
export interface CaMaterial {
  /** Whether other processes read it too (replicas on a shared store). */
  readonly shared: boolean;
  /** Where the material is, for messages: a directory, or the database. */
  readonly where: string;
  /** How messages name the text `name`: its file, or its name in the database. */
  describe(name: string): string;
  /** The text of `name`, or `undefined`. */
  read(name: string): Promise<string | undefined>;
  /** Stores `text` under `name`; `secret` texts (keys) are private to the server. */
  write(name: string, text: string, options: { secret: boolean }): Promise<void>;
  /** Removes `name`; nothing happens when it is absent. */
  remove(name: string): Promise<void>;
  /** Runs `fn` while no other process changes the material. */
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
}

/**
 * Files under one directory, each written atomically; keys mode 0600,
 * certificates 0644, directories 0700. One process owns the directory (the
 * data directory's lock), so `exclusive` needs no lock of its own.
 */
export class DirectoryMaterial implements CaMaterial {
  readonly shared = false;
  readonly #dir: string;

  constructor(dir: string) {
    this.#dir = dir;
  }

  get where(): string {
    return this.#dir;
  }

  describe(name: string): string {
    return join(this.#dir, name);
  }

  read(name: string): Promise<string | undefined> {
    return readTextIfExists(join(this.#dir, name));
  }

  async write(name: string, text: string, options: { secret: boolean }): Promise<void> {
    const path = join(this.#dir, name);
    await ensurePrivateDir(this.#dir);
    await ensurePrivateDir(dirname(path));
    await writeFileAtomic(path, text, { mode: options.secret ? 0o600 : 0o644 });
  }

  async remove(name: string): Promise<void> {
    try {
      await Deno.remove(join(this.#dir, name));
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }

  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return fn();
  }
}

/** The material of a shared store (`SharedCaMaterial`), which every replica reads. */
export class StoreMaterial implements CaMaterial {
  readonly shared = true;
  readonly #texts: SharedCaMaterial;
  readonly #where: string;

  /** `where` names the database in messages, e.g. `the database ironmesh@db:5432/ironmesh`. */
  constructor(texts: SharedCaMaterial, where: string) {
    this.#texts = texts;
    this.#where = where;
  }

  get where(): string {
    return this.#where;
  }

  describe(name: string): string {
    return `${name} in ${this.#where}`;
  }

  async read(name: string): Promise<string | undefined> {
    return (await this.#texts.read(name)) ?? undefined;
  }

  write(name: string, text: string): Promise<void> {
    return this.#texts.write(name, text);
  }

  remove(name: string): Promise<void> {
    return this.#texts.remove(name);
  }

  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.#texts.exclusive(fn);
  }
}
