/** The human-readable result: machine on top, one line per set and contender, speedups, W3 slopes. */
import { machineLine, type Machine } from './machine.js';
import type { Results, Row } from './report.js';
import type { RollbackRatio, RollbackRow } from './rollback.js';
import type { Summary } from './stats.js';
import type { SetInfo } from './runner.js';
import { sameSet } from './report.js';
import { columns, rollbackTitle, seconds as s2, setTitle } from './format.js';

/** "1.23 (1.10-1.40)" in seconds; "-" when there is nothing. */
export function secs(x?: Summary): string {
  if (!x) return '-';
  return x.n > 1 ? `${s2(x.median)} (${s2(x.min)}-${s2(x.max)})` : s2(x.median);
}

export function times(x?: Summary, unit = 'x'): string {
  if (!x) return '-';
  const f = (v: number) => v.toFixed(2);
  return x.n > 1 ? `${f(x.median)}${unit} (${f(x.min)}-${f(x.max)})` : `${f(x.median)}${unit}`;
}

/** CRIU's freezing_time, small enough to want milliseconds. */
function millis(x?: Summary): string {
  return x ? `${x.median.toFixed(1)} ms` : '-';
}

function mib(x?: Summary): string {
  return x ? `${Math.round(x.median)}` : '-';
}

/** Bytes on disk as MiB, one decimal. */
function diskMiB(x?: Summary): string {
  return x ? (x.median / 2 ** 20).toFixed(1) : '-';
}

/** What the engine's and stock's phases were, in one short string of medians. */
export function phaseLine(r: Row): string {
  const order = r.contender === 'stock' ? ['runtimeCheckpoint', 'export', 'restores', 'criuRestoreMax'] : ['validate', 'dump', 'snapshot', 'thaw', 'copies', 'other', 'process'];
  return order.filter((p) => r.phases[p]).map((p) => `${p} ${s2(r.phases[p]!.median)}`).join(', ');
}

export interface TableInput {
  machine: Machine;
  startedAt: string;
  run: string;
  reps: number;
  contenders: string[];
  results: Results;
  /** The sources, with their own memory (absent in --from of older runs). */
  sets?: SetInfo[];
  loadAtEnd?: number;
  otherContainersAtEnd?: number;
}

export function renderTable(t: TableInput): string {
  const m = t.machine;
  const out: string[] = [
    `podman-tfork benchmark, run ${t.run}, ${t.startedAt}${m.commit ? `, commit ${m.commit}` : ''}`,
    `machine ${m.id}: ${machineLine(m)}`,
    `load (1 min) ${m.loadAtStart.toFixed(2)} at start, ${t.loadAtEnd?.toFixed(2) ?? '?'} at end; other containers running: ${m.otherContainersAtStart} at start, ${t.otherContainersAtEnd ?? '?'} at end`,
    'engine         = podman-tfork container clone --live --copies=N',
    'stock          = podman container checkpoint --leave-running --file-locks --export F --compress none, then N x podman container restore --file-locks --import F --name X at once (CRIU ghost-limit as the engine\'s)',
    t.contenders.includes('engine+persist')
      ? 'engine+persist = engine with --persistent=async; "durable" = until `persist wait` returns (stock: until the export is written)'
      : 'engine+persist: not run (no --persistent in this engine, or --persistent off); durable time of the engine: n/a',
    ...(t.contenders.includes('engine-frozen') ? ['engine-frozen  = engine with TFORK_CAPTURE=frozen: the source frozen until every page is written (the engine before background capture)'] : []),
    ...(t.contenders.includes('engine-tier1') ? ['engine-tier1   = engine with TFORK_GRAFT=0: every copy restores the pages (tier 1), where the engine grafts them (tier 2)'] : []),
    `seconds: median (min-max) over ${t.reps} repetition(s), verified runs only, each started after an untimed sync; frozen: CRIU's frozen_time (tier 2: the engine's freeze to its thaw after the last graft); paused inside: the longest stop a probe in the source saw (it wakes every 1 ms); freezing: CRIU's freezing_time (median); memory: MiB per clone right after cloning (median), PSS and RSS; added: the PSS of copies and source after less the source's before, per copy (what a copy costs where copies share the source's pages); and the source's own`,
    '',
  ];
  const head = ['set', 'contender', 'ok', 'wall to N clones', 'frozen', 'paused inside', 'freezing', 'source side', 'copies', 'restore max', 'durable ckpt', 'PSS', 'RSS', 'added', 'source PSS/RSS'];
  const source = (r: Row) => {
    const m = t.sets?.find((x) => sameSet(x, r))?.sourceMemory;
    return m ? `${Math.round(m.pssKiB / 1024)}/${Math.round(m.rssKiB / 1024)}` : '-';
  };
  const body = t.results.rows.map((r) => [
    setTitle(r),
    r.contender,
    `${r.runs - r.failures}/${r.runs}`,
    secs(r.wallMs),
    secs(r.frozenMs),
    secs(r.pauseMs),
    millis(r.phases.freezing),
    secs(r.sourceMs),
    secs(r.copiesMs),
    secs(r.restoreMaxMs),
    r.durableMs ? secs(r.durableMs) : 'n/a',
    mib(r.pssMiB),
    mib(r.rssMiB),
    mib(r.addedMiB),
    source(r),
  ]);
  out.push(columns([head, ...body]), '');
  out.push('speedup = stock wall / engine wall, pair by pair (repetition r against repetition r); frozen ratio = stock frozen / engine frozen;');
  out.push('with persist = stock wall / engine+persist wall');
  const tier = t.results.ratios.some((r) => r.tierSpeedup);
  if (tier) out.push('vs tier 1 = engine-tier1 wall / engine wall; memory vs tier 1 = engine-tier1 memory added per clone / engine\'s');
  out.push(
    columns([
      ['set', 'pairs', 'speedup', 'frozen ratio', 'with persist', ...(tier ? ['vs tier 1', 'memory vs tier 1'] : [])],
      ...t.results.ratios.map((r) => [setTitle(r), String(r.pairs), times(r.speedup), times(r.frozenRatio), times(r.persistSpeedup), ...(tier ? [times(r.tierSpeedup), times(r.tierMemory)] : [])]),
    ]),
    '',
  );
  if (t.results.slopes.length) {
    out.push('W3 scaling: least-squares slope of the median over the memory sizes (ms per GiB of written memory)');
    const f = (v?: number) => (v === undefined ? '-' : String(Math.round(v)));
    out.push(columns([['N', 'contender', 'sizes', 'wall ms/GiB', 'frozen ms/GiB'], ...t.results.slopes.map((s) => [String(s.copies), s.contender, String(s.sizes), f(s.wallMsPerGiB), f(s.frozenMsPerGiB)])]), '');
  }
  const own = t.results.rows.filter((r) => r.podmanRestoreMs);
  if (own.length) {
    out.push("one copy's restore: the engine's slowest copy against podman's own `container restore` of a clone's state (checkpointed after the run, images in its bundle)");
    out.push(columns([['set', 'engine restore max', 'podman restore', 'podman / engine'], ...own.map((r) => [setTitle(r), secs(r.restoreMaxMs), secs(r.podmanRestoreMs), r.restoreMaxMs ? `${(r.podmanRestoreMs!.median / r.restoreMaxMs.median).toFixed(2)}x` : '-'])]), '');
  }
  out.push('where the time goes (medians, s):');
  for (const r of t.results.rows) if (r.runs - r.failures) out.push(`  ${setTitle(r)} ${r.contender}: ${phaseLine(r)}`);
  const rb = t.results.rollback;
  if (rb?.rows.length) out.push('', ...rollbackSection(rb.rows, rb.ratios));
  const failed = [...t.results.rows.map((r) => ({ r, title: setTitle(r) })), ...(rb?.rows ?? []).map((r) => ({ r, title: `${rollbackTitle(r)} checkpoint+rollback` }))].filter((x) => x.r.failures);
  if (failed.length) {
    out.push('', 'failures (not counted as times):');
    for (const { r, title } of failed) for (const e of r.errors) out.push(`  ${title} ${r.contender} ${e}`);
  }
  return `${out.join('\n')}\n`;
}

/** Checkpoint and rollback of one container: times, ratios and where they go. */
function rollbackSection(rows: RollbackRow[], ratios: RollbackRatio[]): string[] {
  const runs = Math.max(...rows.map((r) => r.runs));
  const phases = (r: RollbackRow) =>
    Object.entries(r.phases)
      .map(([k, v]) => `${k} ${s2(v.median)}`)
      .join(', ');
  return [
    'checkpoint and rollback of one running container',
    'engine = podman-tfork checkpoint create C (C keeps running; a full checkpoint, TFORK_INCREMENTAL=0), then podman-tfork rollback C ID (same container: name and id stay)',
    'engine-incremental = the same after an untimed checkpoint and a small step (W1: 0.5 s of counting; W2: a line typed; W3: one MiB rewritten; W4: a word typed into the document): only the pages written since',
    'stock  = podman container checkpoint --leave-running --file-locks --export F --compress none C, then podman rm -f C +',
    '         podman container restore --file-locks --import F --name C (stock podman\'s way back to one of many checkpoints: a new container)',
    `every run checked: after the rollback C shows the checkpointed state (W1 counter and files, W2 and W4 screen, W3 memory checksum) and runs on; seconds: median (min-max) of ${runs} run(s), each started after an untimed sync; size: MiB on disk (the engine: the checkpoint's own images; stock: its export archive)`,
    columns([
      ['workload', 'contender', 'ok', 'memory', 'checkpoint', 'size', 'frozen', 'paused inside', 'rollback'],
      ...rows.map((r) => [
        rollbackTitle(r),
        r.contender,
        `${r.runs - r.failures}/${r.runs}`,
        !r.incremental ? 'full' : r.incremental === r.runs - r.failures ? 'changes' : `changes in ${r.incremental}`,
        secs(r.checkpointMs),
        diskMiB(r.bytes),
        secs(r.frozenMs),
        secs(r.pauseMs),
        secs(r.rollbackMs),
      ]),
    ]),
    '',
    'speedup = stock / engine (full), pair by pair; incremental = engine full checkpoint / engine-incremental checkpoint, in time and in size',
    columns([
      ['workload', 'pairs', 'checkpoint', 'rollback', 'frozen', 'incremental', 'incremental size'],
      ...ratios.map((r) => [rollbackTitle(r), String(r.pairs), times(r.checkpoint), times(r.rollback), times(r.frozen), times(r.incremental), times(r.incrementalBytes)]),
    ]),
    '',
    "the price of tracking: engine-incremental's untimed first checkpoint of each chain, full; captured in the background and frozen again briefly to arm the tracking (CRIU patch 0023), captured frozen with a CRIU without it (paused = the longer of its stops):",
    ...rows.filter((r) => r.firstPauseMs).map((r) => `  ${rollbackTitle(r)}: paused ${secs(r.firstPauseMs)} inside, frozen ${secs(r.firstFrozenMs)}; engine (full, background) paused ${secs(rows.find((x) => x.workload === r.workload && x.contender === 'engine')?.pauseMs)}`),
    '',
    'where the time goes (medians, s):',
    ...rows.filter((r) => r.runs - r.failures).map((r) => `  ${rollbackTitle(r)} ${r.contender}: ${phases(r)}`),
  ];
}
