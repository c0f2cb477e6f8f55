/**
 * Benchmark suites are scripts under bench/suites/. Each runs in its own process
 * (so heap and RSS figures are its own) and reports figures through `report()`,
 * which prints one JSON line per figure for bench/run.ts to collect.
 */
export interface Figure {
  suite: string;
  name: string;
  value: number;
  unit: string;
}

export function report(suite: string, name: string, value: number, unit: string): void {
  const figure: Figure = { suite, name, value: Number(value.toPrecision(6)), unit };
  process.stdout.write(`BENCH ${JSON.stringify(figure)}\n`);
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Runs `fn` repeatedly for about `ms` milliseconds and returns operations per second. */
export function throughput(fn: () => void, ms = 1000): number {
  const start = performance.now();
  let n = 0;
  let elapsed = 0;
  do {
    for (let i = 0; i < 16; i++) fn();
    n += 16;
    elapsed = performance.now() - start;
  } while (elapsed < ms);
  return (n * 1000) / elapsed;
}
