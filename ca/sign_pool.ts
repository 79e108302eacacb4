/**
 * Runs the signing pipeline on Web Workers. The pipeline is CPU-bound (one
 * ECDSA verify for the CSR, one ECDSA sign for the certificate) and Deno's
 * WebCrypto runs both on the calling thread, so a busy CA would otherwise
 * hold the server's event loop and use one core. Each worker holds a copy of
 * the current {@link Signer}, whose private key is a non-extractable
 * `CryptoKey` passed by structured clone, never as bytes.
 */
import { ForbiddenError, InvalidError, type MeshError, UnavailableError } from "../core/errors.ts";
import type { IssuedLeaf, LeafRequest, Limits, Signer } from "./pipeline.ts";

/** Messages to a signing worker. */
export type ToWorker =
  | { type: "signer"; signer: Signer }
  | { type: "issue"; id: number; request: LeafRequest; limits: Limits };

/** An error as it crosses the worker boundary. */
export interface WireError {
  kind: string;
  message: string;
  problems?: { pointer: string; message: string }[];
}

/** Messages from a signing worker. */
export type FromWorker =
  | { id: number; leaf: IssuedLeaf }
  | { id: number; error: WireError };

/** The domain error a worker reported, rebuilt as the same class on this side. */
export function fromWire(e: WireError): Error {
  switch (e.kind) {
    case "Invalid":
      return new InvalidError(e.message, e.problems ?? []);
    case "Forbidden":
      return new ForbiddenError(e.message);
    case "Unavailable":
      return new UnavailableError(e.message);
    default:
      return new Error(e.message);
  }
}

/** A domain error flattened for `postMessage`. */
export function toWire(e: unknown): WireError {
  const err = e as Partial<MeshError> & { problems?: WireError["problems"] };
  return {
    kind: typeof err.kind === "string" ? err.kind : "Internal",
    message: err instanceof Error ? err.message : String(e),
    ...(err.problems ? { problems: err.problems } : {}),
  };
}

interface Slot {
  worker: Worker;
  pending: number;
}

interface Call {
  slot: Slot;
  resolve: (leaf: IssuedLeaf) => void;
  reject: (e: Error) => void;
}

/** A fixed set of workers that each run `issueLeaf`; requests go to the least busy one. */
export class SigningPool {
  readonly #slots: Slot[] = [];
  readonly #calls = new Map<number, Call>();
  #nextId = 1;
  #closed = false;

  constructor(size: number) {
    for (let i = 0; i < size; i++) {
      const worker = new Worker(new URL("./sign_worker.ts", import.meta.url), { type: "module" });
      const slot: Slot = { worker, pending: 0 };
      worker.onmessage = (e: MessageEvent<FromWorker>) => this.#settle(e.data);
      worker.onerror = (e: ErrorEvent) => {
        e.preventDefault();
        this.#failSlot(slot, new UnavailableError(`Signing worker failed: ${e.message}`));
      };
      this.#slots.push(slot);
    }
  }

  /** Sends the signer every later request uses (messages to a worker stay in order). */
  setSigner(signer: Signer): void {
    for (const s of this.#slots) {
      s.worker.postMessage({ type: "signer", signer } satisfies ToWorker);
    }
  }

  /** Runs the pipeline for `request` on the least busy worker. */
  issue(request: LeafRequest, limits: Limits): Promise<IssuedLeaf> {
    if (this.#closed) return Promise.reject(new UnavailableError("The CA is closed"));
    let slot = this.#slots[0]!;
    for (const s of this.#slots) if (s.pending < slot.pending) slot = s;
    const id = this.#nextId++;
    slot.pending++;
    return new Promise<IssuedLeaf>((resolve, reject) => {
      this.#calls.set(id, { slot, resolve, reject });
      slot.worker.postMessage({ type: "issue", id, request, limits } satisfies ToWorker);
    });
  }

  /** Terminates the workers; calls still waiting fail with `UnavailableError`. */
  close(): void {
    this.#closed = true;
    for (const s of this.#slots) {
      s.worker.terminate();
      this.#failSlot(s, new UnavailableError("The CA is closed"));
    }
  }

  #settle(msg: FromWorker): void {
    const call = this.#calls.get(msg.id);
    if (!call) return;
    this.#calls.delete(msg.id);
    call.slot.pending--;
    if ("leaf" in msg) call.resolve(msg.leaf);
    else call.reject(fromWire(msg.error));
  }

  #failSlot(slot: Slot, error: Error): void {
    for (const [id, call] of this.#calls) {
      if (call.slot !== slot) continue;
      this.#calls.delete(id);
      slot.pending--;
      call.reject(error);
    }
  }
}
