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

/** Options of {@link durationSchema} and {@link durationText}. */
export interface DurationBounds {
  /** Smallest accepted value in milliseconds. Default: 1. */
  min?: number;
  /** Largest accepted value in milliseconds. Default: 30 days. */
  max?: number;
}

/** Milliseconds of `text`, or the message that says why it is not a duration within `bounds`. */
function checkDuration(text: string, bounds: DurationBounds): number | { message: string } {
  const min = bounds.min ?? 1;
  const max = bounds.max ?? 30 * 86_400_000;
  const ms = parseDuration(text);
  if (ms === undefined) {
    return {
      message: `Invalid duration "${text}": use a number with a unit, e.g. 500ms, 5s, 1m`,
    };
  }
  if (ms < min || ms > max) {
    return {
      message: `Duration "${text}" is out of range: must be between ${formatDuration(min)} and ${
        formatDuration(max)
      }`,
    };
  }
  return ms;
}

/**
 * A zod schema that accepts duration text and yields milliseconds, within
 * bounds: for settings the program uses as numbers (config files, flags).
 */
export function durationSchema(bounds: DurationBounds = {}) {
  return z.string().transform((text, ctx) => {
    const checked = checkDuration(text, bounds);
    if (typeof checked === "number") return checked;
    ctx.addIssue({ code: "custom", message: checked.message });
    return z.NEVER;
  });
}

/**
 * A zod schema that accepts duration text within bounds and keeps it as
 * written (`500ms`, `2s`, `1m30s`): for stored objects whose history and
 * diffs should show the operator's own words.
 */
export function durationText(bounds: DurationBounds = {}) {
  return z.string().superRefine((text, ctx) => {
    const checked = checkDuration(text, bounds);
    if (typeof checked !== "number") ctx.addIssue({ code: "custom", message: checked.message });
  });
}
