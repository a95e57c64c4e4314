// Building DOM without HTML strings: program output and anything a server sends is
// attacker-controlled, so it only ever becomes text nodes, never markup.

/** An element with attributes (strings), properties (on*, className...) and children. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") || key === "className" || key === "value") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export const $ = (selector, root = document) => root.querySelector(selector);

/** Milliseconds as people read them. */
export function ms(value) {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–";
  return value >= 10000 ? `${(value / 1000).toFixed(1)} s` : `${Math.round(value)} ms`;
}

/** Kibibytes as people read them. */
export function kib(value) {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–";
  return value >= 10240 ? `${(value / 1024).toFixed(1)} MiB` : `${Math.round(value)} KiB`;
}

/** The API key the user gave this tab (only needed when the server requires one). */
export function authHeaders() {
  const key = sessionStorage.getItem("runstream-api-key");
  return key ? { Authorization: `Bearer ${key}` } : {};
}

export const VERDICTS = {
  ok: "OK",
  wrong_answer: "Wrong answer",
  compile_error: "Compile error",
  runtime_error: "Runtime error",
  time_limit_exceeded: "Time limit exceeded",
  memory_limit_exceeded: "Memory limit exceeded",
  output_limit_exceeded: "Output limit exceeded",
  expired: "Expired",
  rejected: "Rejected",
  internal_error: "Internal error",
  presentation_error: "Presentation error",
  partial: "Partial",
  skipped: "Skipped",
  other: "Other",
};

/** A verdict's label, for any string a server may send. */
export function verdictLabel(status) {
  return Object.hasOwn(VERDICTS, status) ? VERDICTS[status] : String(status);
}

/** A CSS class-safe verdict name (unknown ones share one class). */
export function verdictClass(status) {
  return Object.hasOwn(VERDICTS, status) ? status : "other";
}
