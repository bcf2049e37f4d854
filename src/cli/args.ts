/**
 * Command-line parsing: `--key value`, `--key=value`, and a bare `--flag` for
 * boolean options. Unknown options are reported by the config loader, with the
 * same one-line-per-problem rule as every other layer.
 */
import { OPTIONS, type OptionSpec } from '../config/options.js';

export interface ParsedArgs {
  readonly flags: Record<string, string>;
  readonly configFile: string | undefined;
  readonly help: boolean;
  readonly version: boolean;
  readonly checkConfig: boolean;
  readonly problems: readonly string[];
}

/** Keys of a table's boolean options: those may be given as a bare `--flag`. */
export function boolKeys(table: readonly OptionSpec[]): ReadonlySet<string> {
  return new Set(table.filter((o) => o.kind.type === 'bool').map((o) => o.key));
}

const BOOL_KEYS = boolKeys(OPTIONS);

export function parseArgs(argv: readonly string[], bools: ReadonlySet<string> = BOOL_KEYS): ParsedArgs {
  const flags: Record<string, string> = {};
  const problems: string[] = [];
  let configFile: string | undefined;
  let help = false;
  let version = false;
  let checkConfig = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') {
      help = true;
      continue;
    }
    if (arg === '--version') {
      version = true;
      continue;
    }
    if (arg === '--check-config') {
      checkConfig = true;
      continue;
    }
    if (!arg.startsWith('--') || arg === '--') {
      problems.push(`${arg}: unexpected argument (options are --key value)`);
      continue;
    }
    const eq = arg.indexOf('=');
    const key = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
    let value: string | undefined = eq < 0 ? undefined : arg.slice(eq + 1);
    if (value === undefined) {
      const next = argv[i + 1];
      if (bools.has(key) && (next === undefined || next.startsWith('--'))) value = 'true';
      else if (next === undefined) {
        problems.push(`--${key}: needs a value`);
        continue;
      } else {
        value = next;
        i++;
      }
    }
    if (key === 'config') configFile = value;
    else flags[key] = value;
  }
  return { flags, configFile, help, version, checkConfig, problems };
}
