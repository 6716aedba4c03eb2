import { describe, expect, it } from 'vitest';
import { parseFlags, type FlagDef } from '../../src/cli/flags.js';
import { commandIndex, findCommand } from '../../src/cli/main.js';

const defs: FlagDef[] = [
  { name: 'copies', type: 'integer', default: 1, description: '' },
  { name: 'persistent', type: 'string', bareValue: 'async', choices: ['async', 'sync'], description: '' },
  { name: 'tfork-tcp-close', type: 'boolean', default: true, description: '' },
  { name: 'format', type: 'string', description: '' },
];

describe('parseFlags', () => {
  it('reads --flag value, --flag=value, bare values and booleans', () => {
    const p = parseFlags(['--copies', '4', '--persistent', '--tfork-tcp-close=false', '--format=json', 'src'], defs, 'x');
    expect(p.flags).toEqual({ copies: 4, persistent: 'async', 'tfork-tcp-close': false, format: 'json' });
    expect(p.positionals).toEqual(['src']);
  });
  it('takes an explicit value for a flag with a bare value', () => {
    expect(parseFlags(['--persistent=sync'], defs, 'x').flags.persistent).toBe('sync');
  });
  it('keeps defaults and everything after --', () => {
    const p = parseFlags(['a', '--', '--copies', '2'], defs, 'x');
    expect(p.flags.copies).toBe(1);
    expect(p.positionals).toEqual(['a', '--copies', '2']);
  });
  it('rejects unknown flags, bad integers, bad choices and bad booleans with E_USAGE', () => {
    expect(() => parseFlags(['--nope'], defs, 'x')).toThrow(/unknown flag: --nope/);
    expect(() => parseFlags(['--copies', 'four'], defs, 'x')).toThrow(/integer/);
    expect(() => parseFlags(['--persistent=later'], defs, 'x')).toThrow(/one of async, sync/);
    expect(() => parseFlags(['--tfork-tcp-close=maybe'], defs, 'x')).toThrow(/true or false/);
    try {
      parseFlags(['--copies'], defs, 'x');
    } catch (e) {
      expect((e as { code: string }).code).toBe('E_USAGE');
    }
  });
});

describe('command dispatch', () => {
  it('finds the command word after podman global flags', () => {
    expect(commandIndex(['--runtime', 'runc', '--log-level=debug', 'run', 'x'])).toBe(3);
    expect(commandIndex(['ps'])).toBe(0);
  });
  it('routes tfork commands and leaves podman commands alone', () => {
    expect(findCommand(['info', '--format', 'json'])?.command.name).toBe('info');
    expect(findCommand(['setup'])?.rest).toEqual([]);
    expect(findCommand(['ps', '-a'])).toBeUndefined();
    expect(findCommand(['container', 'clone', 'a', 'b'])).toBeUndefined();
  });
});
