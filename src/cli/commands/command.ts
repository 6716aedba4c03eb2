import type { FlagDef, Parsed } from '../flags.js';
import type { Io } from '../render.js';

export interface Command {
  /** Words that select the command (`container clone` is two). */
  name: string;
  usage: string;
  summary: string;
  flags: FlagDef[];
  run(parsed: Parsed, io: Io): Promise<number>;
}
