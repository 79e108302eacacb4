/**
 * `ironmesh completion bash|zsh|fish`: prints a shell completion script made from the program's
 * own command tree (verbs, subcommands, flags and the values a flag takes), so it never falls
 * behind the verbs. Kinds (`get KIND`, `drain KIND`, `delete KIND`) complete too.
 *
 *   source <(ironmesh completion bash)            # or save it in bash-completion's directory
 *   ironmesh completion zsh > "${fpath[1]}/_ironmesh"
 *   ironmesh completion fish > ~/.config/fish/completions/ironmesh.fish
 */
import { type Command, Option } from "commander";
import { POLICY_KINDS } from "../core/policy/model.ts";
import { InvalidError } from "../core/errors.ts";
import { verb } from "./client_support.ts";
import { DRAINABLE } from "./drain.ts";
import { KINDS } from "./kinds.ts";
import { didYouMean } from "./suggest.ts";

/** The shells a script is made for. */
export const SHELLS = ["bash", "zsh", "fish"] as const;
/** One of {@link SHELLS}. */
export type Shell = typeof SHELLS[number];

const POLICY_WORDS = POLICY_KINDS.map((k) => k.toLowerCase());

/** The words a verb's first argument completes to, for verbs whose first argument is a kind. */
const FIRST_ARGUMENT: Readonly<Record<string, readonly string[]>> = {
  get: Object.keys(KINDS),
  drain: DRAINABLE.map((k) => k.replace(/s$/, "")),
  undrain: DRAINABLE.map((k) => k.replace(/s$/, "")),
  delete: [...POLICY_WORDS, "service", "node", "token"],
  history: POLICY_WORDS,
  rollback: POLICY_WORDS,
  completion: SHELLS,
};

/** One command of the tree, flattened: what follows it on the command line. */
interface Entry {
  /** The words that lead to it: `""` for the program, `"token create"` for a subcommand. */
  path: string;
  description: string;
  subcommands: { name: string; description: string }[];
  flags: Flag[];
  /** Completions of its first positional argument. */
  arguments: readonly string[];
}

interface Flag {
  long?: string;
  short?: string;
  description: string;
  /** Whether a value follows the flag. */
  takesValue: boolean;
  /** The values it takes, when they are a fixed list. */
  choices: readonly string[];
  /** Whether the value is a file name. */
  file: boolean;
}

/** Every command of `root`'s tree, the program first. */
function entries(root: Command): Entry[] {
  const out: Entry[] = [];
  const visit = (command: Command, path: string) => {
    out.push({
      path,
      description: command.description(),
      subcommands: command.commands.map((c) => ({ name: c.name(), description: c.description() })),
      flags: [...command.options, helpOption()].map(flagOf),
      arguments: path.includes(" ") ? [] : FIRST_ARGUMENT[path] ?? [],
    });
    for (const sub of command.commands) {
      visit(sub, path === "" ? sub.name() : `${path} ${sub.name()}`);
    }
  };
  visit(root, "");
  return out;
}

function helpOption(): Option {
  return new Option("-h, --help", "display help for command");
}

function flagOf(option: Option): Flag {
  const takesValue = option.required || option.optional;
  return {
    ...(option.long === undefined ? {} : { long: option.long }),
    ...(option.short === undefined ? {} : { short: option.short }),
    description: option.description,
    takesValue,
    choices: choicesOf(option),
    file: takesValue && choicesOf(option).length === 0 && /<(file|dir)/.test(option.flags),
  };
}

function choicesOf(option: Option): readonly string[] {
  return option.argChoices ?? [];
}

/** The completion script of `root` for `shell`. */
export function completionScript(root: Command, shell: Shell): string {
  const tree = entries(root);
  switch (shell) {
    case "bash":
      return bashScript(tree);
    case "zsh":
      // zsh runs bash completion functions through its own bashcompinit: one script to keep.
      return [
        "#compdef ironmesh",
        "# zsh completion for ironmesh: the bash script, through zsh's bashcompinit.",
        "(( $+functions[compdef] )) || { autoload -U +X compinit && compinit -u; }",
        "autoload -U +X bashcompinit && bashcompinit",
        bashScript(tree),
      ].join("\n");
    case "fish":
      return fishScript(tree);
  }
}

function words(flags: Flag[]): string {
  return flags.flatMap((f) => [f.long, f.short]).filter(Boolean).join(" ");
}

/**
 * The bash script: a function that finds the command path typed so far (the words that are not
 * flags and not a flag's value) and offers that command's subcommands, flags, argument words or a
 * flag's values.
 */
function bashScript(tree: Entry[]): string {
  const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
  const pathCases = tree.map((e) =>
    `    ${quote(e.path)}) subs=${quote(e.subcommands.map((s) => s.name).join(" "))}; ` +
    `flags=${quote(words(e.flags))}; args=${quote(e.arguments.join(" "))} ;;`
  );
  const valueFlags = new Map<string, string>();
  for (const e of tree) {
    for (const f of e.flags) {
      if (!f.takesValue) continue;
      const values = f.file ? "@file" : f.choices.join(" ");
      for (const name of [f.long, f.short]) {
        if (name !== undefined) valueFlags.set(`${e.path}|${name}`, values);
      }
    }
  }
  const valueCases = [...valueFlags].map(([key, values]) =>
    `    ${quote(key)}) values=${quote(values)} ;;`
  );
  return `# bash completion for ironmesh (ironmesh completion bash)
_ironmesh_values() {
  case "$1" in
${valueCases.join("\n")}
    *) return 1 ;;
  esac
  printf '%s\\n' "$values"
}

_ironmesh_words() {
  case "$1" in
${pathCases.join("\n")}
    *) return 1 ;;
  esac
}

# COMPREPLY=($(compgen …)) splits on purpose: zsh, which runs this too, has no mapfile.
_ironmesh() {
  # Under zsh (through bashcompinit) arrays count from 0 as in bash, and "path" is not $PATH.
  [[ -n \${ZSH_VERSION-} ]] && setopt localoptions ksharrays
  local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]}
  local cmdpath="" positional=0 i word subs flags args values
  for ((i = 1; i < COMP_CWORD; i++)); do
    word=\${COMP_WORDS[i]}
    if [[ $word == -* ]]; then
      # A flag that takes a value swallows the next word.
      if [[ $word != *=* ]] && _ironmesh_values "$cmdpath|$word" >/dev/null; then
        i=$((i + 1))
      fi
      continue
    fi
    if _ironmesh_words "$cmdpath" && [[ " $subs " == *" $word "* ]]; then
      cmdpath=\${cmdpath:+$cmdpath }$word
    else
      positional=$((positional + 1))
    fi
  done
  COMPREPLY=()
  if values=$(_ironmesh_values "$cmdpath|$prev"); then
    if [[ $values == @file ]]; then
      COMPREPLY=($(compgen -f -- "$cur"))
    else
      COMPREPLY=($(compgen -W "$values" -- "$cur"))
    fi
    return 0
  fi
  _ironmesh_words "$cmdpath" || return 0
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$flags" -- "$cur"))
  elif [[ -n $subs ]]; then
    COMPREPLY=($(compgen -W "$subs" -- "$cur"))
  elif [[ $positional == 0 && -n $args ]]; then
    COMPREPLY=($(compgen -W "$args" -- "$cur"))
  fi
  return 0
}

complete -o default -F _ironmesh ironmesh
`;
}

/** The fish script: one `complete` line per subcommand, flag and argument word. */
function fishScript(tree: Entry[]): string {
  const quote = (s: string) => `'${s.replaceAll("\\", "\\\\").replaceAll("'", "\\'")}'`;
  const firstLine = (s: string) => s.split("\n", 1)[0] ?? "";
  const lines = [
    "# fish completion for ironmesh (ironmesh completion fish)",
    "complete -c ironmesh -f",
  ];
  for (const e of tree) {
    const parts = e.path === "" ? [] : e.path.split(" ");
    // The command path so far: every word of it seen, and none of its subcommands yet.
    const seen = parts.map((p) => `__fish_seen_subcommand_from ${p}`);
    const notDeeper = e.subcommands.length > 0
      ? [`not __fish_seen_subcommand_from ${e.subcommands.map((s) => s.name).join(" ")}`]
      : [];
    const condition = parts.length === 0
      ? "__fish_use_subcommand"
      : [...seen, ...notDeeper].join("; and ");
    for (const sub of e.subcommands) {
      lines.push(
        `complete -c ironmesh -n ${quote(condition)} -a ${quote(sub.name)} -d ${
          quote(firstLine(sub.description))
        }`,
      );
    }
    for (const word of e.arguments) {
      lines.push(`complete -c ironmesh -n ${quote(condition)} -a ${quote(word)}`);
    }
    for (const f of e.flags) {
      const names = [
        f.long === undefined ? "" : `-l ${f.long.replace(/^--/, "")}`,
        f.short === undefined ? "" : `-s ${f.short.replace(/^-/, "")}`,
      ].filter(Boolean).join(" ");
      const value = !f.takesValue
        ? ""
        : f.file
        ? " -r -F"
        : f.choices.length > 0
        ? ` -x -a ${quote(f.choices.join(" "))}`
        : " -x";
      lines.push(
        `complete -c ironmesh -n ${quote(condition)} ${names}${value} -d ${
          quote(firstLine(f.description))
        }`,
      );
    }
  }
  return lines.join("\n") + "\n";
}

/** The `completion` verb; `program` builds the whole command tree it describes. */
export function completionCommand(program: () => Promise<Command>): Command {
  return verb("completion")
    .description("Print a shell completion script: bash, zsh or fish")
    .argument("<shell>", "bash, zsh or fish")
    .addHelpText(
      "after",
      `
Load it:
  bash: source <(ironmesh completion bash), or save it as /etc/bash_completion.d/ironmesh
  zsh:  ironmesh completion zsh > "\${fpath[1]}/_ironmesh"   (then compinit)
  fish: ironmesh completion fish > ~/.config/fish/completions/ironmesh.fish`,
    )
    .action(async (shell: string) => {
      if (!(SHELLS as readonly string[]).includes(shell)) {
        throw new InvalidError(
          `Unknown shell "${shell}"${didYouMean(shell, SHELLS)}: expected "bash", "zsh" or "fish"`,
        );
      }
      Deno.stdout.writeSync(
        new TextEncoder().encode(completionScript(await program(), shell as Shell)),
      );
    });
}
