/**
 * The result's charts: time to N clones against N for each workload (and W3
 * size), W3's time against memory size for each N, both contenders; and the
 * checkpoint, frozen and rollback times of one container as bars.
 */
import type { ContenderId } from './contenders.js';
import type { Machine } from './machine.js';
import type { Results, Row } from './report.js';
import { rollbackTitle, sizeTag } from './format.js';
import { barChart, lineChart, type Point, type Series } from './svg.js';
import type { Summary } from './stats.js';
import type { WorkloadId } from './options.js';
import { WORKLOADS } from './workloads.js';
import { ROLLBACK_CONTENDERS } from './rollback-ops.js';

export interface ChartFile {
  file: string;
  title: string;
  svg: string;
}

const COLOR: Record<ContenderId, string> = { engine: '#1f77b4', stock: '#d62728', 'engine+persist': '#2ca02c', 'engine-frozen': '#9467bd', 'engine-tier1': '#ff7f0e' };

function point(x: number, s: Summary | undefined): Point[] {
  return s ? [{ x, y: s.median / 1000, min: s.min / 1000, max: s.max / 1000 }] : [];
}

function series(rows: Row[], x: (r: Row) => number): Series[] {
  const contenders = [...new Set(rows.map((r) => r.contender))];
  return contenders.flatMap((c) => {
    const rs = rows.filter((r) => r.contender === c);
    return [
      { name: `${c} wall`, color: COLOR[c], points: rs.flatMap((r) => point(x(r), r.wallMs)) },
      // engine+persist freezes the source the way engine does: its frozen line would only repeat engine's.
      ...(c === 'engine+persist' ? [] : [{ name: `${c} frozen`, color: COLOR[c], dashed: true, points: rs.flatMap((r) => point(x(r), r.frozenMs)) }]),
    ];
  }).filter((s) => s.points.length);
}

export function charts(results: Results, machine: Machine): ChartFile[] {
  const out: ChartFile[] = [];
  const note = `${machine.cpus} cores, kernel ${machine.kernel}, podman ${machine.podman}, CRIU ${machine.criu}, crun ${machine.crun}; median, bars min-max`;
  const short = (w: WorkloadId) => WORKLOADS[w].title.replace(/ \(.*\)$/, '');
  const workloads = [...new Set(results.rows.map((r) => r.workload))] as WorkloadId[];
  for (const w of workloads) {
    const sizes = [...new Set(results.rows.filter((r) => r.workload === w).map((r) => r.sizeBytes))];
    for (const size of sizes) {
      const rows = results.rows.filter((r) => r.workload === w && r.sizeBytes === size);
      const tag = size !== undefined ? ` ${sizeTag(size)}` : '';
      const title = `${short(w)}${tag}: time to N running clones`;
      out.push({
        file: `time-vs-copies-${w.toLowerCase()}${size !== undefined ? `-${sizeTag(size).toLowerCase()}` : ''}.svg`,
        title,
        svg: lineChart({ title, note, xLabel: 'copies N', yLabel: 'seconds', series: series(rows, (r) => r.copies) }),
      });
    }
  }
  const w3 = results.rows.filter((r) => r.workload === 'W3' && r.sizeBytes !== undefined);
  for (const copies of [...new Set(w3.map((r) => r.copies))]) {
    const rows = w3.filter((r) => r.copies === copies);
    if (new Set(rows.map((r) => r.sizeBytes)).size < 2) continue;
    const slopes = results.slopes.filter((s) => s.copies === copies);
    const per = slopes.map((s) => `${s.contender} ${((s.wallMsPerGiB ?? NaN) / 1000).toFixed(1)} / ${((s.frozenMsPerGiB ?? NaN) / 1000).toFixed(1)}`).join(', ');
    const title = `W3 memory, N=${copies}: time against memory size`;
    out.push({
      file: `time-vs-size-w3-n${copies}.svg`,
      title,
      svg: lineChart({ title, note: [note, `per GiB, wall / frozen (s): ${per}`], xLabel: 'written anonymous memory (GiB)', yLabel: 'seconds', series: series(rows, (r) => r.sizeBytes! / 2 ** 30) }),
    });
  }
  const rb = results.rollback;
  // W3's checkpoints of a large memory take seconds: a chart of its own keeps W1's and W2's readable.
  const rbCharts = [
    { file: 'checkpoint-rollback.svg', of: (w: string) => w !== 'W3', title: 'Checkpoint and rollback of one running container' },
    { file: 'checkpoint-rollback-w3.svg', of: (w: string) => w === 'W3', title: 'Checkpoint and rollback of one running container: W3 memory' },
  ];
  for (const c of rbCharts) {
    const rows = rb?.rows.filter((r) => c.of(r.workload)) ?? [];
    if (!rows.some((r) => r.runs > r.failures)) continue;
    const workloads = [...new Set(rows.map((r) => r.workload))];
    const groups = workloads.flatMap((w) => {
      const t = rollbackTitle(rows.find((r) => r.workload === w)!);
      return [`${t} checkpoint`, `${t} frozen`, `${t} rollback`];
    });
    const bar = (s?: Summary) => (s ? { y: s.median / 1000, min: s.min / 1000, max: s.max / 1000 } : undefined);
    out.push({
      file: c.file,
      title: c.title,
      svg: barChart({
        title: c.title,
        note: [note, 'stock: checkpoint --export, rollback = rm + restore --import', 'engine-incremental: after a small step, the changes only'],
        yLabel: 'seconds',
        groups,
        series: ROLLBACK_CONTENDERS.filter((k) => rows.some((r) => r.contender === k)).map((k) => ({
          name: k,
          color: k === 'engine-incremental' ? '#17becf' : COLOR[k],
          bars: workloads.flatMap((w) => {
            const r = rows.find((x) => x.workload === w && x.contender === k);
            return [bar(r?.checkpointMs), bar(r?.frozenMs), bar(r?.rollbackMs)];
          }),
        })),
      }),
    });
  }
  return out;
}
