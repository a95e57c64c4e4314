// Time-series charts of the dashboard (uPlot, bundled: no CDN). Colours come from the
// page's CSS custom properties, so each chart follows the light or dark scheme.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
const clock = (t) => new Date(t * 1000).toLocaleTimeString([], { hour12: false });

function axes(unit) {
  const stroke = css("--muted");
  const grid = { stroke: css("--grid"), width: 1 };
  return [
    { stroke, grid, ticks: grid, values: (u, ticks) => ticks.map(clock) },
    { stroke, grid, ticks: grid, size: 56, label: unit, labelSize: 16 },
  ];
}

/** One chart in `parent`; `series` are {label, colour, bars?, fill?, value?}. */
export class Chart {
  constructor(parent, { title, unit, series, stacked = false }) {
    this.parent = parent;
    this.options = { title, unit, series, stacked };
    this.key = series.map((s) => s.label).join("|");
    this.plot = null;
  }

  make(data) {
    const { unit, series } = this.options;
    const width = Math.max(240, this.parent.clientWidth);
    this.plot = new uPlot({
      width,
      height: 190,
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: false }, y: { range: (u, min, max) => [0, Math.max(1, max)] } },
      axes: axes(unit),
      series: [
        { label: "time", value: (u, t) => (t == null ? "–" : clock(t)) },
        ...series.map((s) => ({
          label: s.label,
          stroke: css(s.colour),
          fill: s.fill ? css(s.colour) : undefined,
          width: s.bars ? 0 : 2,
          paths: s.bars ? uPlot.paths.bars({ size: [0.9, 40] }) : undefined,
          // Latency has gaps (seconds without results): a lone second is a dot.
          points: s.bars ? { show: false } : { show: true, size: 5, fill: css(s.colour) },
          spanGaps: false,
          value: s.value,
        })),
      ],
    }, data, this.parent);
  }

  /** Draw `data` ([t, ...one array per series]); rebuilds when the series changed. */
  update(data) {
    if (!this.plot) this.make(data);
    else this.plot.setData(data);
  }

  resize() {
    this.plot?.setSize({ width: Math.max(240, this.parent.clientWidth), height: 190 });
  }

  destroy() {
    this.plot?.destroy();
    this.plot = null;
  }
}

/** Cumulative sums, bottom series first: drawn tallest first, filled, they stack. */
export function stack(columns) {
  const sums = [];
  let running = columns.length ? columns[0].map(() => 0) : [];
  for (const column of columns) {
    running = running.map((v, i) => v + (Number(column[i]) || 0));
    sums.push(running);
  }
  return sums;
}
