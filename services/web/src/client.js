// Talking to the ingress: run an execution, follow it live, reopen one by id.
import { authHeaders } from "./dom.js";
import { SseParser } from "./sse.js";

/** An HTTP answer that is not the result: carries the problem+json the server sent. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

async function problemOf(response) {
  let doc = {};
  try {
    doc = await response.json();
  } catch {
    // not JSON: keep the status alone
  }
  return doc && typeof doc === "object" ? doc : {};
}

/** A fresh execution id (the idempotency key). Not crypto.randomUUID: that needs https. */
export function newId() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return "pg-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function getJson(url, signal) {
  const response = await fetch(url, { headers: { Accept: "application/json", ...authHeaders() }, signal });
  if (!response.ok) throw new ApiError(response.status, await problemOf(response));
  return response.json();
}

export const languages = (signal) => getJson("/v1/languages", signal);
export const stats = (signal) => getJson("/v1/stats", signal);

const path = (id) => `/v1/executions/${encodeURIComponent(id)}`;

/**
 * The result of execution `id`, long-polling until it is there. `patient`: an
 * unknown id is waited for a while (it was just submitted) instead of failing.
 */
export async function result(id, { signal, patient = false } = {}) {
  let unknown = 0;
  for (;;) {
    const response = await fetch(`${path(id)}?wait=30`, {
      headers: { Accept: "application/json", ...authHeaders() },
      signal,
    });
    if (response.status === 200) return response.json();
    if (response.status === 202) continue; // still running: ask again
    const problem = await problemOf(response);
    // Another ingress behind a balancer may not know a new id yet: a few tries.
    if (response.status === 404 && patient && ++unknown < 10) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      continue;
    }
    throw new ApiError(response.status, problem);
  }
}

/**
 * Follow the execution's events (GET .../events, Server-Sent Events) and hand each
 * to `onEvent`. Resolves false at once when the server has no event stream, true
 * when the stream ended. Events are a live preview: the result is authoritative.
 */
export async function follow(id, onEvent, signal) {
  let response;
  try {
    response = await fetch(`${path(id)}/events`, {
      headers: { Accept: "text/event-stream", ...authHeaders() },
      signal,
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    return false;
  }
  const type = response.headers.get("content-type") || "";
  if (!response.ok || !type.startsWith("text/event-stream") || !response.body) {
    response.body?.cancel().catch(() => {});
    return false;
  }
  const parser = new SseParser((message) => {
    let event;
    try {
      event = JSON.parse(message.data);
    } catch {
      return; // not ours: skip it
    }
    if (event && typeof event === "object") {
      if (typeof event.type !== "string") event.type = message.type;
      onEvent(event);
    }
  });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return true;
      parser.feed(value);
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

/**
 * Submit `request` (it has an id) and resolve with its result. While it runs, its
 * events go to `onEvent` when the server streams them; the result itself always
 * comes from GET /v1/executions/{id} (long-polled), so a server without the event
 * stream, or a stream that loses events, still ends in the whole result.
 */
export async function run(request, { onEvent = () => {}, onSubmitted = () => {}, signal } = {}) {
  const response = await fetch(`/v1/executions?wait=0`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json", ...authHeaders() },
    body: JSON.stringify(request),
    signal,
  });
  if (response.status === 200) return response.json(); // this id had finished already
  if (response.status !== 202) throw new ApiError(response.status, await problemOf(response));
  onSubmitted(request.id);
  const live = new AbortController();
  const stop = () => live.abort();
  signal?.addEventListener("abort", stop);
  const streaming = follow(request.id, onEvent, live.signal).catch(() => false);
  try {
    return await result(request.id, { signal, patient: true });
  } finally {
    live.abort();
    signal?.removeEventListener("abort", stop);
    await streaming;
  }
}
