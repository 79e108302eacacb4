/**
 * The stage machine of CA generations, kept pure so every rule is a unit
 * test. A generation is a root and the intermediate it signs with:
 *
 *     published ──activate──▶ active ──(another is activated)──▶ published
 *         │                                                         │
 *         └──────────────────────retire──────────▶ retired ◀────────┘
 *
 * `published` roots are in the trust bundle but do not sign; the one
 * `active` generation signs and is trusted; `retired` is final and leaves the
 * bundle. Rolling back is activating an older generation that is still
 * published.
 */
import { ConflictError, NotFoundError } from "../core/errors.ts";

/** Where a generation is in its life. */
export type Stage = "published" | "active" | "retired";

/** What the rules need to know of a generation. */
export interface StagedGeneration {
  id: number;
  stage: Stage;
  /** Operator-supplied material: we hold no root key, so we cannot make a successor. */
  imported: boolean;
}

/** The active generation; throws when the set breaks the "exactly one active" rule. */
export function activeGeneration<T extends StagedGeneration>(generations: readonly T[]): T {
  const active = generations.filter((g) => g.stage === "active");
  if (active.length !== 1) {
    throw new ConflictError(
      `CA state is inconsistent: ${active.length} generations are active, exactly 1 must be`,
    );
  }
  return active[0]!;
}

/**
 * The id of the generation `prepareNext` may create: one more than any so far.
 * Refused while an earlier prepared generation waits to be activated, and for
 * an imported CA.
 */
export function nextGenerationId(generations: readonly StagedGeneration[]): number {
  const active = activeGeneration(generations);
  if (active.imported) {
    throw new ConflictError(
      `Cannot prepare a new CA generation: generation "${active.id}" was imported, ` +
        "so its root key is not here; rotate an imported CA by importing new files",
    );
  }
  const pending = generations.find((g) => g.stage === "published" && g.id > active.id);
  if (pending) {
    throw new ConflictError(
      `Cannot prepare a new CA generation: generation "${pending.id}" is already prepared; ` +
        "activate or retire it first",
    );
  }
  return Math.max(...generations.map((g) => g.id)) + 1;
}

function find<T extends StagedGeneration>(generations: readonly T[], id: number): T {
  const g = generations.find((x) => x.id === id);
  if (!g) throw new NotFoundError(`CA generation "${id}" does not exist`);
  return g;
}

/** The generations after activating `id`: it signs, the previous signer stays trusted as `published`. */
export function activateGeneration<T extends StagedGeneration>(
  generations: readonly T[],
  id: number,
): T[] {
  const target = find(generations, id);
  if (target.stage === "active") {
    throw new ConflictError(`Cannot activate CA generation "${id}": it is already active`);
  }
  if (target.stage === "retired") {
    throw new ConflictError(
      `Cannot activate CA generation "${id}": it is retired, and a retired root never signs again`,
    );
  }
  activeGeneration(generations);
  return generations.map((g) => {
    if (g.id === id) return { ...g, stage: "active" };
    if (g.stage === "active") return { ...g, stage: "published" };
    return g;
  });
}

/** The generations after retiring `id`, which drops its root from the trust bundle. */
export function retireGeneration<T extends StagedGeneration>(
  generations: readonly T[],
  id: number,
): T[] {
  const target = find(generations, id);
  if (target.stage === "active") {
    throw new ConflictError(
      `Cannot retire CA generation "${id}": it is active; activate another generation first`,
    );
  }
  if (target.stage === "retired") {
    throw new ConflictError(`Cannot retire CA generation "${id}": it is already retired`);
  }
  return generations.map((g) => g.id === id ? { ...g, stage: "retired" } : g);
}
