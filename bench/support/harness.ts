/**
 * Shared benchmark plumbing. This machine's speed drifts by up to ±50% from minute to
 * minute, so a comparison never trusts two separate runs: it interleaves the baseline
 * and the subject (A B A B …) in one process and reports the median of per-pair ratios.
 */
import os from 'node:os';
import type { CpuPerOp } from './cpu.js';

/** One measured run: how many operations in how many milliseconds, plus anything else. */
export interface Sample {
  ops: number;
  ms: number;
  /** CPU microseconds per operation (bench/cpu.ts), when the run measured it. */
  cpu?: CpuPerOp;
  [extra: string]: unknown;
}

/** The result of an interleaved comparison. */
export interface Comparison {
  pairs: number;
  baseline: { opsPerSec: number[]; medianOpsPerSec: number };
  subject: { opsPerSec: number[]; medianOpsPerSec: number };
  /** subject ops/s ÷ baseline ops/s, per pair. */
  ratios: number[];
  /** The median of `ratios`: the number a target is checked against. */
  medianRatio: number;
  /**
   * CPU per operation, when both sides measured it: each side's per-run readings and
   * medians, and baseline ÷ subject total CPU per pair with its median (like `ratios`,
   * 1 is parity and below 1 means the subject costs more).
   */
  cpu?: {
    baseline: { perOp: CpuPerOp[]; medianTotal: number };
    subject: { perOp: CpuPerOp[]; medianTotal: number };
    ratios: number[];
    medianRatio: number;
  };
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The value at quantile `q` (0–1) of `values`, nearest rank. */
export function percentile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

const round = (n: number, digits = 3) => Number(n.toFixed(digits));

/** Runs `baseline` and `subject` alternately, `pairs` times each, and compares throughput. */
export async function interleave(
  pairs: number,
  baseline: () => Promise<Sample>,
  subject: () => Promise<Sample>,
): Promise<Comparison> {
  const base: number[] = [];
  const subj: number[] = [];
  const ratios: number[] = [];
  const cpuA: CpuPerOp[] = [];
  const cpuB: CpuPerOp[] = [];
  for (let i = 0; i < pairs; i++) {
    const a = await baseline();
    const b = await subject();
    if (a.cpu && b.cpu) {
      cpuA.push(a.cpu);
      cpuB.push(b.cpu);
    }
    const aRate = (a.ops / a.ms) * 1000;
    const bRate = (b.ops / b.ms) * 1000;
    base.push(round(aRate, 1));
    subj.push(round(bRate, 1));
    ratios.push(round(bRate / aRate));
  }
  const comparison: Comparison = {
    pairs,
    baseline: { opsPerSec: base, medianOpsPerSec: round(median(base), 1) },
    subject: { opsPerSec: subj, medianOpsPerSec: round(median(subj), 1) },
    ratios,
    medianRatio: round(median(ratios)),
  };
  if (cpuA.length === pairs) {
    const cpuRatios = cpuA.map((a, i) => round(a.total / cpuB[i]!.total));
    comparison.cpu = {
      baseline: { perOp: cpuA, medianTotal: round(median(cpuA.map((c) => c.total)), 1) },
      subject: { perOp: cpuB, medianTotal: round(median(cpuB.map((c) => c.total)), 1) },
      ratios: cpuRatios,
      medianRatio: round(median(cpuRatios)),
    };
  }
  return comparison;
}

/** Times one async run. */
export async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const start = performance.now();
  const value = await fn();
  return { ms: performance.now() - start, value };
}

/** The machine, for the record in docs/BENCHMARKS.md. */
export function machine() {
  return {
    node: process.version,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: round(os.totalmem() / 2 ** 30, 1),
    date: new Date().toISOString(),
  };
}
