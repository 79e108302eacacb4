import assert from "node:assert/strict";
import { frame, FrameReader } from "./grpc_fetch.ts";

Deno.test("FrameReader splits gRPC messages however the chunks fall", () => {
  const a = new Uint8Array([1, 2, 3]);
  const b = new Uint8Array(300).fill(7);
  const wire = new Uint8Array([...frame(a), ...frame(new Uint8Array()), ...frame(b)]);
  for (const size of [1, 2, 5, 64, wire.length]) {
    const reader = new FrameReader();
    const out: Uint8Array[] = [];
    for (let at = 0; at < wire.length; at += size) {
      out.push(...reader.push(wire.subarray(at, at + size)));
    }
    assert.deepEqual(out, [a, new Uint8Array(), b], `chunks of ${size}`);
    assert.equal(reader.pending, 0);
  }
  const compressed = frame(a);
  compressed[0] = 1;
  assert.throws(() => new FrameReader().push(compressed), /compressed/);
});
