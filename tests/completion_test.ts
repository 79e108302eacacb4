/**
 * `ironmesh completion bash|zsh|fish`, from the real program: the bash script loads in bash and
 * completes verbs, kinds and flag values; the zsh and fish scripts pass their shell's syntax
 * check and, where the shell can be driven from a script, complete too. zsh and fish come from
 * Debian (`.ci/run` installs them).
 */
import assert from "node:assert/strict";
import { runCli, tempDir } from "./harness.ts";

async function script(shell: string): Promise<string> {
  const out = await runCli(["completion", shell]);
  assert.equal(out.code, 0, out.stderr);
  return out.stdout;
}

async function shell(
  program: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<string> {
  const out = await new Deno.Command(program, { args, env, stdin: "null" }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(
    out.code,
    0,
    `${program} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`,
  );
  return text;
}

const DRIVER = `
t() { COMP_WORDS=("$@"); COMP_CWORD=$(( \${#COMP_WORDS[@]} - 1 )); _ironmesh; echo "\${COMPREPLY[*]}"; }
t ironmesh ge
t ironmesh get ins
t ironmesh get -o ""
t ironmesh token ""
t ironmesh token create --kind ""
t ironmesh get --server http://x no
t ironmesh drain ""
`;

Deno.test("completion bash: loads in bash and completes verbs, kinds and flag values", async () => {
  const dir = await tempDir("completion");
  try {
    await Deno.writeTextFile(`${dir}/ironmesh.bash`, await script("bash"));
    const out = await shell("bash", ["-c", `source ${dir}/ironmesh.bash\n${DRIVER}`]);
    assert.deepEqual(out.split("\n").slice(0, 7), [
      "get",
      "instances",
      "table wide json yaml",
      "create list revoke",
      "api join",
      "nodes",
      "node instance",
    ]);
    assert.match(
      await shell("bash", ["-c", `source ${dir}/ironmesh.bash; complete -p ironmesh`]),
      /-F _ironmesh ironmesh/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("completion zsh: passes zsh -n and registers through bashcompinit", async () => {
  const dir = await tempDir("completion");
  try {
    await Deno.writeTextFile(`${dir}/_ironmesh`, await script("zsh"));
    await shell("zsh", ["-n", `${dir}/_ironmesh`]);
    // zsh filters the words itself (compadd), so what matters here is the command path.
    const out = await shell(
      "zsh",
      ["-c", `source ${dir}/_ironmesh\n${DRIVER}\nprint -r -- "\${_comps[ironmesh]}"`],
      { HOME: dir, ZDOTDIR: dir },
    );
    const lines = out.split("\n");
    assert.equal(lines[2], "table wide json yaml");
    assert.equal(lines[3], "create list revoke");
    assert.match(lines[7]!, /_bash_complete .*-F _ironmesh/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("completion fish: passes fish -n and completes verbs and flag values", async () => {
  const dir = await tempDir("completion");
  try {
    await Deno.writeTextFile(`${dir}/ironmesh.fish`, await script("fish"));
    await shell("fish", ["-n", `${dir}/ironmesh.fish`]);
    const out = await shell("fish", [
      "--no-config",
      "-c",
      `source ${dir}/ironmesh.fish; complete -C 'ironmesh ge'; complete -C 'ironmesh token create --kind '`,
    ]);
    assert.match(out, /^get\tList the objects of a kind/m);
    assert.match(out, /^api\t/m);
    assert.match(out, /^join\t/m);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("completion: an unknown shell is an error naming the shells", async () => {
  const out = await runCli(["completion", "bassh"]);
  assert.equal(out.code, 1);
  assert.match(
    out.stderr,
    /Unknown shell "bassh" \(did you mean "bash"\?\): expected "bash", "zsh" or "fish"/,
  );
});
