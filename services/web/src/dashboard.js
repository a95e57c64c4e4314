// The live dashboard (/dashboard): /v1/stats every second, as tiles, charts and tables.
import "./style.css";
import { Chart, stack } from "./charts.js";
import { ApiError, stats as fetchStats } from "./client.js";
import { $, fill, h, ms, verdictClass, verdictLabel } from "./dom.js";

const charts = {};
let verdictKey = "";
let verdictRaw = {}; // the last per-verdict counts: the legend shows them, not the sums
let last = null;

function numberText(value, digits = 0) {
  return Number.isFinite(value) ? value.toFixed(digits) : "–";
}

function tiles(doc) {
  $("#throughput").textContent = numberText(doc.throughput?.per_s, 1);
  $("#throughput-note").textContent = `results/s, last ${doc.throughput?.over_s ?? "–"} s`;
  $("#latency-p50").textContent = ms(doc.latency_ms?.p50);
  $("#latency-p99").textContent = ms(doc.latency_ms?.p99);
  $("#latency-note").textContent =
    `queued to finished, last ${doc.latency_ms?.over_s ?? "–"} s (run alone: ${ms(doc.latency_ms?.run_p50)} / ${ms(doc.latency_ms?.run_p99)})`;
  $("#backlog-total").textContent = numberText(doc.backlog?.total);
  const workers = Array.isArray(doc.workers) ? doc.workers : [];
  $("#workers-count").textContent = String(workers.length);
  $("#slots").textContent = `${numberText(doc.slots)} slots; group ${doc.group?.state || "unknown"}`;
  $("#results-window").textContent = numberText(doc.results?.in_window);
}

function workerRows(workers) {
  return workers.map((w) => {
    const langs = Array.isArray(w.languages) ? w.languages : [];
    const text = langs.map((l) => (l.version ? `${l.name} ${l.version}` : String(l.name))).join(", ");
    return h("tr", {},
      h("th", { scope: "row" }, String(w.id)),
      h("td", {}, w.backend ? String(w.backend) : "–"),
      h("td", { className: "num" }, w.slots == null ? "–" : String(w.slots)),
      h("td", {}, Array.isArray(w.partitions) && w.partitions.length ? w.partitions.join(", ") : "none"),
      h("td", { className: "langs" }, text || "–"));
  });
}

function backlogRows(backlog) {
  const parts = Array.isArray(backlog?.partitions) ? backlog.partitions : [];
  const most = Math.max(1, ...parts.map((p) => Number(p.lag) || 0));
  return parts.map((p) => {
    const lag = Number(p.lag) || 0;
    return h("tr", {},
      h("td", {}, String(p.topic)),
      h("td", { className: "num" }, String(p.partition)),
      h("td", { className: "num" }, String(lag)),
      h("td", {}, h("meter", { min: "0", max: String(most), value: String(lag), "aria-label": `backlog of partition ${p.partition}` })),
      h("td", {}, p.owner ? String(p.owner) : "–"));
  });
}

function verdictTotals(verdicts) {
  const entries = verdicts && typeof verdicts === "object" ? Object.entries(verdicts) : [];
  if (!entries.length) return [h("li", {}, "none yet")];
  return entries.map(([name, count]) =>
    h("li", {}, h("span", { className: `badge small v-${verdictClass(name)}` }, verdictLabel(name)), ` ${count}`));
}

function drawCharts(doc) {
  const series = doc.series || {};
  const t = Array.isArray(series.t) ? series.t : [];
  charts.throughput.update([t, series.results || []]);
  charts.latency.update([t, series.p50_ms || [], series.p99_ms || []]);
  const raw = series.verdicts && typeof series.verdicts === "object" ? series.verdicts : {};
  const names = Object.keys(raw);
  const key = names.join("|");
  if (key !== verdictKey || !charts.verdicts) {
    charts.verdicts?.destroy();
    fill($("#chart-verdicts"));
    // Tallest (all verdicts) first, so each smaller sum is drawn over it: a stack.
    const order = names.map((_, i) => i).reverse();
    charts.verdicts = new Chart($("#chart-verdicts"), {
      unit: "results",
      series: order.map((i) => ({
        label: verdictLabel(names[i]),
        colour: `--v-${verdictClass(names[i])}`,
        bars: true,
        fill: true,
        value: (u, v, s, idx) => (idx == null ? "–" : String(verdictRaw[names[i]]?.[idx] ?? 0)),
      })),
    });
    verdictKey = key;
  }
  verdictRaw = raw;
  const sums = stack(names.map((n) => raw[n]));
  charts.verdicts.update([t, ...sums.slice().reverse()]);
}

function render(doc) {
  tiles(doc);
  drawCharts(doc);
  fill($("#workers-body"), workerRows(Array.isArray(doc.workers) ? doc.workers : []));
  fill($("#backlog-body"), backlogRows(doc.backlog));
  fill($("#verdict-totals"), verdictTotals(doc.verdicts));
  const at = Number.isFinite(doc.now) ? new Date(doc.now * 1000) : new Date();
  $("#updated").textContent = `Updated ${at.toLocaleTimeString([], { hour12: false })}`;
  $("#updated").classList.remove("stale");
  document.body.dataset.ready = "true";
}

function makeCharts() {
  for (const chart of Object.values(charts)) chart.destroy();
  for (const id of ["#chart-throughput", "#chart-latency", "#chart-verdicts"]) fill($(id));
  charts.throughput = new Chart($("#chart-throughput"), {
    unit: "results/s", series: [{ label: "results", colour: "--accent", bars: true, fill: true }],
  });
  charts.latency = new Chart($("#chart-latency"), {
    unit: "ms", series: [{ label: "p50", colour: "--accent" }, { label: "p99", colour: "--warn" }],
  });
  charts.verdicts = null;
  verdictKey = "";
}

async function poll() {
  const started = performance.now();
  if (!document.hidden) {
    try {
      last = await fetchStats(AbortSignal.timeout(5000));
      render(last);
    } catch (error) {
      const why = error instanceof ApiError ? `${error.status}: ${error.message}` : error.message;
      const key = error.status === 401 || error.status === 403
        ? " Give an API key on the playground page, in this tab." : "";
      $("#updated").textContent = `Cannot update (${why}); showing the last data received.${key}`;
      $("#updated").classList.add("stale");
    }
  }
  setTimeout(poll, Math.max(100, 1000 - (performance.now() - started)));
}

makeCharts();
new ResizeObserver(() => Object.values(charts).forEach((c) => c?.resize())).observe($("#charts"));
matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
  makeCharts();
  if (last) render(last);
});
poll();
