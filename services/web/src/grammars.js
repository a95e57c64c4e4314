// Highlighting for the languages CodeMirror's legacy modes do not cover (Ada, Nim,
// Prolog): small stream parsers for comments, strings, numbers and keywords, in the
// legacy-mode shape that StreamLanguage.define takes. Loaded as one chunk when one of
// them is picked.

const words = (text) => new Set(text.split(/\s+/).filter(Boolean));

/**
 * A stream parser from a description:
 *   line: a line comment's opener; block: [open, close] of a (nestable) block comment;
 *   quotes: the string delimiters; keywords, builtins: sets of words (builtins shown as
 *   builtinToken); fold: case-insensitive words; variable: a regexp for words shown as
 *   variables (Prolog's capitalised ones, coloured as definitions).
 */
function simpleMode({ name, line, block, quotes, keywords, builtins = new Set(), fold = false,
  variable = null, charLiteral = null, tripleQuote = false, builtinToken = "typeName" }) {
  const key = (word) => (fold ? word.toLowerCase() : word);
  function blockComment(stream, state) {
    while (!stream.eol()) {
      if (stream.match(block[1])) {
        state.depth -= 1;
        if (state.depth === 0) {
          state.inBlock = false;
          break;
        }
      } else if (stream.match(block[0])) {
        state.depth += 1;
      } else {
        stream.next();
      }
    }
    return "comment";
  }
  function string(stream, state) {
    const end = state.quote;
    while (!stream.eol()) {
      if (end.length === 3 ? stream.match(end) : stream.eat(end)) {
        state.quote = null;
        return "string";
      }
      if (end.length === 1 && stream.next() === "\\") stream.next();
      else if (end.length === 3) stream.next();
    }
    if (end.length === 1) state.quote = null; // a one-line string ends with its line
    return "string";
  }
  return {
    name,
    startState: () => ({ inBlock: false, depth: 0, quote: null }),
    token(stream, state) {
      if (state.inBlock) return blockComment(stream, state);
      if (state.quote) return string(stream, state);
      if (stream.eatSpace()) return null;
      if (block && stream.match(block[0])) { // before the line comment: Nim's #[ and #
        state.inBlock = true;
        state.depth = 1;
        return blockComment(stream, state);
      }
      if (line && stream.match(line)) {
        stream.skipToEnd();
        return "comment";
      }
      if (tripleQuote && stream.match('"""')) {
        state.quote = '"""';
        return string(stream, state);
      }
      if (charLiteral && stream.match(charLiteral)) return "string";
      const ch = stream.peek();
      if (quotes.includes(ch)) {
        stream.next();
        state.quote = ch;
        return string(stream, state);
      }
      if (stream.match(/^(0[xXbBoO][0-9a-fA-F_]+|\d[\d_]*(\.\d[\d_]*)?([eE][+-]?\d+)?(#[\w.]+#)?)/)) {
        return "number";
      }
      if (stream.match(/^[A-Za-z_][\w']*/)) {
        const word = stream.current();
        if (keywords.has(key(word))) return "keyword";
        if (builtins.has(key(word))) return builtinToken;
        if (variable && variable.test(word)) return "variableName.definition";
        return null;
      }
      if (stream.match(/^[-+*/=<>:!&|.^~@%$?\\]+/)) return "operator";
      stream.next();
      return null;
    },
    languageData: {
      commentTokens: { ...(line ? { line } : {}), ...(block ? { block: { open: block[0], close: block[1] } } : {}) },
    },
  };
}

export const ada = simpleMode({
  name: "ada",
  line: "--",
  quotes: '"',
  charLiteral: /^'.'/,
  fold: true,
  keywords: words(`abort abs abstract accept access aliased all and array at begin body case
    constant declare delay delta digits do else elsif end entry exception exit for function
    generic goto if in interface is limited loop mod new not null of or others out overriding
    package pragma private procedure protected raise range record rem renames requeue return
    reverse select separate some subtype synchronized tagged task terminate then type until use
    when while with xor`),
  builtins: words(`boolean integer natural positive float character string wide_string
    duration true false put put_line get get_line new_line text_io ada`),
});

export const nim = simpleMode({
  name: "nim",
  line: "#",
  block: ["#[", "]#"],
  quotes: '"',
  tripleQuote: true,
  charLiteral: /^'(\\.|[^'\\])'/,
  keywords: words(`addr and as asm bind block break case cast concept const continue converter
    defer discard distinct div do elif else end enum except export finally for from func if
    import in include interface is isnot iterator let macro method mixin mod nil not notin
    object of or out proc ptr raise ref return shl shr static template try tuple type using var
    when while xor yield`),
  builtins: words(`int int8 int16 int32 int64 uint uint8 uint16 uint32 uint64 float float32
    float64 bool char string seq array set openArray true false echo len high low inc dec
    readLine stdin stdout result`),
});

export const prolog = simpleMode({
  name: "prolog",
  line: "%",
  block: ["/*", "*/"],
  quotes: "\"'`",
  charLiteral: /^0'(\\.|.)/,
  keywords: words("is mod rem div xor not fail true false catch throw findall forall"),
  builtins: words(`write writeln print nl read read_term format atom number var nonvar
    atom_codes atom_chars atom_length atom_string number_codes string_concat sub_atom length
    append member msort sort between succ plus halt assert asserta assertz retract
    initialization consult`),
  variable: /^[A-Z_]/,
  builtinToken: "atom",
});
