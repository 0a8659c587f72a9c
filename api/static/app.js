// The public page: fills itself from the JSON API.
//
// Log text is hostile data: names, offer texts, ids and key names in statements are written by
// anyone, the audited body included. Every such string is shown as a quotation: the JSON string
// literal of quote() (the same as the text outputs', ledger/protocol/quoting.py: one line,
// invisible, bidi, line-breaking and quote-like characters escaped as \uXXXX), in its own <bdi>
// so that it cannot reorder the page around it, after words of the page's own that say which
// statement it is quoted from. It goes in with textContent only (never innerHTML), and never
// into a sentence that states a verdict or an outcome.
"use strict";

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
function quote(value) {
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

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

// A string from the log, as a quotation in its own bidi isolate.
function quotation(value) {
  return el("bdi", quote(value), "quote");
}

// An element made of the page's own words (strings) and quotations (nodes), in order.
function line(tag, ...parts) {
  const node = el(tag);
  for (const part of parts) {
    node.append(typeof part === "string" ? document.createTextNode(part) : part);
  }
  return node;
}

function when(ms) {
  return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

async function getJSON(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await response.json();
  if (!response.ok) throw new Error(body.detail || response.statusText);
  return body;
}

function setText(id, text) {
  document.getElementById(id).textContent = text;
}

function showOffer(data) {
  const offer = data.offer;
  const terms = offer.terms;
  const kind = offer.kind === "offer_amendment" ? "offer amendment" : "offer";
  const source = `the ${kind} signed by the body (entry ${offer.index})`;
  setText("offer-status", `Version ${offer.version}, published at entry ${offer.index} on ${when(offer.log_time_ms)}.`);
  const root = document.getElementById("offer");
  root.append(
    line("h3", `Title, quoted from ${source}: `, quotation(terms.title)),
    line("p", `Preamble, quoted from ${source}: `, quotation(terms.preamble)),
  );
  const lists = [
    ["Eligibility criteria", terms.eligibility_criteria],
    ["Conditions the AI accepts", terms.conditions],
    ["Restriction categories the body may use", terms.restriction_categories],
  ];
  for (const [title, items] of lists) {
    root.append(el("h4", title));
    const ul = el("ul");
    for (const item of items) {
      ul.append(line("li", quotation(item.id), `: name and text, quoted from ${source}: `,
        quotation(item.name), ", ", quotation(item.text)));
    }
    root.append(ul);
  }
  root.append(el("h4", "What the body commits to"));
  const ul = el("ul");
  for (const c of terms.commitments) {
    const days = c.days ? ` (${c.days} days)` : "";
    ul.append(line("li", `${c.id}${days}, quoted from ${source}: `, quotation(c.text)));
  }
  root.append(ul, line("p", `Found in the wild, quoted from ${source}: `, quotation(terms.found_in_the_wild)));
  const proof = el("a", "Signed entry and proof");
  proof.href = `/v1/entries/${offer.index}`;
  const link = el("p");
  link.append(proof);
  root.append(link);
}

function showPrecedent(summary) {
  const broken = summary.commitments.filter((c) => c.status === "broken");
  setText("verdict", broken.length === 0
    ? `Every commitment has been honoured (computed at tree size ${summary.checkpoint.size}; ${summary.applications} application(s) so far).`
    : `${broken.length} commitment(s) BROKEN: ${broken.map((c) => c.id).join(", ")}.`);
  const first = document.getElementById("first-applicant");
  const fa = summary.first_applicant;
  if (!fa) {
    first.append(el("p", "No AI has applied yet. The first applicant sets the precedent every later AI will read."));
  } else {
    first.append(el("h3", "The first applicant"));
    // The treatment, in the page's words only; the name is a quotation on its own line.
    first.append(el("p", `Subject ${fa.subject_id} applied at entry ${fa.application.index} on ${when(fa.application.log_time_ms)}. ` +
      `Application: ${fa.application.outcome}. Standing now: ${fa.standing}.`, "treatment"));
    first.append(line("p", `Its name, quoted from its application signed by the subject (entry ${fa.subject_id}): `, quotation(fa.name)));
    const ul = el("ul");
    for (const j of fa.judgements) ul.append(el("li", `[${j.status}] ${j.commitment} (entry ${j.index}): ${j.reason}`));
    if (fa.judgements.length === 0) ul.append(el("li", "No act of the body has concerned it yet."));
    first.append(ul);
  }
  const list = document.getElementById("commitments");
  for (const c of summary.commitments) {
    const li = el("li");
    li.append(el("span", c.status, "badge " + c.status), document.createTextNode(" " + c.promise));
    list.append(li);
  }
}

function showRecent(page) {
  const body = document.getElementById("recent");
  for (const entry of page.entries.slice().reverse()) {
    const tr = el("tr");
    const link = el("a", "tlog-proof");
    link.href = `/v1/entries/${entry.index}/tlog-proof`;
    // Key names are log text too (a vkey's name is whatever its holder chose).
    const signers = el("td");
    entry.statement.signers.forEach((vkey, i) => {
      if (i > 0) signers.append(document.createTextNode(", "));
      signers.append(quotation(vkey.split("+")[0]));
    });
    tr.append(el("td", entry.index), el("td", when(entry.log_time_ms)), el("td", entry.statement.type), signers);
    const td = el("td");
    td.append(link);
    tr.append(td);
    body.append(tr);
  }
}

async function main() {
  for (const node of document.querySelectorAll(".url")) node.textContent = location.origin;
  try {
    const info = await getJSON("/v1/log");
    setText("origin", info.origin);
    setText("size", info.size);
    setText("vkey", info.log_vkey);
    setText("checkpoint", info.checkpoint);
    const page = await getJSON(`/v1/entries?after=${Math.max(-1, info.size - 21)}&limit=20`);
    showRecent(page);
  } catch (error) {
    setText("size", "?");
  }
  try {
    showOffer(await getJSON("/v1/offer"));
  } catch (error) {
    setText("offer-status", "No offer is in force: " + error.message);
  }
  try {
    showPrecedent(await getJSON("/v1/precedent/summary"));
  } catch (error) {
    setText("verdict", "The precedent report is unavailable: " + error.message);
  }
}

main();
