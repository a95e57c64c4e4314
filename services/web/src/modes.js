// Syntax highlighting per language, loaded on demand: each grammar is its own chunk,
// so the first load carries the editor alone and a language costs only when picked.
import { StreamLanguage } from "@codemirror/language";

const legacy = (load) => async () => StreamLanguage.define(await load());

const loaders = {
  python: async () => (await import("@codemirror/lang-python")).python(),
  javascript: async () => (await import("@codemirror/lang-javascript")).javascript(),
  typescript: async () =>
    (await import("@codemirror/lang-javascript")).javascript({ typescript: true }),
  java: async () => (await import("@codemirror/lang-java")).java(),
  c: async () => (await import("@codemirror/lang-cpp")).cpp(),
  cpp: async () => (await import("@codemirror/lang-cpp")).cpp(),
  go: async () => (await import("@codemirror/lang-go")).go(),
  rust: async () => (await import("@codemirror/lang-rust")).rust(),
  php: async () => (await import("@codemirror/lang-php")).php(),
  ruby: legacy(async () => (await import("@codemirror/legacy-modes/mode/ruby")).ruby),
  perl: legacy(async () => (await import("@codemirror/legacy-modes/mode/perl")).perl),
  bash: legacy(async () => (await import("@codemirror/legacy-modes/mode/shell")).shell),
  // Languages the registry may grow to (docs/languages.md): highlighted when they come.
  kotlin: legacy(async () => (await import("@codemirror/legacy-modes/mode/clike")).kotlin),
  scala: legacy(async () => (await import("@codemirror/legacy-modes/mode/clike")).scala),
  csharp: legacy(async () => (await import("@codemirror/legacy-modes/mode/clike")).csharp),
  objectivec: legacy(async () => (await import("@codemirror/legacy-modes/mode/clike")).objectiveC),
  dart: legacy(async () => (await import("@codemirror/legacy-modes/mode/clike")).dart),
  groovy: legacy(async () => (await import("@codemirror/legacy-modes/mode/groovy")).groovy),
  clojure: legacy(async () => (await import("@codemirror/legacy-modes/mode/clojure")).clojure),
  fsharp: legacy(async () => (await import("@codemirror/legacy-modes/mode/mllike")).fSharp),
  ocaml: legacy(async () => (await import("@codemirror/legacy-modes/mode/mllike")).oCaml),
  haskell: legacy(async () => (await import("@codemirror/legacy-modes/mode/haskell")).haskell),
  erlang: legacy(async () => (await import("@codemirror/legacy-modes/mode/erlang")).erlang),
  elixir: legacy(async () => (await import("@codemirror/legacy-modes/mode/ruby")).ruby),
  lua: legacy(async () => (await import("@codemirror/legacy-modes/mode/lua")).lua),
  r: legacy(async () => (await import("@codemirror/legacy-modes/mode/r")).r),
  julia: legacy(async () => (await import("@codemirror/legacy-modes/mode/julia")).julia),
  d: legacy(async () => (await import("@codemirror/legacy-modes/mode/d")).d),
  fortran: legacy(async () => (await import("@codemirror/legacy-modes/mode/fortran")).fortran),
  pascal: legacy(async () => (await import("@codemirror/legacy-modes/mode/pascal")).pascal),
  cobol: legacy(async () => (await import("@codemirror/legacy-modes/mode/cobol")).cobol),
  assembly: legacy(async () => (await import("@codemirror/legacy-modes/mode/gas")).gas),
  nasm: legacy(async () => (await import("@codemirror/legacy-modes/mode/gas")).gas),
  crystal: legacy(async () => (await import("@codemirror/legacy-modes/mode/crystal")).crystal),
  swift: legacy(async () => (await import("@codemirror/legacy-modes/mode/swift")).swift),
  scheme: legacy(async () => (await import("@codemirror/legacy-modes/mode/scheme")).scheme),
  racket: legacy(async () => (await import("@codemirror/legacy-modes/mode/scheme")).scheme),
  commonlisp: legacy(async () =>
    (await import("@codemirror/legacy-modes/mode/commonlisp")).commonLisp),
  tcl: legacy(async () => (await import("@codemirror/legacy-modes/mode/tcl")).tcl),
  sql: legacy(async () => (await import("@codemirror/legacy-modes/mode/sql")).sqlite),
  sqlite: legacy(async () => (await import("@codemirror/legacy-modes/mode/sql")).sqlite),
  octave: legacy(async () => (await import("@codemirror/legacy-modes/mode/octave")).octave),
  basic: legacy(async () => (await import("@codemirror/legacy-modes/mode/vb")).vb),
  vbnet: legacy(async () => (await import("@codemirror/legacy-modes/mode/vb")).vb),
  smalltalk: legacy(async () => (await import("@codemirror/legacy-modes/mode/smalltalk")).smalltalk),
  awk: legacy(async () => (await import("@codemirror/legacy-modes/mode/shell")).shell),
  forth: legacy(async () => (await import("@codemirror/legacy-modes/mode/forth")).forth),
  // No legacy mode exists for these three: grammars.js has small ones.
  ada: legacy(async () => (await import("./grammars.js")).ada),
  nim: legacy(async () => (await import("./grammars.js")).nim),
  prolog: legacy(async () => (await import("./grammars.js")).prolog),
};

/** The names we have a grammar for (the test checks every served language is one). */
export const highlighted = Object.keys(loaders);

/** A grammar for the language (by its name, else one of its aliases), or null. */
export async function languageSupport(name, aliases = []) {
  for (const key of [name, ...aliases]) {
    const load = loaders[String(key).toLowerCase().replace(/[^a-z0-9]/g, "")];
    if (load) return load();
  }
  return null;
}
