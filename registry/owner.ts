/** Who may write a node: an agent only its own, and only with the token that registered it. */
import { ForbiddenError } from "../core/errors.ts";

/** The caller of a registry write, as far as the registry cares. */
export interface Actor {
  tokenId: string;
  role: string;
  node: string | null;
}

/** Throws `ForbiddenError` when `actor` may not act on node `name` (owned by token `owner`). */
export function checkOwner(actor: Actor, name: string, owner: string | undefined): void {
  if (actor.role !== "agent") return;
  if (actor.node !== null && actor.node !== name) {
    throw new ForbiddenError(`This agent is bound to node "${actor.node}", not "${name}"`);
  }
  if (owner !== undefined && owner !== actor.tokenId) {
    throw new ForbiddenError(`Node "${name}" is registered by another agent token`);
  }
}
