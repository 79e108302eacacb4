/**
 * The DNS view on disk (`DATA_DIR/dns/view.json`, mode 0600): what the
 * agent's registry watch last saw (`dns_watch.ts`), so that an agent that
 * restarts while the server is down answers DNS from it at once instead of
 * with NXDOMAIN for every name until the server is back. The server's
 * answers replace it as they come.
 *
 * Writes go one at a time and the latest view wins: a view that changes
 * while a write runs is written once more after it, not once per change.
 */
import type { Logger } from "../core/log.ts";
import type { DnsInstance, DnsSubset } from "./dns_zone.ts";
import { writePrivateFile } from "./host.ts";

/** What the zone is built from, as read from the API. */
export interface RegistryView {
  services: { namespace: string; name: string }[];
  instances: DnsInstance[];
  subsets: DnsSubset[];
}

/** The format of the file; another one is ignored (and rewritten). */
const FORMAT = 1;

/** Where the agent keeps its DNS view. */
export function dnsViewPath(dataDir: string): string {
  return `${dataDir}/dns/view.json`;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);
const isText = (v: unknown): v is string => typeof v === "string";
const isLabels = (v: unknown): v is Record<string, string> =>
  isObject(v) && Object.values(v).every(isText);

/** The view in `text`; throws a message naming what is wrong. */
function parseView(text: string): RegistryView {
  const file: unknown = JSON.parse(text);
  if (!isObject(file) || file.format !== FORMAT) {
    throw new Error(`unknown format ${JSON.stringify(isObject(file) ? file.format : file)}`);
  }
  const { services, instances, subsets } = file;
  if (
    !Array.isArray(services) ||
    !services.every((s) => isObject(s) && isText(s.namespace) && isText(s.name))
  ) {
    throw new Error("services: expected a list of {namespace, name}");
  }
  if (
    !Array.isArray(instances) ||
    !instances.every((i) =>
      isObject(i) && isText(i.namespace) && isText(i.service) && isText(i.address) &&
      Number.isInteger(i.port) && isLabels(i.labels)
    )
  ) {
    throw new Error("instances: expected a list of {namespace, service, address, port, labels}");
  }
  if (
    !Array.isArray(subsets) ||
    !subsets.every((s) =>
      isObject(s) && isText(s.namespace) && isText(s.service) && isText(s.name) &&
      isLabels(s.labels)
    )
  ) {
    throw new Error("subsets: expected a list of {namespace, service, name, labels}");
  }
  return { services, instances, subsets } as RegistryView;
}

/**
 * Reads the view at `path`. A missing file is `undefined`; an unreadable
 * one is logged and `undefined` too (the server will fill the view).
 */
export async function loadView(path: string, log: Logger): Promise<RegistryView | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) {
      log.warn("Cannot read the DNS view; starting empty", { path, error });
    }
    return undefined;
  }
  try {
    return parseView(text);
  } catch (error) {
    log.warn("Ignoring an unreadable DNS view", {
      path,
      error: error instanceof Error ? error.message : String(error),
    });
    return undefined;
  }
}

/** Writes views to `path`; see the module comment. */
export class ViewFile {
  readonly #path: string;
  readonly #log: Logger;
  #next: string | undefined;
  #writing: Promise<void> | undefined;

  constructor(path: string, log: Logger) {
    this.#path = path;
    this.#log = log;
  }

  /** Writes `view` soon; never rejects (a failure is logged). */
  save(view: RegistryView): void {
    this.#next = JSON.stringify({ format: FORMAT, ...view });
    this.#writing ??= this.#drain();
  }

  /** Resolves once every saved view is on disk (or failed). */
  async flush(): Promise<void> {
    await this.#writing;
  }

  async #drain(): Promise<void> {
    while (this.#next !== undefined) {
      const text = this.#next;
      this.#next = undefined;
      try {
        await writePrivateFile(this.#path, text);
      } catch (error) {
        // DNS keeps answering from memory; only a restart while the server is down would miss it.
        this.#log.error("Cannot write the DNS view", { path: this.#path, error });
      }
    }
    this.#writing = undefined;
  }
}
