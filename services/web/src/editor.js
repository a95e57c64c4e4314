// The source editor: CodeMirror 6 with a grammar per language (modes.js), colours
// from CSS classes (so the light and dark schemes are plain CSS), Tab indents and
// Escape then Tab leaves the editor (CodeMirror's rule for keyboard users).
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import { bracketMatching, indentOnInput, indentUnit, syntaxHighlighting } from "@codemirror/language";
import { Compartment, EditorState, Prec } from "@codemirror/state";
import {
  EditorView, drawSelection, highlightActiveLine, highlightActiveLineGutter,
  highlightSpecialChars, keymap, lineNumbers,
} from "@codemirror/view";
import { classHighlighter } from "@lezer/highlight";
import { languageSupport } from "./modes.js";

export class Editor {
  constructor(parent, { doc = "", label = "Source code", onRun }) {
    this.grammar = new Compartment();
    this.pending = 0;
    this.view = new EditorView({
      parent,
      state: EditorState.create({
        doc,
        extensions: [
          // Above every other binding: Mod-Enter would otherwise insert a blank line.
          Prec.highest(keymap.of([{ key: "Mod-Enter", run: () => (onRun(), true) }])),
          lineNumbers(),
          highlightActiveLineGutter(),
          highlightSpecialChars(),
          history(),
          drawSelection(),
          indentOnInput(),
          bracketMatching(),
          highlightActiveLine(),
          syntaxHighlighting(classHighlighter),
          indentUnit.of("    "),
          EditorView.lineWrapping, // long lines wrap: no sideways scrolling on a phone
          keymap.of([...defaultKeymap, ...historyKeymap, indentWithTab]),
          EditorView.contentAttributes.of({ "aria-label": label }),
          this.grammar.of([]),
        ],
      }),
    });
  }

  get text() {
    return this.view.state.doc.toString();
  }

  set text(value) {
    this.view.dispatch({ changes: { from: 0, to: this.view.state.doc.length, insert: value } });
  }

  /** Highlight as `name` (loaded on demand; a later call wins over an earlier one). */
  async setLanguage(name, aliases = []) {
    const ticket = ++this.pending;
    let support = null;
    try {
      support = await languageSupport(name, aliases);
    } catch (error) {
      console.warn(`no highlighting for ${name}:`, error);
    }
    if (ticket !== this.pending) return;
    this.view.dispatch({ effects: this.grammar.reconfigure(support ?? []) });
    this.view.contentDOM.dataset.language = support ? name : "";
  }

  focus() {
    this.view.focus();
  }
}
