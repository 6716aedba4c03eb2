/**
 * Flags are data: each command declares its flags as a table typed against
 * its options, and one parser reads them podman-style (`--flag value`,
 * `--flag=value`, boolean `--flag` / `--flag=false`).
 */
import { TforkError } from '../errors.js';

export type FlagType = 'boolean' | 'string' | 'integer';

export interface FlagDef {
  name: string;
  type: FlagType;
  description: string;
  /** For string flags that may appear bare (`--persistent`): the value it then takes. */
  bareValue?: string;
  choices?: string[];
  default?: string | number | boolean;
  /** Placeholder shown in help. */
  arg?: string;
  /** One-letter alias (`-c` for `--command`). */
  short?: string;
  /** A string flag that may be given many times (`-c A -c B`): its value is the list. */
  multiple?: boolean;
}

export interface Parsed {
  flags: Record<string, string | number | boolean | string[]>;
  positionals: string[];
}

export function parseFlags(argv: string[], defs: FlagDef[], command: string): Parsed {
  const byName = new Map(defs.flatMap((d) => [[d.name, d] as const, ...(d.short ? [[d.short, d] as const] : [])]));
  const flags: Parsed['flags'] = {};
  const positionals: string[] = [];
  for (const d of defs) if (d.default !== undefined) flags[d.name] = d.default;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!a.startsWith('-') || a === '-') {
      positionals.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = (eq >= 0 ? a.slice(0, eq) : a).replace(/^--?/, '');
    const inline = eq >= 0 ? a.slice(eq + 1) : undefined;
    const d = byName.get(name);
    if (!d) throw new TforkError('E_USAGE', `unknown flag: ${eq >= 0 ? a.slice(0, eq) : a} (for ${command})`, { suggestions: [`see podman-tfork ${command} --help`] });
    let value: string | undefined = inline;
    if (d.type === 'boolean') {
      if (value === undefined) flags[d.name] = true;
      else if (/^(true|false)$/i.test(value)) flags[d.name] = value.toLowerCase() === 'true';
      else throw new TforkError('E_USAGE', `--${d.name} takes true or false, not ${JSON.stringify(value)}`);
      continue;
    }
    if (value === undefined) {
      if (d.bareValue !== undefined) {
        flags[d.name] = d.bareValue;
        continue;
      }
      value = argv[++i];
      if (value === undefined) throw new TforkError('E_USAGE', `--${d.name} needs a value`);
    }
    if (d.choices && !d.choices.includes(value)) {
      throw new TforkError('E_USAGE', `--${d.name} must be one of ${d.choices.join(', ')}, not ${JSON.stringify(value)}`);
    }
    if (d.type === 'integer') {
      if (!/^-?\d+$/.test(value)) throw new TforkError('E_USAGE', `--${d.name} takes an integer, not ${JSON.stringify(value)}`);
      flags[d.name] = Number(value);
    } else if (d.multiple) flags[d.name] = [...((flags[d.name] as string[] | undefined) ?? []), value];
    else flags[d.name] = value;
  }
  return { flags, positionals };
}

export const FORMAT_FLAG: FlagDef = { name: 'format', type: 'string', arg: 'json', choices: ['json', 'table'], description: 'output format: json for machines' };
export const HELP_FLAG: FlagDef = { name: 'help', type: 'boolean', description: 'show this command\'s help' };
