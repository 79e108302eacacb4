/**
 * `@bufbuild/protobuf`'s registry of the descriptor the strict codec uses
 * (`xds/proto/envoy_descriptor.json`), for the codec bench (`codec.ts`) and
 * the test that records why the library does not replace the codec
 * (`codec_library_test.ts`).
 *
 * @module
 */
import { createFileRegistry, type FileRegistry, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import protobuf from "protobufjs";
import descriptorExt from "protobufjs/ext/descriptor.js";
import descriptor from "../../xds/proto/envoy_descriptor.json" with { type: "json" };

// deno-lint-ignore no-explicit-any
type DescriptorJson = any;

/**
 * `@bufbuild/protobuf`'s registry of the same descriptor the codec uses.
 * protobufjs' `toDescriptor()` writes field types relative to their scope,
 * map fields as their value type, and no imports between files; this makes
 * every type name absolute, points map fields at their entry types, and
 * orders the files so that each comes after the files it uses.
 */
export function bufRegistry(): FileRegistry {
  const root = protobuf.Root.fromJSON(descriptor as protobuf.INamespace).resolveAll();
  const set = (root as DescriptorJson).toDescriptor("proto3") as { file: DescriptorJson[] };
  const fileOfPackage = new Map<string, string>(set.file.map((f) => [f.package ?? "", f.name]));
  const uses = new Map<string, Set<string>>(set.file.map((f) => [f.name, new Set<string>()]));
  const packageOf = (type: protobuf.ReflectionObject) => {
    let at: protobuf.ReflectionObject | null = type;
    while (at instanceof protobuf.Type || at instanceof protobuf.Enum) at = at.parent;
    return at ? at.fullName.slice(1) : "";
  };
  const fix = (message: DescriptorJson, scope: string, file: string) => {
    const name = scope === "" ? message.name : `${scope}.${message.name}`;
    const found = root.lookup(name);
    for (const field of message.field ?? []) {
      let resolved: protobuf.ReflectionObject | null = null;
      if (found instanceof protobuf.Type) {
        const reflected = Object.values(found.fields).find((f) => f.id === field.number);
        if (reflected instanceof protobuf.MapField) {
          const entry = (message.nestedType ?? []).find((n: DescriptorJson) =>
            n.name.toLowerCase().startsWith(reflected.name.toLowerCase())
          );
          field.typeName = `.${name}.${entry.name}`;
          continue;
        }
        resolved = reflected?.resolvedType ?? null;
      } else if (field.name === "value") {
        // A map entry: its value has the map field's type.
        const parent = root.lookupType(scope);
        resolved = Object.values(parent.fields).find((f) =>
          f.map && message.name.toLowerCase().startsWith(f.name.toLowerCase())
        )?.resolvedType ?? null;
      }
      if (!resolved) continue;
      field.typeName = resolved.fullName;
      const used = fileOfPackage.get(packageOf(resolved));
      if (used !== undefined && used !== file) uses.get(file)!.add(used);
    }
    for (const nested of message.nestedType ?? []) fix(nested, name, file);
  };
  for (const f of set.file) for (const m of f.messageType ?? []) fix(m, f.package ?? "", f.name);
  const ordered: string[] = [];
  const visit = (file: string) => {
    if (ordered.includes(file)) return;
    for (const used of uses.get(file)!) visit(used);
    ordered.push(file);
  };
  set.file.forEach((f) => visit(f.name));
  const byName = new Map(set.file.map((f) => [f.name, f]));
  set.file = ordered.map((n) => ({ ...byName.get(n), dependency: [...uses.get(n)!] }));
  const bytes = (descriptorExt as DescriptorJson).FileDescriptorSet.encode(set).finish();
  return createFileRegistry(fromBinary(FileDescriptorSetSchema, bytes));
}
