// Showing a result: every string from the server goes in as text, never as HTML.
import { $, fill, h, kib, ms, verdictClass, verdictLabel } from "./dom.js";

/** A phase's stdout or stderr as text (base64 when the bytes were not UTF-8). */
export function phaseText(phase, stream) {
  const value = phase && typeof phase[stream] === "string" ? phase[stream] : "";
  if (phase?.encoding !== "base64") return value;
  try {
    const bytes = Uint8Array.from(atob(value), (c) => c.charCodeAt(0));
    return new TextDecoder("utf-8", { fatal: false }).decode(bytes);
  } catch {
    return value;
  }
}

export function setBadge(text, status) {
  const badge = $("#verdict");
  badge.className = `badge ${status ? `v-${verdictClass(status)}` : "busy"}`;
  badge.textContent = text;
}

// Each label and its value in one cell of the grid, so a label never sits beside
// another figure's value however the row wraps (a <div> may group a <dl>'s dt/dd).
function metric(name, value) {
  return [h("div", { className: "metric" }, h("dt", {}, name), h("dd", {}, value))];
}

const num = (value) => (Number.isFinite(value) ? value : null);

function showPane(id, text, truncated) {
  fill($(`#${id}`), text);
  $(`#${id}-note`).textContent = truncated ? "(truncated)" : "";
}

export function clearOutput() {
  for (const id of ["compile", "stdout", "stderr"]) showPane(id, "", false);
  $("#compile-box").hidden = true;
  $("#tests-box").hidden = true;
  $("#message").hidden = true;
  fill($("#metrics"));
}

export function showMessage(text) {
  const box = $("#message");
  box.hidden = !text;
  box.textContent = text || "";
}

function testRow(test, index) {
  const run = test && typeof test.run === "object" && test.run ? test.run : {};
  const stdout = phaseText(run, "stdout");
  const stderr = phaseText(run, "stderr");
  const status = typeof test?.status === "string" ? test.status : "other";
  return h("tr", {},
    h("td", {}, String(Number.isInteger(test?.index) ? test.index + 1 : index + 1)),
    h("td", {}, h("span", { className: `badge small v-${verdictClass(status)}` }, verdictLabel(status))),
    h("td", {}, ms(num(run.wall_ms))),
    h("td", {}, h("pre", { className: "cell", tabindex: "0" }, stdout || stderr)),
    h("td", {}, Number.isFinite(test?.score) ? String(test.score) : "–"),
    h("td", {}, typeof test?.comment === "string" ? test.comment : ""));
}

/** Fill the result panel from a result document (schema runstream.result.v1). */
export function showResult(result) {
  const status = typeof result.status === "string" ? result.status : "other";
  setBadge(verdictLabel(status), status);
  const run = result.run && typeof result.run === "object" ? result.run : null;
  const compile = result.compile && typeof result.compile === "object" ? result.compile : null;
  const tests = Array.isArray(result.tests) ? result.tests : [];
  // With tests there is no single run: the longest test speaks for the resources.
  const runs = run ? [run] : tests.map((t) => t?.run).filter((r) => r && typeof r === "object");
  const most = (key) => (runs.length ? Math.max(...runs.map((r) => num(r[key]) ?? 0)) : null);
  const items = [
    ...metric("Wall time", ms(most("wall_ms"))),
    ...metric("CPU time", ms(most("cpu_ms"))),
    ...metric("Memory", kib(most("memory_kb"))),
  ];
  if (run) {
    items.push(...metric("Exit code", run.exit_code ?? "–"));
    if (run.signal) items.push(...metric("Signal", String(run.signal)));
    if (run.time_limit) items.push(...metric("Time limit", String(run.time_limit)));
  }
  if (compile) items.push(...metric("Compile", ms(num(compile.wall_ms))));
  const version = [result.language, result.version].filter((v) => typeof v === "string").join(" ");
  if (version) items.push(...metric("Language", version));
  if (typeof result.worker === "string") items.push(...metric("Worker", result.worker));
  if (Number.isFinite(result.score)) items.push(...metric("Score", `${result.score} / ${result.max_score}`));
  fill($("#metrics"), items);
  showMessage(typeof result.message === "string" ? result.message : "");
  $("#compile-box").hidden = !compile;
  showPane("compile", compile ? phaseText(compile, "stdout") + phaseText(compile, "stderr") : "",
    compile?.stdout_truncated || compile?.stderr_truncated);
  showPane("stdout", run ? phaseText(run, "stdout") : "", run?.stdout_truncated);
  showPane("stderr", run ? phaseText(run, "stderr") : "", run?.stderr_truncated);
  $("#tests-box").hidden = tests.length === 0;
  fill($("#tests-body"), tests.map(testRow));
}

/** Live output: chunks of a stream appended as they come, in order, once each. */
export class LiveOutput {
  constructor() {
    this.attempt = undefined;
    this.streams = new Map();
  }

  /** Apply one event of the events stream (schema runstream.event.v1). */
  apply(event) {
    if (event.attempt && event.attempt !== this.attempt) {
      // A new run of the same execution (its worker crashed): its output starts over.
      if (this.attempt !== undefined) clearOutput();
      this.attempt = event.attempt;
      this.streams.clear();
    }
    switch (event.type) {
      case "queued":
        setBadge("Queued");
        break;
      case "started":
        setBadge("Running");
        break;
      case "compile":
        setBadge(event.status === "compile_error" ? "Compile error" : "Running");
        break;
      case "stdout":
      case "stderr":
        this.chunk(event);
        break;
      case "test": // a test's verdict as it finishes
        if (Number.isInteger(event.test)) setBadge(`Test ${event.test + 1}: ${verdictLabel(event.status)}`);
        break;
      case "finished":
        if (typeof event.status === "string") setBadge(verdictLabel(event.status), event.status);
        break;
      default:
    }
  }

  chunk(event) {
    if (event.test !== null && event.test !== undefined) return; // tests: shown from the result
    if (typeof event.data !== "string") return;
    const pane = event.phase === "compile" ? "compile" : event.type;
    const key = `${event.phase}/${event.type}`;
    let state = this.streams.get(key);
    if (!state) {
      state = { bytes: 0, decoder: new TextDecoder("utf-8", { fatal: false }) };
      this.streams.set(key, state);
    }
    let bytes;
    if (event.encoding === "base64") {
      try {
        bytes = Uint8Array.from(atob(event.data), (c) => c.charCodeAt(0));
      } catch {
        return;
      }
    } else {
      bytes = new TextEncoder().encode(event.data);
    }
    const position = Number.isInteger(event.position) ? event.position : state.bytes;
    if (position + bytes.length <= state.bytes) return; // seen already
    if (position < state.bytes) bytes = bytes.subarray(state.bytes - position);
    state.bytes = Math.max(state.bytes, position) + bytes.length;
    if (pane === "compile") $("#compile-box").hidden = false;
    $(`#${pane}`).append(document.createTextNode(state.decoder.decode(bytes, { stream: true })));
  }
}
