/**
 * A tiny SVG chart writer for the benchmarks: grouped bars (one group per category, one
 * bar per series) and lines (series over categories). No dependency; the output opens in
 * any browser.
 */

export interface Series {
  name: string;
  /** One value per category; NaN or undefined draws nothing. */
  values: (number | undefined)[];
}

export interface ChartSpec {
  title: string;
  /** Labels along the x axis. */
  categories: string[];
  series: Series[];
  yLabel: string;
  /** A logarithmic y axis (decades), for figures spanning orders of magnitude. */
  log?: boolean;
  width?: number;
  height?: number;
}

const COLORS = ['#7f7f7f', '#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b'];

function esc(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

/** A "nice" axis maximum and step: 1, 2 or 5 times a power of ten. */
export function niceScale(max: number, ticks = 5): { max: number; step: number } {
  if (!(max > 0) || !Number.isFinite(max)) return { max: 1, step: 0.2 };
  const raw = max / ticks;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * pow).find((s) => s >= raw)!;
  return { max: Math.ceil(max / step) * step, step };
}

function tickLabel(v: number): string {
  if (v === 0) return '0';
  if (Math.abs(v) >= 1e6) return `${+(v / 1e6).toFixed(2)}M`;
  if (Math.abs(v) >= 1e3) return `${+(v / 1e3).toFixed(2)}k`;
  return `${+v.toFixed(3)}`;
}

interface Frame {
  svg: string[];
  x0: number;
  y0: number;
  w: number;
  h: number;
  y: (v: number) => number;
}

function frame(spec: ChartSpec): Frame {
  const width = spec.width ?? 720;
  const height = spec.height ?? 360;
  const left = 70;
  const right = 150;
  const top = 36;
  const bottom = 48;
  const w = width - left - right;
  const h = height - top - bottom;
  const values = spec.series
    .flatMap((s) => s.values)
    .filter((v): v is number => v !== undefined && Number.isFinite(v));
  const svg = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2 - right / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${esc(spec.title)}</text>`,
    `<text transform="translate(14 ${top + h / 2}) rotate(-90)" text-anchor="middle">${esc(spec.yLabel)}${spec.log ? ' (log scale)' : ''}</text>`,
  ];
  let y: (v: number) => number;
  const ticks: number[] = [];
  const positive = values.filter((v) => v > 0);
  if (spec.log && positive.length > 0) {
    const lo = Math.floor(Math.log10(Math.min(...positive)));
    const hi = Math.max(lo + 1, Math.ceil(Math.log10(Math.max(...positive))));
    y = (v: number) => top + h - ((Math.log10(Math.max(v, 10 ** lo)) - lo) / (hi - lo)) * h;
    for (let e = lo; e <= hi; e++) ticks.push(10 ** e);
  } else {
    const scale = niceScale(Math.max(0, ...values));
    y = (v: number) => top + h - (v / scale.max) * h;
    for (let v = 0; v <= scale.max + scale.step / 2; v += scale.step) ticks.push(v);
  }
  for (const v of ticks) {
    svg.push(
      `<line x1="${left}" x2="${left + w}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#ddd"/>`,
      `<text x="${left - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${tickLabel(v)}</text>`,
    );
  }
  svg.push(
    `<line x1="${left}" x2="${left}" y1="${top}" y2="${top + h}" stroke="#333"/>`,
    `<line x1="${left}" x2="${left + w}" y1="${top + h}" y2="${top + h}" stroke="#333"/>`,
  );
  spec.series.forEach((s, i) => {
    const ly = top + 8 + i * 18;
    svg.push(
      `<rect x="${left + w + 16}" y="${ly - 9}" width="12" height="12" fill="${COLORS[i % COLORS.length]}"/>`,
      `<text x="${left + w + 34}" y="${ly + 1}">${esc(s.name)}</text>`,
    );
  });
  return { svg, x0: left, y0: top, w, h, y };
}

/** Grouped bars: for each category, one bar per series. */
export function barChart(spec: ChartSpec): string {
  const f = frame(spec);
  const n = spec.categories.length;
  const groupW = f.w / Math.max(1, n);
  const barW = (groupW * 0.8) / Math.max(1, spec.series.length);
  spec.categories.forEach((c, ci) => {
    const gx = f.x0 + ci * groupW;
    spec.series.forEach((s, si) => {
      const v = s.values[ci];
      if (v === undefined || !Number.isFinite(v)) return;
      const x = gx + groupW * 0.1 + si * barW;
      const yTop = f.y(Math.max(0, v));
      f.svg.push(
        `<rect x="${x.toFixed(1)}" y="${yTop.toFixed(1)}" width="${(barW - 1).toFixed(1)}" height="${(f.y0 + f.h - yTop).toFixed(1)}" fill="${COLORS[si % COLORS.length]}"><title>${esc(`${s.name} ${c}: ${v}`)}</title></rect>`,
      );
    });
    f.svg.push(
      `<text x="${(gx + groupW / 2).toFixed(1)}" y="${f.y0 + f.h + 16}" text-anchor="middle">${esc(c)}</text>`,
    );
  });
  f.svg.push('</svg>');
  return f.svg.join('\n') + '\n';
}

/** Lines: each series a polyline over the categories (evenly spaced), with dots. */
export function lineChart(spec: ChartSpec & { xLabel?: string }): string {
  const f = frame(spec);
  const n = spec.categories.length;
  const x = (i: number) => f.x0 + (n <= 1 ? f.w / 2 : 20 + (i * (f.w - 40)) / (n - 1));
  spec.categories.forEach((c, i) =>
    f.svg.push(
      `<text x="${x(i).toFixed(1)}" y="${f.y0 + f.h + 16}" text-anchor="middle">${esc(c)}</text>`,
    ),
  );
  if (spec.xLabel)
    f.svg.push(
      `<text x="${f.x0 + f.w / 2}" y="${f.y0 + f.h + 36}" text-anchor="middle">${esc(spec.xLabel)}</text>`,
    );
  spec.series.forEach((s, si) => {
    const color = COLORS[si % COLORS.length];
    const pts = s.values
      .map((v, i) => (v === undefined || !Number.isFinite(v) ? undefined : [x(i), f.y(v)]))
      .filter((p): p is number[] => p !== undefined);
    if (pts.length > 1)
      f.svg.push(
        `<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts.map(([a, b]) => `${a!.toFixed(1)},${b!.toFixed(1)}`).join(' ')}"/>`,
      );
    for (const [a, b] of pts)
      f.svg.push(`<circle cx="${a!.toFixed(1)}" cy="${b!.toFixed(1)}" r="3" fill="${color}"/>`);
  });
  f.svg.push('</svg>');
  return f.svg.join('\n') + '\n';
}
