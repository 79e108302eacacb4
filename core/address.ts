/** A host and port pair, as in `--http-addr 127.0.0.1:15080`. */
export interface HostPort {
  host: string;
  port: number;
}

/**
 * Parses `HOST:PORT` or `[IPV6]:PORT`; port 0 means "pick a free port".
 * Returns an error message instead of throwing, for the flag parser to place.
 */
export function parseHostPort(text: string): HostPort | string {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\[\]\s]+)):(\d{1,5})$/.exec(text);
  if (!m) return `Invalid address "${text}": expected HOST:PORT or [IPV6]:PORT`;
  const port = Number(m[3]);
  if (port > 65535) return `Invalid address "${text}": port ${port} is out of range`;
  return { host: m[1] ?? m[2]!, port };
}

/** Formats a host and port back to `HOST:PORT`, bracketing IPv6 hosts. */
export function formatHostPort(addr: HostPort): string {
  return addr.host.includes(":") ? `[${addr.host}]:${addr.port}` : `${addr.host}:${addr.port}`;
}

/** True for addresses that only this machine can reach. */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}
