/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
/**
 * Entry point of one signing worker (see `sign_pool.ts`): holds the current
 * signer and runs `issueLeaf` for each request, answering with the leaf or
 * the flattened domain error.
 */
import { issueLeaf, type Signer } from "./pipeline.ts";
import { type FromWorker, toWire, type ToWorker } from "./sign_pool.ts";

let signer: Signer | undefined;

self.onmessage = async (e: MessageEvent<ToWorker>) => {
  const msg = e.data;
  if (msg.type === "signer") {
    signer = msg.signer;
    return;
  }
  let reply: FromWorker;
  try {
    if (!signer) throw new Error("Signing worker has no signer yet");
    reply = { id: msg.id, leaf: await issueLeaf(signer, msg.request, msg.limits) };
  } catch (err) {
    reply = { id: msg.id, error: toWire(err) };
  }
  self.postMessage(reply);
};
