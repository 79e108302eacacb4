/** The backup route: an online backup of the server's state, admin only. */
import type { ApiContext } from "./app.ts";
import { resource } from "./operation.ts";

/** The backup route. */
export const BACKUP = resource({
  prefix: "/v1/backup",
  operations: {
    getBackup: {
      method: "get",
      path: "",
      tag: "Operations",
      summary: "Take an online backup",
      access: "admin",
      replies: [{
        status: 200,
        description: "The backup archive (gzip-compressed JSON)",
        body: {
          mediaType: "application/gzip",
          schema: { type: "string", contentMediaType: "application/gzip" },
        },
        headers: ["Content-Disposition"],
      }],
    },
  },
});

/** The sub-app of {@link BACKUP}. */
export function backupApp({ deps, resourceApp }: ApiContext) {
  const { log, registry } = deps;
  return resourceApp(BACKUP, {
    getBackup: async (c) => {
      const archive = await deps.backup();
      log.info("Backup taken", { bytes: archive.length, revision: registry.feed.revision });
      return c.body(archive as Uint8Array<ArrayBuffer>, 200, {
        "content-type": "application/gzip",
        "content-disposition": 'attachment; filename="ironmesh-backup.json.gz"',
      });
    },
  });
}
