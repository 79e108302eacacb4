/** What the bench drivers share to run load generators as child processes. */

/** Reads newline-delimited JSON from a child's stdout. */
export class JsonLines {
  readonly #reader: ReadableStreamDefaultReader<string>;
  #text = "";

  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  }

  async next<T>(what: string): Promise<T> {
    while (!this.#text.includes("\n")) {
      const { value, done } = await this.#reader.read();
      if (done) throw new Error(`A load process exited before sending ${what}`);
      this.#text += value;
    }
    const end = this.#text.indexOf("\n");
    const line = this.#text.slice(0, end);
    this.#text = this.#text.slice(end + 1);
    return JSON.parse(line) as T;
  }
}

export function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`Timed out after ${timeoutMs} ms ${what}`)),
      timeoutMs,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Splits `total` into `parts` near-equal whole shares. */
export function split(total: number, parts: number): number[] {
  return Array.from(
    { length: parts },
    (_, i) => Math.floor((total * (i + 1)) / parts) - Math.floor((total * i) / parts),
  );
}

/** A load process the bench drives: its JSON lines out, the start signal in. */
export interface LoadChild {
  process: Deno.ChildProcess;
  lines: JsonLines;
}

/** Writes `config` to `file` and starts `script` on it. */
export async function spawnLoad(script: string, config: unknown, file: string): Promise<LoadChild> {
  await Deno.writeTextFile(file, JSON.stringify(config));
  const process = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, file],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  return { process, lines: new JsonLines(process.stdout) };
}

/** Tells every load process to start at `at` (epoch ms), so they begin together. */
export async function startAll(children: readonly LoadChild[], at: number): Promise<void> {
  const start = new TextEncoder().encode(JSON.stringify({ event: "start", at }) + "\n");
  for (const child of children) {
    const writer = child.process.stdin.getWriter();
    await writer.write(start);
    await writer.close();
  }
}

/**
 * In a load process: waits for the driver's start signal ({@link startAll})
 * on stdin and returns when to start (epoch ms).
 */
export async function startSignal(): Promise<number> {
  const reader = Deno.stdin.readable.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("The bench driver closed stdin before the start signal");
    text += value;
  }
  return (JSON.parse(text.slice(0, text.indexOf("\n"))) as { event: "start"; at: number }).at;
}
