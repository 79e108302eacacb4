/**
 * A test double of the Ironmesh server's node endpoints: a real HTTP server on
 * a free loopback port that records every request and answers as a test
 * tells it. Tests only; the real server lives in `api/`.
 */

/** One request the double received. */
export interface RecordedRequest {
  method: string;
  path: string;
  auth: string | null;
  contentType: string | null;
  body: unknown;
}

/** Decides the answer to a request; return `undefined` for the default answer. */
export type Answer = (
  request: RecordedRequest,
  index: number,
) => Response | undefined | Promise<Response | undefined>;

/** A running double; call `close()` in a `finally`. */
export interface ServerDouble {
  url: string;
  requests: RecordedRequest[];
  close(): Promise<void>;
}

/** The answers of a healthy server: registration echoes, heartbeat and delete succeed. */
export function defaultAnswer(request: RecordedRequest): Response {
  if (request.method === "PUT") return Response.json({ node: { name: "vm-1" }, instances: [] });
  if (request.method === "POST") return Response.json({});
  return new Response(null, { status: 204 });
}

/** A problem document as the server sends errors. */
export function problem(status: number, detail: string): Response {
  return new Response(JSON.stringify({ type: "about:blank", title: "Error", status, detail }), {
    status,
    headers: { "content-type": "application/problem+json" },
  });
}

/** Starts the double on 127.0.0.1 and a free port. */
export function startServerDouble(answer: Answer = () => undefined): ServerDouble {
  const requests: RecordedRequest[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    const text = await request.text();
    const recorded: RecordedRequest = {
      method: request.method,
      path: new URL(request.url).pathname,
      auth: request.headers.get("authorization"),
      contentType: request.headers.get("content-type"),
      body: text === "" ? undefined : JSON.parse(text),
    };
    const index = requests.push(recorded) - 1;
    return (await answer(recorded, index)) ?? defaultAnswer(recorded);
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    requests,
    close: () => server.shutdown(),
  };
}
