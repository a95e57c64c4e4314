// The playground (/): pick a language, edit, run with the button or Ctrl/Cmd-Enter,
// watch the output arrive, share the execution's URL.
import "./style.css";
import { ApiError, languages as fetchLanguages, newId, result, run } from "./client.js";
import { $, authHeaders, fill, h, verdictLabel } from "./dom.js";
import { Editor } from "./editor.js";
import { judgingFields, restoreJudging, setupJudging } from "./judging.js";
import { LiveOutput, clearOutput, setBadge, showMessage, showResult } from "./render.js";

const LAST_LANGUAGE = "runstream-language";
const KEY = "runstream-api-key";
// A shared URL reopens the code too: it travels in the request's metadata, which
// the result echoes back. Past this size it is left out (the run is not affected).
const MAX_METADATA = 64 * 1024;

const state = {
  byName: new Map(),
  sample: "", // the sample the editor was last filled with
  running: false,
};

const editor = new Editor($("#editor"), { onRun: () => runNow() });

function language() {
  return state.byName.get($("#language").value);
}

function pristine() {
  const text = editor.text.trim();
  return text === "" || text === state.sample.trim();
}

function loadSample() {
  const lang = language();
  state.sample = lang?.sample || "";
  editor.text = state.sample;
}

/** Switch to language `name`; its sample replaces the code unless the code was edited. */
function choose(name, { sample = pristine() } = {}) {
  const lang = state.byName.get(name);
  if (!lang) return;
  $("#language").value = name;
  const versions = Array.isArray(lang.versions) ? lang.versions.filter((v) => typeof v === "string") : [];
  fill($("#version"), versions.slice().reverse().map((v) => h("option", { value: v }, v)));
  $("#version-field").hidden = versions.length < 2;
  if (sample) loadSample();
  $("#load-sample").disabled = !lang.sample;
  editor.setLanguage(lang.name, Array.isArray(lang.aliases) ? lang.aliases : []);
  localStorage.setItem(LAST_LANGUAGE, name);
}

async function loadLanguages() {
  const doc = await fetchLanguages();
  const list = Array.isArray(doc?.languages) ? doc.languages : [];
  state.byName = new Map(list.filter((l) => l && typeof l.name === "string").map((l) => [l.name, l]));
  fill($("#language"), [...state.byName.values()].map((l) => {
    const versions = Array.isArray(l.versions) ? l.versions : [];
    const label = versions.length ? `${l.name} ${versions[versions.length - 1]}` : `${l.name} (no worker serves it)`;
    return h("option", { value: l.name }, label);
  }));
}

function numberField(id) {
  const raw = $(`#${id}`).value.trim();
  return raw === "" ? undefined : Number(raw);
}

function testRows() {
  return [...document.querySelectorAll("#test-list .test")].map((row) => {
    const test = {
      stdin: row.querySelector(".test-stdin").value,
      expected_output: row.querySelector(".test-expected").value,
    };
    const points = row.querySelector(".test-points").value.trim();
    if (points !== "") test.points = Number(points);
    return test;
  });
}

function addTest(test = { stdin: "", expected_output: "" }) {
  const n = document.querySelectorAll("#test-list .test").length + 1;
  const row = h("li", { className: "test" },
    h("label", {}, `Test ${n} input`, h("textarea", { className: "test-stdin", rows: "2", spellcheck: "false" })),
    h("label", {}, `Test ${n} expected output`,
      h("textarea", { className: "test-expected", rows: "2", spellcheck: "false" })),
    h("label", {}, "Points", h("input", { className: "test-points", type: "number", min: "0", step: "any" })),
    h("button", { type: "button", className: "secondary", onclick: () => { row.remove(); renumber(); } },
      `Remove test ${n}`));
  row.querySelector(".test-stdin").value = test.stdin ?? "";
  row.querySelector(".test-expected").value = test.expected_output ?? "";
  row.querySelector(".test-points").value = Number.isFinite(test.points) ? String(test.points) : "";
  $("#test-list").append(row);
  return row;
}

function renumber() {
  document.querySelectorAll("#test-list .test").forEach((row, i) => {
    const [input, expected] = row.querySelectorAll("label");
    input.firstChild.textContent = `Test ${i + 1} input`;
    expected.firstChild.textContent = `Test ${i + 1} expected output`;
    row.querySelector("button").textContent = `Remove test ${i + 1}`;
  });
}

function buildRequest() {
  const lang = language();
  const request = { id: newId(), language: lang.name, source: editor.text, stdin: $("#stdin").value };
  if (!$("#version-field").hidden && $("#version").value) request.version = $("#version").value;
  const args = $("#args").value.split("\n").filter((line) => line !== "");
  if (args.length) request.args = args;
  const tests = testRows();
  if (tests.length) request.tests = tests;
  const limits = {};
  for (const name of ["wall_ms", "cpu_ms", "memory_mb", "processes", "output_kb"]) {
    const value = numberField(name);
    if (value !== undefined) limits[name] = value;
  }
  if (Object.keys(limits).length) request.limits = limits;
  const judging = tests.length ? judgingFields() : {};
  Object.assign(request, judging);
  const saved = { language: request.language, source: request.source, stdin: request.stdin, args, tests, ...judging };
  if (JSON.stringify(saved).length <= MAX_METADATA) request.metadata = { playground: saved };
  return request;
}

function share(id) {
  history.replaceState(null, "", `/?id=${encodeURIComponent(id)}`);
  $("#share-url").value = location.href;
  $("#share").hidden = false;
}

function showError(error) {
  if (!(error instanceof ApiError)) {
    setBadge("Error", "internal_error");
    showMessage(`The request failed: ${error.message}`);
    return;
  }
  const p = error.problem;
  setBadge(`Error ${error.status}`, "internal_error");
  const parts = [p.title, p.detail].filter((v) => typeof v === "string" && v);
  if (typeof p.field === "string") parts.push(`(field: ${p.field})`);
  if (error.status === 429 && p.retry_after) parts.push(`Retry in ${p.retry_after} s.`);
  showMessage(parts.join(": ") || `HTTP ${error.status}`);
  if (error.status === 401 || error.status === 403) {
    $("#key-box").open = true;
    $("#api-key").focus();
  }
}

async function runNow() {
  if (state.running || !language()) return;
  state.running = true;
  const button = $("#run");
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  clearOutput();
  setBadge("Submitting");
  // One column (a phone): the output is below the inputs; bring it into view.
  if (matchMedia("(max-width: 900px)").matches) $(".result").scrollIntoView({ block: "start" });
  const live = new LiveOutput();
  try {
    const request = buildRequest();
    const doc = await run(request, { onEvent: (event) => live.apply(event), onSubmitted: share });
    share(request.id);
    showResult(doc);
    $("#announce").textContent = `Finished: ${verdictLabel(doc.status)}`;
  } catch (error) {
    showError(error);
  } finally {
    state.running = false;
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

/** Restore what a shared execution ran, when the playground recorded it. */
function restore(doc) {
  const saved = doc?.metadata?.playground;
  const name = typeof saved?.language === "string" ? saved.language : doc.language;
  if (state.byName.has(name)) choose(name, { sample: !saved });
  if (!saved || typeof saved !== "object") return;
  if (typeof saved.source === "string") {
    editor.text = saved.source;
    state.sample = "";
  }
  if (typeof saved.stdin === "string") $("#stdin").value = saved.stdin;
  if (Array.isArray(saved.args)) $("#args").value = saved.args.filter((a) => typeof a === "string").join("\n");
  fill($("#test-list"));
  for (const test of Array.isArray(saved.tests) ? saved.tests : []) {
    if (test && typeof test === "object") addTest(test);
  }
  restoreJudging(saved);
}

async function reopen(id) {
  setBadge("Loading");
  $("#share-url").value = location.href;
  $("#share").hidden = false;
  try {
    const response = await fetch(`/v1/executions/${encodeURIComponent(id)}`, {
      headers: { Accept: "application/json", ...authHeaders() },
    });
    let doc;
    if (response.status === 200) doc = await response.json();
    else if (response.status === 202) doc = await result(id);
    else throw new ApiError(response.status, await response.json().catch(() => ({})));
    restore(doc);
    showResult(doc);
  } catch (error) {
    showError(error);
  }
}

async function main() {
  document.addEventListener("keydown", (event) => {
    // The editor handles its own Mod-Enter (and marks the event handled).
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && !event.defaultPrevented) {
      event.preventDefault();
      runNow();
    }
  });
  $("#run").addEventListener("click", () => runNow());
  $("#language").addEventListener("change", (event) => choose(event.target.value));
  $("#load-sample").addEventListener("click", () => { loadSample(); editor.focus(); });
  $("#add-test").addEventListener("click", () => addTest().querySelector("textarea").focus());
  $("#api-key").value = sessionStorage.getItem(KEY) || "";
  $("#api-key").addEventListener("change", (event) => {
    const key = event.target.value.trim();
    if (key) sessionStorage.setItem(KEY, key);
    else sessionStorage.removeItem(KEY);
  });
  $("#copy-link").addEventListener("click", async () => {
    const input = $("#share-url");
    try {
      await navigator.clipboard.writeText(input.value);
    } catch {
      input.select(); // no clipboard API (plain http on another host): let the user copy
      document.execCommand?.("copy");
    }
    $("#copy-link").textContent = "Copied";
    setTimeout(() => ($("#copy-link").textContent = "Copy link"), 1500);
  });
  try {
    await loadLanguages();
  } catch (error) {
    showError(error);
    return;
  }
  setupJudging([...state.byName.keys()]);
  const id = new URLSearchParams(location.search).get("id");
  const remembered = localStorage.getItem(LAST_LANGUAGE);
  const first = state.byName.has(remembered) ? remembered : state.byName.has("python") ? "python" : [...state.byName.keys()][0];
  if (first) choose(first, { sample: true });
  $("#run").disabled = !first;
  if (id) await reopen(id);
  document.body.dataset.ready = "true";
}

main();
