// Log text as a quotation: exactly ledger.protocol.quoting.quote (the text outputs' quotation),
// so JSON.parse(quote(s)) === s and the page shows what /llms.txt and the CLI show. One line;
// invisible, bidi, line-breaking and quote-like characters escaped as \uXXXX; a combining mark
// never draws on the opening quote or on an escape.

const MAX_COMBINING_RUN = 4;
const INVISIBLE = new Set([
  ..."\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180e\u180f\u2800\u3164\uffa0\uffef",
  ..."\u{1d159}\u{1d173}\u{1d174}\u{1d175}\u{1d176}\u{1d177}\u{1d178}\u{1d179}\u{1d17a}",
  ...Array.from({ length: 16 }, (_, i) => String.fromCodePoint(0xfe00 + i)),
  ...Array.from({ length: 240 }, (_, i) => String.fromCodePoint(0xe0100 + i)),
]);
const QUOTE_LOOKALIKES = new Set([
  ..."\u02ba\u02dd\u02ee\u05f4\u201c\u201d\u201e\u201f\u2033\u2036\u275d\u275e\u2e42\u3003",
  ..."\u301d\u301e\u301f\uff02\u{1f676}\u{1f677}\u{1f678}",
]);
const ESCAPED = /^[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]$/u;
const MARK = /^\p{M}$/u;
const JSON_ESCAPES = new Map([
  ['"', '\\"'], ["\\", "\\\\"], ["\n", "\\n"], ["\r", "\\r"], ["\t", "\\t"], ["\b", "\\b"], ["\f", "\\f"],
]);

function escapeChar(ch) {
  if (JSON_ESCAPES.has(ch)) return JSON_ESCAPES.get(ch);
  const hex = (n) => "\\u" + n.toString(16).padStart(4, "0");
  const point = ch.codePointAt(0);
  if (point <= 0xffff) return hex(point);
  const rest = point - 0x10000;
  return hex(0xd800 + (rest >> 10)) + hex(0xdc00 + (rest & 0x3ff));
}

function kindOf(ch) {
  if (ch === " ") return "plain";
  if (INVISIBLE.has(ch) || QUOTE_LOOKALIKES.has(ch) || ESCAPED.test(ch)) return "escape";
  return MARK.test(ch) ? "mark" : "plain";
}

// The quotation of a string from the log: exactly ledger.protocol.quoting.quote, so
// JSON.parse(quote(s)) === s and the page shows what the text outputs show.
export function quote(value) {
  let out = '"';
  let afterEscape = true; // the opening quote: a combining mark must not draw on it
  let run = 0;
  for (const ch of String(value)) {
    const kind = kindOf(ch);
    let escaped;
    if (kind === "mark") {
      run += 1;
      escaped = afterEscape || run > MAX_COMBINING_RUN;
    } else {
      run = 0;
      escaped = kind === "escape";
    }
    if (escaped) {
      out += escapeChar(ch);
    } else if (JSON_ESCAPES.has(ch)) {
      out += JSON_ESCAPES.get(ch);
      escaped = true;
    } else {
      out += ch;
    }
    afterEscape = escaped;
  }
  return out + '"';
}
