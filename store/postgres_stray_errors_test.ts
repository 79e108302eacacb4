import assert from "node:assert/strict";
import net from "node:net";
import { dropStrayConnectErrors, isStrayConnectError } from "./postgres_stray_errors.ts";

/** A loopback port nothing listens on. */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** The real error `node:net` reports for a refused connection to `port`. */
function refusedConnect(port: number): Promise<Error> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.on("error", (error) => {
      socket.destroy();
      resolve(error);
    });
  });
}

Deno.test("a refused connect to the store's port is recognised; other ports and errors are not", async () => {
  const port = closedPort();
  const refused = await refusedConnect(port);
  assert.equal(isStrayConnectError(refused, port), true);
  assert.equal(isStrayConnectError(refused, port + 1), false);
  assert.equal(isStrayConnectError(new Error("connect ECONNREFUSED"), port), false);
  assert.equal(isStrayConnectError("connect ECONNREFUSED", port), false);
});

Deno.test("while the guard is on, a stray connect error to the database does not fail the process", async () => {
  const port = closedPort();
  const refused = await refusedConnect(port);
  const stop = dropStrayConnectErrors(`postgres://ironmesh@127.0.0.1:${port}/mesh`);
  const seen: unknown[] = [];
  // Registered after the guard, so it sees whether the guard handled the event first.
  const observer = (event: PromiseRejectionEvent) => {
    seen.push(event.defaultPrevented);
    event.preventDefault();
  };
  globalThis.addEventListener("unhandledrejection", observer);
  try {
    void Promise.reject(refused);
    const other = new Error("something else");
    void Promise.reject(other);
    await new Promise((resolve) => setTimeout(resolve, 10));
    assert.deepEqual(seen, [true, false], "the refused connect is dropped, the other error is not");
    stop();
    void Promise.reject(refused);
    await new Promise((resolve) => setTimeout(resolve, 10));
    assert.deepEqual(seen, [true, false, false], "after stop the guard no longer drops it");
  } finally {
    globalThis.removeEventListener("unhandledrejection", observer);
    stop();
  }
});
