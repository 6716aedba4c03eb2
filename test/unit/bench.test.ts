/** The benchmark's pure pieces: statistics, SVG, flags, tool-output parsers, aggregation. */
import { describe, expect, it } from 'vitest';
import { linearFit, median, summarize } from '../../src/bench/stats.js';
import { barChart, escapeXml, lineChart, niceStep, ticks } from '../../src/bench/svg.js';
import { DEFAULTS, parseBenchArgs } from '../../src/bench/options.js';
import { aggregateRollback, type RollbackSample } from '../../src/bench/rollback.js';
import { renderTable } from '../../src/bench/table.js';
import { parseCheckpointStats, parseRestoreStats } from '../../src/drivers/podman-stats.js';
import { parseSmapsRollup } from '../../src/bench/memory.js';
import { parseCounter } from '../../src/bench/verify.js';
import { pixelDiff } from '../../src/bench/screen.js';
import { aggregate } from '../../src/bench/report.js';
import { charts } from '../../src/bench/charts.js';
import { cliError } from '../../src/bench/contenders.js';
import { columns, setTitle } from '../../src/bench/format.js';
import { measurementSets, type Sample } from '../../src/bench/runner.js';
import { redraw, RESULT_SCHEMA, writeOutputs, type ResultDoc } from '../../src/bench/output.js';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

describe('stats', () => {
  it('median of odd and even counts, unsorted input', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBeNaN();
  });
  it('summarize skips missing values and says undefined for none', () => {
    expect(summarize([5, undefined, 1, 3])).toEqual({ n: 3, median: 3, min: 1, max: 5 });
    expect(summarize([undefined, NaN])).toBeUndefined();
  });
  it('linearFit gives the least-squares slope and refuses a single x', () => {
    const f = linearFit([[0.25, 300], [0.5, 500], [1, 900]])!;
    expect(f.slope).toBeCloseTo(800, 6);
    expect(f.intercept).toBeCloseTo(100, 6);
    expect(linearFit([[1, 2]])).toBeUndefined();
    expect(linearFit([[1, 2], [1, 3]])).toBeUndefined();
  });
});

describe('svg', () => {
  it('picks 1-2-5 ticks that cover the range', () => {
    expect(niceStep(0, 10, 5)).toBe(2);
    expect(niceStep(0, 0.7, 5)).toBe(0.2);
    expect(ticks(0, 3.1, 5)).toEqual([0, 1, 2, 3, 4]);
  });
  it('writes a well-formed chart with one polyline per multi-point series, whiskers and an escaped legend', () => {
    const svg = lineChart({
      title: 'W1 <tiny> & co',
      xLabel: 'copies N',
      yLabel: 'seconds',
      series: [
        { name: 'engine wall', points: [{ x: 1, y: 0.8, min: 0.7, max: 0.9 }, { x: 4, y: 2 }] },
        { name: 'stock frozen', dashed: true, points: [{ x: 1, y: 0.3 }] },
      ],
    });
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trim().endsWith('</svg>')).toBe(true);
    expect(svg).toContain('W1 &lt;tiny&gt; &amp; co');
    expect(svg.match(/<polyline/g)).toHaveLength(1);
    expect(svg.match(/<circle/g)).toHaveLength(3);
    expect(svg).toContain('stroke-dasharray');
    expect(svg).not.toMatch(/NaN|undefined/);
    expect(escapeXml(`"'`)).toBe('&quot;&apos;');
  });
});

describe('bench flags', () => {
  it('defaults: all workloads, N = 1, 4, 8, three sizes, 3 repetitions', () => {
    const o = parseBenchArgs([]);
    expect(o.workloads).toEqual(DEFAULTS.workloads);
    expect(o.copies).toEqual([1, 4, 8]);
    expect(o.sizes).toHaveLength(3);
    expect(o.reps).toBe(3);
  });
  it('--quick is small, and explicit flags win over it', () => {
    const q = parseBenchArgs(['--quick']);
    expect(q.quick).toBe(true);
    expect(q.reps).toBe(1);
    expect(Math.max(...q.copies)).toBeLessThanOrEqual(2);
    expect(parseBenchArgs(['--quick', '--copies', '3']).copies).toEqual([3]);
  });
  it('reads lists, sizes and workloads', () => {
    const o = parseBenchArgs(['--workloads', 'w3,W1,W3', '--copies=8,1,4', '--sizes', '1G,256M', '--reps', '2', '--out', 'x', '--persistent', 'off']);
    expect(o.workloads).toEqual(['W3', 'W1']);
    expect(o.copies).toEqual([1, 4, 8]);
    expect(o.sizes).toEqual([256 * 2 ** 20, 2 ** 30]);
    expect(o).toMatchObject({ reps: 2, out: 'x', persistent: 'off' });
  });
  it('rejects bad values with E_USAGE', () => {
    expect(() => parseBenchArgs(['--workloads', 'W9'])).toThrow(/unknown workload/);
    expect(() => parseBenchArgs(['--copies', '0'])).toThrow(/positive integers/);
    expect(() => parseBenchArgs(['--sizes', 'lots'])).toThrow(/invalid size/);
    expect(() => parseBenchArgs(['--sizes', '10K'])).toThrow(/at least 1M/);
    expect(() => parseBenchArgs(['extra'])).toThrow(/no positional/);
    expect(() => parseBenchArgs(['--nope'])).toThrow(/unknown flag/);
  });
  it('--rollback: W1, W2 and W3 among the workloads by default, W4 when asked, none, and no unknown workload', () => {
    expect(parseBenchArgs([]).rollback).toEqual(['W1', 'W2', 'W3']);
    expect(parseBenchArgs(['--quick']).rollback).toEqual(['W1']);
    expect(parseBenchArgs(['--workloads', 'W3']).rollback).toEqual(['W3']);
    expect(parseBenchArgs(['--workloads', 'W4']).rollback).toEqual([]);
    expect(parseBenchArgs(['--workloads', 'W3', '--rollback', 'w2']).rollback).toEqual(['W2']);
    expect(parseBenchArgs(['--rollback', 'none']).rollback).toEqual([]);
    expect(parseBenchArgs(['--workloads', 'W4', '--rollback', 'W4']).rollback).toEqual(['W4']);
    expect(() => parseBenchArgs(['--rollback', 'W5'])).toThrow(/unknown workload "W5"/);
  });
  it('measurement sets: W3 once per size, the others once', () => {
    const sets = measurementSets({ ...DEFAULTS, workloads: ['W1', 'W3'], copies: [1, 4], sizes: [1, 2] });
    expect(sets.map(setTitle)).toEqual(['W1 N=1', 'W1 N=4', 'W3 0MiB N=1', 'W3 0MiB N=4', 'W3 0MiB N=1', 'W3 0MiB N=4']);
  });
});

describe('tool output', () => {
  // Recorded from podman 4.3.1 with CRIU 4.1.1 on the project's machine.
  const checkpoint = `{
    "podman_checkpoint_duration": 1426197,
    "container_statistics": [{ "Id": "b10f", "RawInput": "bx-desk", "runtime_checkpoint_duration": 341838,
      "criu_statistics": { "freezing_time": 1421, "frozen_time": 292901, "memdump_time": 76292, "memwrite_time": 39387, "pages_scanned": 8279, "pages_written": 7522 } }]
  }`;
  const restore = `{ "podman_restore_duration": 1159527, "container_statistics": [{ "Id": "d22e", "RawInput": "", "runtime_restore_duration": 616708,
    "criu_statistics": { "forking_time": 7654, "restore_time": 499456, "pages_restored": 7522 } }] }`;
  it('reads podman checkpoint/restore --print-stats (microseconds) into milliseconds', () => {
    expect(parseCheckpointStats(checkpoint)).toEqual({
      podmanMs: 1426.197, runtimeMs: 341.838, freezingMs: 1.421, frozenMs: 292.901, memdumpMs: 76.292, memwriteMs: 39.387, pagesWritten: 7522,
    });
    expect(parseRestoreStats(restore)).toEqual({ podmanMs: 1159.527, runtimeMs: 616.708, criuRestoreMs: 499.456 });
    expect(() => parseCheckpointStats('Error: no such container')).toThrow(/not JSON/);
  });
  it('reads smaps_rollup', () => {
    const text = '00400000-7ffd [rollup]\nRss:              262744 kB\nPss:              262740 kB\nPss_Anon:         262700 kB\n';
    expect(parseSmapsRollup(text)).toEqual({ pssKiB: 262740, rssKiB: 262744 });
  });
  it('reads the W1 counter file', () => {
    expect(parseCounter('123456 42\n')).toEqual({ token: '123456', value: 42 });
    expect(parseCounter('')).toBeUndefined();
  });
  it('pixelDiff counts differing pixels and treats other sizes as all different', () => {
    const a = Buffer.from([0, 0, 0, 9, 9, 9]);
    expect(pixelDiff(a, Buffer.from([0, 0, 0, 9, 9, 8]))).toBe(0.5);
    expect(pixelDiff(a, Buffer.from([0, 0, 0]))).toBe(1);
  });
  it('aligns columns', () => {
    expect(columns([['a', 'bb'], ['ccc', 'd']])).toBe('a    bb\nccc  d');
  });
});

describe('aggregation', () => {
  const s = (contender: 'engine' | 'stock', rep: number, wallMs: number, frozenMs: number, ok = true, sizeBytes?: number): Sample => ({
    workload: sizeBytes ? 'W3' : 'W2', sizeBytes, copies: 4, rep, contender, startedAt: '', ok, wallMs, frozenMs, phases: { dump: wallMs / 2 },
    ...(ok ? {} : { failedAt: 'verify', error: 'clone-0: screen differs' }),
  });
  it('medians of verified runs only, speedup pair by pair, failures listed', () => {
    const r = aggregate([s('engine', 1, 1000, 100), s('stock', 1, 3000, 300), s('engine', 2, 2000, 200), s('stock', 2, 5000, 100), s('engine', 3, 1, 1, false), s('stock', 3, 4000, 100)]);
    const engine = r.rows.find((x) => x.contender === 'engine')!;
    expect(engine).toMatchObject({ runs: 3, failures: 1, wallMs: { n: 2, median: 1500, min: 1000, max: 2000 } });
    expect(engine.errors[0]).toMatch(/rep 3 verify: clone-0: screen differs/);
    expect(engine.phases.dump!.median).toBe(750);
    expect(r.ratios[0]).toMatchObject({ pairs: 2, speedup: { median: 2.75, min: 2.5, max: 3 } });
  });
  it('W3 slopes in ms per GiB over the sizes', () => {
    const G = 2 ** 30;
    const r = aggregate([s('engine', 1, 500, 100, true, G / 4), s('engine', 1, 1100, 250, true, G / 2), s('engine', 1, 2300, 550, true, G), s('stock', 1, 900, 200, true, G / 4), s('stock', 1, 3900, 800, true, G)]);
    const e = r.slopes.find((x) => x.contender === 'engine')!;
    expect(e.wallMsPerGiB).toBeCloseTo(2400, 6);
    expect(e.frozenMsPerGiB).toBeCloseTo(600, 6);
    expect(r.slopes.find((x) => x.contender === 'stock')!.wallMsPerGiB).toBeCloseTo(4000, 6);
  });
});

describe('a failed podman-tfork run, in a failure line', () => {
  it("the JSON report's error message, else the last line", () => {
    expect(cliError({ stdout: '{\n  "error": {\n    "message": "restore: podman container restore failed"\n  }\n}\n', stderr: '' })).toBe('restore: podman container restore failed');
    expect(cliError({ stdout: '', stderr: 'Error: a\n  hint: b\n' })).toBe('  hint: b');
  });
});

describe('checkpoint and rollback results', () => {
  const r = (contender: 'engine' | 'engine-incremental' | 'stock', rep: number, checkpointMs: number, rollbackMs: number, ok = true): RollbackSample => ({
    workload: 'W1', rep, contender, startedAt: '', ok, checkpointMs, rollbackMs, frozenMs: checkpointMs / 4, pauseMs: checkpointMs / 3, phases: { 'rollback.stop': rollbackMs / 2 },
    ...(contender === 'engine-incremental' ? { incremental: rep !== 2 } : {}),
    ...(ok ? {} : { failedAt: 'verify', error: 'counter 90 is not behind 80' }),
  });
  const samples = [
    r('engine', 1, 500, 600), r('engine-incremental', 1, 100, 600), r('stock', 1, 1000, 600),
    r('engine', 2, 400, 800), r('engine-incremental', 2, 400, 600), r('stock', 2, 1200, 400),
    r('engine', 3, 1, 1, false), r('engine-incremental', 3, 50, 600), r('stock', 3, 900, 500),
  ];
  it('medians of verified runs, stock/engine pair by pair, failures listed', () => {
    const a = aggregateRollback(samples);
    expect(a.rows.find((x) => x.contender === 'engine')).toMatchObject({ runs: 3, failures: 1, checkpointMs: { median: 450 }, rollbackMs: { median: 700 }, phases: { 'rollback.stop': { median: 350 } } });
    expect(a.rows.find((x) => x.contender === 'engine')!.errors[0]).toMatch(/rep 3 verify: counter 90/);
    expect(a.ratios[0]).toMatchObject({ workload: 'W1', pairs: 2, checkpoint: { min: 2, max: 3 }, rollback: { min: 0.5, max: 1 } });
    // Only runs that dumped the changes only, against the full checkpoint of the same repetition.
    expect(a.ratios[0]!.incremental).toMatchObject({ n: 1, median: 5 });
    expect(a.rows.find((x) => x.contender === 'engine-incremental')).toMatchObject({ runs: 3, incremental: 2, pauseMs: { median: 100 / 3 } });
  });
  it('table section and bar chart', () => {
    const rb = aggregateRollback(samples);
    const table = renderTable({ machine: { id: 'm', hostname: 'h', os: 'Debian', kernel: '6.18', cpus: 2, cpuModel: 'x', memoryGiB: 24, storage: 'btrfs', tier: 'stock-kernel', node: 'v20', loadAtStart: 1, otherContainersAtStart: 0 }, startedAt: '', run: 'r', reps: 3, contenders: ['engine', 'stock'], results: { rows: [], ratios: [], slopes: [], rollback: rb } });
    expect(table).toMatch(/W1 +engine +2\/3 +full +0\.45 \(0\.40-0\.50\)/);
    expect(table).toMatch(/W1 +engine-incremental +3\/3 +changes in 2 +0\.10 \(0\.05-0\.40\)/);
    expect(table).toMatch(/W1 +2 +2\.50x \(2\.00-3\.00\) +0\.75x .* 5\.00x/);
    expect(table).toMatch(/W1 checkpoint\+rollback engine rep 3 verify/);
    const svg = barChart({ title: 'a <b>', yLabel: 's', groups: ['W1 checkpoint', 'W1 rollback'], series: [{ name: 'engine', bars: [{ y: 0.5, min: 0.4, max: 0.6 }, undefined] }, { name: 'stock', bars: [{ y: 1 }, { y: 2 }] }] });
    expect(svg).toMatch(/^<svg [^]*<\/svg>\n$/);
    expect(svg.match(/<rect [^>]*><title>/g)).toHaveLength(3); // bars (the legend has two more rects)
    expect(svg).toContain('a &lt;b&gt;');
  });
  it('W3 at its size: sizes on disk, full against changes in time and in size, a chart of its own', () => {
    const M = 2 ** 20;
    const w3 = (contender: 'engine' | 'engine-incremental' | 'stock', rep: number, checkpointMs: number, bytes: number): RollbackSample => ({
      workload: 'W3', sizeBytes: 1024 * M, rep, contender, startedAt: '', ok: true, checkpointMs, bytes, rollbackMs: 2000, frozenMs: 100,
      ...(contender === 'engine-incremental' ? { incremental: true, firstPauseMs: 600 + rep * 100, firstFrozenMs: 590 } : { pauseMs: 110 }),
    });
    const rb = aggregateRollback([
      ...samples,
      w3('engine', 1, 3000, 1024 * M), w3('engine-incremental', 1, 300, 2 * M), w3('stock', 1, 6000, 1100 * M),
      w3('engine', 2, 2000, 1024 * M), w3('engine-incremental', 2, 400, 4 * M), w3('stock', 2, 5000, 1100 * M),
    ]);
    expect(rb.ratios.find((x) => x.workload === 'W3')).toMatchObject({ sizeBytes: 1024 * M, incremental: { min: 5, max: 10 }, incrementalBytes: { min: 256, max: 512 } });
    const table = renderTable({ machine: { id: 'm', hostname: 'h', os: 'Debian', kernel: '6.18', cpus: 2, cpuModel: 'x', memoryGiB: 24, storage: 'btrfs', tier: 'stock-kernel', node: 'v20', loadAtStart: 1, otherContainersAtStart: 0 }, startedAt: '', run: 'r', reps: 3, contenders: ['engine', 'stock'], results: { rows: [], ratios: [], slopes: [], rollback: rb } });
    expect(table).toMatch(/W3 1GiB +engine +2\/2 +full +2\.50 \(2\.00-3\.00\) +1024\.0 /);
    expect(table).toMatch(/W3 1GiB +engine-incremental +2\/2 +changes +0\.35 \(0\.30-0\.40\) +3\.0 /);
    // What the untimed first checkpoint of each chain cost the source, beside the full one's background capture.
    expect(table).toContain('  W3 1GiB: paused 0.75 (0.70-0.80) inside, frozen 0.59 (0.59-0.59); engine (full, background) paused 0.11 (0.11-0.11)');
    expect(table).toMatch(/W3 1GiB +2 +2\.25x .* 7\.50x \(5\.00-10\.00\) +384\.00x \(256\.00-512\.00\)/);
    const files = charts({ rows: [], ratios: [], slopes: [], rollback: rb }, { id: 'm', hostname: 'h', os: 'Debian', kernel: '6.18', cpus: 2, cpuModel: 'x', memoryGiB: 24, storage: 'btrfs', tier: 'stock-kernel', node: 'v20', loadAtStart: 1, otherContainersAtStart: 0 });
    expect(files.map((f) => f.file)).toEqual(['checkpoint-rollback.svg', 'checkpoint-rollback-w3.svg']);
    expect(files[1]!.svg).toContain('W3 1GiB checkpoint');
    expect(files[0]!.svg).not.toContain('W3');
  });
});

describe('outputs', () => {
  const G = 2 ** 30;
  const sample = (contender: 'engine' | 'stock', sizeBytes: number, copies: number, wallMs: number): Sample => ({
    workload: 'W3', sizeBytes, copies, rep: 1, contender, startedAt: '', ok: true, wallMs, frozenMs: wallMs / 5, phases: { freezing: 1.5 },
    restoreMaxMs: wallMs / 2, ...(contender === 'engine' ? { podmanRestoreMs: wallMs } : {}),
  });
  const samples = [G / 4, G / 2, G].flatMap((size) => [1, 4].flatMap((n) => [sample('engine', size, n, (size / G) * 1000 * n), sample('stock', size, n, (size / G) * 2000 * n)]));
  const doc = (): ResultDoc => ({
    schema: RESULT_SCHEMA, run: 'r1', startedAt: '2026-01-01T00:00:00Z', finishedAt: '2026-01-01T00:01:00Z',
    machine: { id: 'm', hostname: 'h', os: 'Debian', kernel: '6.18', cpus: 2, cpuModel: 'x', memoryGiB: 24, storage: 'btrfs', tier: 'stock-kernel', node: 'v20', loadAtStart: 1, otherContainersAtStart: 0 },
    end: { load: 2, otherContainers: 1 },
    options: { workloads: ['W3'], copies: [1, 4], reps: 1, sizes: [G / 4, G / 2, G], persistent: 'off', quick: false, rollback: [] },
    contenders: ['engine', 'stock'], notes: [],
    sets: [{ workload: 'W3', sizeBytes: G, copies: 4, source: 's', sourceMemory: { pssKiB: 1024 * 1024, rssKiB: 1025 * 1024, processes: 1 } }],
    samples, results: aggregate(samples),
  });
  it('writes the table, the JSON and a chart per W3 size and per N; --from draws them again from the JSON', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tfork-bench-unit-'));
    try {
      const table = writeOutputs(doc(), dir);
      expect(table).toMatch(/W3 1GiB N=4 +stock +1\/1 +8\.00/);
      expect(table).toMatch(/4 +stock +3 +8000 +1600/);
      // CRIU's freezing_time, the source's own memory beside the clones', and one copy's restore against podman's own.
      expect(table).toMatch(/W3 1GiB N=4 +engine .* 1\.5 ms .* 1024\/1025\n/);
      expect(table).toMatch(/W3 1GiB N=4 +2\.00 +4\.00 +2\.00x/);
      const files = readdirSync(dir).sort();
      expect(files).toEqual(['results.json', 'table.txt', 'time-vs-copies-w3-1gib.svg', 'time-vs-copies-w3-256mib.svg', 'time-vs-copies-w3-512mib.svg', 'time-vs-size-w3-n1.svg', 'time-vs-size-w3-n4.svg']);
      rmSync(path.join(dir, 'time-vs-size-w3-n4.svg'));
      expect(redraw(path.join(dir, 'results.json'))).toBe(table);
      expect(readFileSync(path.join(dir, 'time-vs-size-w3-n4.svg'), 'utf8')).toContain('per GiB, wall / frozen (s): engine 4.0 / 0.8, stock 8.0 / 1.6');
      expect(() => redraw(path.join(dir, 'missing.json'))).toThrow(/cannot read a results.json/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
