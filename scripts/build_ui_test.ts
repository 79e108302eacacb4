import assert from "node:assert/strict";
import { ASSETS_FILE, uiAssetsModule, UPDATE_COMMAND } from "./build_ui.ts";

Deno.test("api/ui/assets.ts is built from the dashboard's sources as they are", async () => {
  const committed = await Deno.readTextFile(ASSETS_FILE).catch(() => "");
  assert.ok(
    committed === await uiAssetsModule(),
    `api/ui/assets.ts is stale (the client in api/ui/client/ or a core/ module it bundles changed): run \`${UPDATE_COMMAND}\``,
  );
});
