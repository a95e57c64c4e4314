// The playground's judging options (docs/judging.md): a standard
// checker or a checker program, an interactor, points per test, stop at a failure.
import { $, fill, h } from "./dom.js";

export const STANDARD = ["lines", "exact", "tokens", "floats", "unordered", "case_insensitive"];

/** Fill the judge program's language list; show only the fields the choice needs. */
export function setupJudging(languageNames) {
  fill($("#judge-language"), languageNames.map((name) => h("option", { value: name }, name)));
  $("#checker").addEventListener("change", refresh);
  refresh();
}

function refresh() {
  const kind = $("#checker").value;
  $("#float-errors").hidden = kind !== "floats";
  $("#judge-program").hidden = kind !== "program" && kind !== "interactor";
  $("#judge-source-label").firstChild.textContent =
    kind === "interactor" ? "Interactor (testlib: interactor <input> <output>)"
      : "Checker (testlib: checker <input> <output> <answer>)";
}

function number(id) {
  const raw = $(`#${id}`).value.trim();
  return raw === "" ? undefined : Number(raw);
}

/** The request's judging fields for the choices made (none for the defaults). */
export function judgingFields() {
  const kind = $("#checker").value;
  const fields = {};
  if (kind === "floats") {
    fields.checker = { kind, abs_error: number("abs_error") ?? 0, rel_error: number("rel_error") ?? 0 };
  } else if (kind === "program" || kind === "interactor") {
    const program = { language: $("#judge-language").value, source: $("#judge-source").value };
    if (kind === "program") fields.checker = program;
    else fields.interactor = program;
  } else if (kind !== "lines") {
    fields.checker = kind;
  }
  if ($("#stop-on-failure").checked) fields.stop_on_failure = true;
  return fields;
}

/** Put back the choices a shared execution was made with (its request's fields). */
export function restoreJudging(saved) {
  const checker = saved?.checker;
  const interactor = saved?.interactor;
  let kind = "lines";
  if (interactor && typeof interactor === "object") kind = "interactor";
  else if (typeof checker === "string" && STANDARD.includes(checker)) kind = checker;
  else if (checker && typeof checker === "object" && typeof checker.language === "string") kind = "program";
  else if (checker && typeof checker === "object" && STANDARD.includes(checker.kind)) kind = checker.kind;
  $("#checker").value = kind;
  if (kind === "floats") {
    $("#abs_error").value = checker.abs_error ?? "";
    $("#rel_error").value = checker.rel_error ?? "";
  }
  const program = kind === "interactor" ? interactor : kind === "program" ? checker : null;
  if (program) {
    $("#judge-language").value = program.language;
    $("#judge-source").value = typeof program.source === "string" ? program.source : "";
  }
  $("#stop-on-failure").checked = saved?.stop_on_failure === true;
  refresh();
}
