/**
 * The protobuf bytes of resources and of the few response fields the ADS
 * servers write themselves, encoded once per resource and shared by every
 * stream that is sent it.
 *
 * @module
 */
import type { JsonObject, Resource } from "./generate/model.ts";
import * as codec from "./proto/codec.ts";

/**
 * Resource bytes, encoded once per resource body and shared by every
 * response that carries it: encoding dominated the cost of a push to many
 * proxies. Keyed by the body object, so bytes live as long as some snapshot
 * holds the body and need no sweeping.
 */
export class ResourceEncoder {
  readonly #values = new WeakMap<JsonObject, Uint8Array>();
  readonly #entries = new WeakMap<JsonObject, Uint8Array>();
  /** Parts shared by many bodies (a service port's server filter chain), encoded once. */
  readonly #anys: codec.AnyReuse = new WeakMap();

  /** The resource's own protobuf bytes (the `value` of its Any). */
  value(resource: Resource): Uint8Array {
    let bytes = this.#values.get(resource.body);
    if (!bytes) {
      bytes = codec.encodeStrict(
        resource.typeUrl.slice(resource.typeUrl.indexOf("/") + 1),
        resource.body,
        { reuse: this.#anys },
      );
      this.#values.set(resource.body, bytes);
    }
    return bytes;
  }

  /**
   * `resources` field (2) of a DiscoveryResponse holding the resource as an
   * Any, tag and length included: responses are these entries concatenated.
   */
  entry(resource: Resource): Uint8Array {
    let bytes = this.#entries.get(resource.body);
    if (!bytes) {
      const any = concat([
        stringField(1, resource.typeUrl),
        bytesField(2, this.value(resource)),
      ]);
      bytes = bytesField(2, any);
      this.#entries.set(resource.body, bytes);
    }
    return bytes;
  }
}

const UTF8 = new TextEncoder();

function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}

/** A length-delimited protobuf field. */
export function bytesField(field: number, value: Uint8Array): Uint8Array {
  const head = [...varint((field << 3) | 2), ...varint(value.length)];
  const out = new Uint8Array(head.length + value.length);
  out.set(head);
  out.set(value, head.length);
  return out;
}

/** A string protobuf field; empty strings are left out, as protobuf does. */
export function stringField(field: number, value: string): Uint8Array {
  return value === "" ? new Uint8Array() : bytesField(field, UTF8.encode(value));
}

/** The parts, one after the other. */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
