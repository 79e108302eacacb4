/** The event stream: a server-sent event whenever the registry revision moves. */
import { z } from "zod";
import { streamSSE } from "hono/streaming";
import type { ApiContext } from "./app.ts";
import { headerParam, resource } from "./operation.ts";

/** How long a quiet stream waits before a keepalive comment. */
const KEEPALIVE_MS = 15_000;

/** The event routes. */
export const EVENTS = resource({
  prefix: "/v1/events",
  operations: {
    streamEvents: {
      method: "get",
      path: "",
      tag: "Events",
      summary: "Server-sent events on every change",
      description:
        'A `text/event-stream` that sends `event: change`, `id: <revision>`, `data: {"revision":<n>}` whenever the registry revision moves, and a `: keepalive` comment every 15 s of quiet. Re-fetch what you watch on each event.',
      access: "read",
      params: [{
        ...headerParam(
          "Last-Event-ID",
          z.string(),
          "The last revision the client saw; an event is sent at once if the registry is past it",
        ),
        unchecked: true,
      }],
      replies: [{
        status: 200,
        description: "An endless event stream",
        body: { mediaType: "text/event-stream", schema: { type: "string" } },
      }],
    },
  },
});

/** The sub-app of {@link EVENTS}. */
export function eventsApp({ deps, resourceApp }: ApiContext) {
  const { registry } = deps;
  return resourceApp(EVENTS, {
    streamEvents: (c) => {
      const lastId = Number(c.req.header("last-event-id") ?? -1);
      return streamSSE(c, async (stream) => {
        const feed = registry.feed;
        let sent = Number.isInteger(lastId) ? lastId : -1;
        let wake: () => void = () => {};
        const unsubscribe = feed.subscribe(() => wake());
        stream.onAbort(() => wake());
        try {
          while (!stream.aborted && !stream.closed) {
            const revision = feed.revision;
            if (revision !== sent) {
              await stream.writeSSE({
                event: "change",
                id: String(revision),
                data: JSON.stringify({ revision }),
              });
              sent = revision;
            }
            if (feed.closed) break;
            await new Promise<void>((resolve) => {
              const timer = setTimeout(resolve, KEEPALIVE_MS);
              wake = () => {
                clearTimeout(timer);
                resolve();
              };
            });
            if (feed.revision === sent && !stream.aborted) {
              await stream.write(": keepalive\n\n");
            }
          }
        } finally {
          unsubscribe();
        }
      });
    },
  });
}
