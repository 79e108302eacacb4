/**
 * Policy validation, in two passes as a compiler does them:
 *
 * 1. {@link parsePolicy} reads one document on its own: its shape (the zod
 *    schemas of `model.ts`), then what the schemas cannot say (exactly one
 *    of `exact`/`prefix`/`regex`, weights that sum to 100, RE2-safe regexes,
 *    …). Meaning is checked only once the shape is right, since it reads
 *    typed fields; within a pass, every problem is reported.
 * 2. {@link checkPolicy} reads a parsed draft against the rest of the mesh:
 *    the services registered so far, and the policies as they will be once
 *    the batch is applied. It also warns about what is legal but likely a
 *    mistake (a rule that can never match, a fault that never fires).
 *
 * Every problem is located by a JSON pointer from the document's root, so
 * the CLI and the REST API can point at the offending line.
 *
 * This module is the two passes' public face: pass 1 is `parse.ts`, with the
 * per-kind rules in `spec_rules.ts`; pass 2 is `check.ts`, with the judgment
 * of which rules shadow later ones in `shadowing.ts`.
 */
export {
  checkPolicy,
  type KnownService,
  pathNormalizationWeaknesses,
  type PolicyCheck,
  type ValidationContext,
} from "./check.ts";
export { parsePolicy, type ParseResult } from "./parse.ts";
