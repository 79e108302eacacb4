import { MeshError } from "../core/errors.ts";

/**
 * Prints an error the way every verb does: the message on stderr, no stack
 * for errors the user can fix; returns the exit code (1 for user errors,
 * 2 for bugs) so scripts can tell them apart.
 */
export function reportError(error: unknown): number {
  if (error instanceof MeshError) {
    console.error(`Error: ${error.message}`);
    return 1;
  }
  console.error("Unexpected error:", error);
  return 2;
}
