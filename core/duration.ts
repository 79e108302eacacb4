import { z } from "zod";

const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };
const DURATION = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$/;
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;

/**
 * Parses a Go-style duration (`250ms`, `5s`, `1m30s`, `72h`) into milliseconds,
 * the notation Consul, Envoy and Istio operators already write.
 * Returns `undefined` when the text is not a duration.
 */
export function parseDuration(text: string): number | undefined {
  if (!DURATION.test(text)) return undefined;
  let total = 0;
  for (const [, value, unit] of text.matchAll(PART)) {
    total += Number(value) * UNIT_MS[unit!]!;
  }
  return Math.round(total);
}

/** Formats milliseconds as the shortest duration text that {@link parseDuration} reads back. */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0s";
  const parts: string[] = [];
  let rest = ms;
  for (const unit of ["h", "m", "s", "ms"] as const) {
    const size = UNIT_MS[unit]!;
    const count = Math.floor(rest / size);
    if (count > 0) parts.push(`${count}${unit}`);
    rest -= count * size;
  }
  return parts.join("");
}

/** Options of {@link durationSchema}. */
export interface DurationBounds {
  /** Smallest accepted value in milliseconds. Default: 1. */
  min?: number;
  /** Largest accepted value in milliseconds. Default: 30 days. */
  max?: number;
}

/** A zod schema that accepts duration text and yields milliseconds, within bounds. */
export function durationSchema(bounds: DurationBounds = {}) {
  const min = bounds.min ?? 1;
  const max = bounds.max ?? 30 * 86_400_000;
  return z.string().transform((text, ctx) => {
    const ms = parseDuration(text);
    if (ms === undefined) {
      ctx.addIssue({
        code: "custom",
        message: `Invalid duration "${text}": use a number with a unit, e.g. 500ms, 5s, 1m, 72h`,
      });
      return z.NEVER;
    }
    if (ms < min || ms > max) {
      ctx.addIssue({
        code: "custom",
        message: `Duration "${text}" is out of range: must be between ${formatDuration(min)} and ${
          formatDuration(max)
        }`,
      });
      return z.NEVER;
    }
    return ms;
  });
}
