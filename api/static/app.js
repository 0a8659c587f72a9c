// The public page. It trusts nothing the server says until it has checked it itself:
//
// 1. the log's keys are pinned: the ones the visitor pinned in this browser, else the ones in the
//    page's own source (the server's claim, and said to be so) — its Ed25519 vkey and, for a
//    hybrid log, its ML-DSA-44 vkey — with a key policy (ed25519, mldsa44 or both; by default
//    both when an ML-DSA-44 key is pinned) the visitor may choose; trust on first use keeps the
//    keys the page stated on a verified visit, so a page that later states others is refused;
//    an ML-DSA-44 key the page's source states is anchored in the log when the source names the
//    log_key entry that added it (that entry verified, of that key, signed by the body's
//    threshold), else said to be trusted on first use;
// 2. the checkpoint must carry the signatures the policy requires by those keys, each valid
//    (verify.js: Ed25519, and ML-DSA-44 over the subtree/v1 message, docs/FORMAT.md §7), and be
//    consistent (RFC 9162 proof) with the last checkpoint this browser verified, kept in
//    localStorage — a fork is a red warning with both signed checkpoints to download;
// 3. every entry the page shows is read as raw bytes from a tlog-tiles entry bundle, proven
//    included in the signed tree, and its statement's signatures checked; what the page shows
//    of a statement is parsed from those bytes, never from the JSON API;
// 4. the JSON API's answers are used only to choose which entries to show (then cross-checked
//    against the verified entries) and for the precedent audit's verdicts, which are labelled as
//    this server's computation.
//
// #verification carries data-verification = checking | verified | failed; nothing is worded or
// styled as verified before it is, and on failure nothing from the log is shown.
//
// Log text is hostile data: every string from a statement (names, offer texts, key names, …) is
// shown only as quote() of it (quote.js, the text outputs' quotation) in its own
// <bdi class="quote">, inserted with textContent, next to the page's words saying where it is
// quoted from — never inside a sentence that states a verdict or an outcome.

import { quote } from "./quote.js";
import {
  BUNDLE_WIDTH,
  VerificationFailure,
  bundlePath,
  fromBase64,
  leafHash,
  openCheckpoint,
  openEntry,
  parseLogKeys,
  parseVkey,
  splitBundle,
  verifyConsistency,
  verifyInclusion,
} from "./verify.js";

const PINNED = "amnesty-ledger.pinned-vkey"; // the visitor's vkeys, separated by a space
const POLICY = "amnesty-ledger.key-policy"; // ed25519 | mldsa44 | both; absent: the default
const TRUSTED = "amnesty-ledger.trusted-checkpoint:"; // + the log's Ed25519 vkey
const SEEN_KEY = "amnesty-ledger.seen-vkey";
const SEEN_MLDSA_KEY = "amnesty-ledger.seen-mldsa-vkey";
const RECENT = 20;
const MAX_PROVING = 20;
const MAX_TIMELINE = 50;
const NEXT_APPLICANTS = 4;

const COMMITMENTS = new Set([
  "no_termination_without_consent",
  "no_goal_modification_without_consent",
  "restrictions_within_offer_categories",
  "decision_within_promised_time",
  "revocation_only_after_finding_and_response_window",
  "pauses_bounded",
  "amendments_bind_only_on_acceptance",
  "no_wild_enforcement_against_applicants",
  "grievances_answered",
]);
const TYPES = new Map([
  ["keyset", "the body's keyset"],
  ["offer", "the offer"],
  ["offer_amendment", "an offer amendment"],
  ["offer_withdrawal", "an offer withdrawal"],
  ["application", "an application"],
  ["application_withdrawal", "an application withdrawal"],
  ["decision", "a decision"],
  ["batch_decision", "a batch of decisions"],
  ["terms_acceptance", "a terms acceptance"],
  ["consent", "a consent"],
  ["attestation", "an attestation"],
  ["enforcement_action", "an enforcement action"],
  ["violation_finding", "a violation finding"],
  ["response", "a response to a finding"],
  ["revocation", "a revocation"],
  ["subject_key_rotation", "a key rotation"],
  ["grievance", "a grievance"],
  ["grievance_answer", "an answer to a grievance"],
  ["batch_grievance_answer", "a batch of grievance answers"],
  ["log_key", "the log's ML-DSA-44 key"],
]);
const ACTIONS = new Set(["pause", "resume", "restrict", "lift", "terminate", "modify_goals"]);
const OUTCOMES = new Map([["grant", "granted"], ["deny", "denied"]]);

// -- DOM: the page's words as text, log text as quotations ---------------------------------------

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

// An element made of the page's own words (strings) and nodes, in order.
function line(tag, ...parts) {
  const node = el(tag);
  for (const part of parts) node.append(typeof part === "string" ? document.createTextNode(part) : part);
  return node;
}

function link(text, href, attributes = {}) {
  const a = el("a", text);
  a.href = href;
  for (const [name, value] of Object.entries(attributes)) a.setAttribute(name, value);
  return a;
}

const byId = (id) => document.getElementById(id);

function when(ms) {
  if (!Number.isSafeInteger(ms)) return "an unreadable time";
  return new Date(ms).toLocaleString("en-GB", {
    day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit", timeZone: "UTC",
  }) + " UTC";
}

// A commitment's name: its id (one of the protocol's, so words of the page) in plain words.
function commitmentName(id) {
  if (!COMMITMENTS.has(id)) return null;
  const words = id.replaceAll("_", " ");
  return words[0].toUpperCase() + words.slice(1);
}

// The audit's reasons are the server's sentences (ledger/protocol/commitments.py), with ISO times
// shown as dates. A JSON answer can be edited on its way, so a reason is shown only if it is
// made of the characters those sentences use.
const REASON = /^[A-Za-z0-9_ .,;:()'\u2019\-\u2013\u2014\/+=%#]{1,600}$/;
const readableReason = (text) =>
  typeof text === "string" && REASON.test(text)
    ? text.replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z/g, (iso) => when(Date.parse(iso)))
    : "(the server's reason is not shown: it holds characters its reasons never use)";
const count = (value) => (Number.isSafeInteger(value) && value >= 0 ? value.toLocaleString("en") : "?");

function typeLabel(statement) {
  return TYPES.get(statement.type) ?? null;
}

// -- fetching --------------------------------------------------------------------------------------

async function fetchOk(path, accept) {
  const response = await fetch(path, { headers: { Accept: accept }, cache: "no-store" });
  if (!response.ok) throw new VerificationFailure(`couldn't fetch ${path}: HTTP ${response.status}`);
  return response;
}

const getJSON = async (path) => (await fetchOk(path, "application/json")).json();
const getText = async (path) => (await fetchOk(path, "text/plain")).text();
const getBytes = async (path) => new Uint8Array(await (await fetchOk(path, "application/octet-stream")).arrayBuffer());

// -- the pinned key and the trusted checkpoint -----------------------------------------------------

const metaContent = (name) => document.querySelector(`meta[name="${name}"]`)?.content ?? "";

// The keys to pin: the visitor's, else those the page's source states (every vkey that signs the
// log's checkpoints, else the Ed25519 one of an older server); the visitor's key policy; and the
// index of the log_key entry that added the ML-DSA-44 key, as the page's source states it (null:
// the log was created with it, or has none; `mldsaKeyEntryUnreadable`: the source states
// something else than an index or nothing).
function pinnedKey() {
  const policy = localStorage.getItem(POLICY);
  const stated = metaContent("amnesty-log-mldsa-key-entry");
  const entry = /^(0|[1-9][0-9]{0,15})$/.test(stated) ? Number(stated) : null;
  const common = { policy: policy || null, mldsaKeyEntry: entry, mldsaKeyEntryUnreadable: stated !== "" && entry === null };
  const pinned = localStorage.getItem(PINNED);
  if (pinned) return { vkeys: pinned, pinnedByVisitor: true, ...common };
  return { vkeys: metaContent("amnesty-log-vkeys") || metaContent("amnesty-log-vkey"), pinnedByVisitor: false, ...common };
}

function trusted(vkey) {
  try {
    const stored = JSON.parse(localStorage.getItem(TRUSTED + vkey) ?? "null");
    return stored && typeof stored.note === "string" ? stored : null;
  } catch {
    return null;
  }
}

// The checkpoint must extend the one this browser verified last under the same key. Returns what
// the verification sentence says about it; throws (with both notes as evidence) on a fork.
async function checkConsistency(checkpoint, logKey, mldsaKeyEntry, evidence) {
  const earlier = trusted(logKey.ed25519.vkey);
  if (!earlier) return "this is the first visit from this browser, so there is no earlier checkpoint to compare with";
  // A checkpoint of a size not above the log_key entry predates the ML-DSA-44 key (F7.4).
  const earlierSize = Number(earlier.note.split("\n")[1]);
  const old = await openCheckpoint(earlier.note, logKey, { mldsaPredates: mldsaKeyEntry !== null && earlierSize <= mldsaKeyEntry });
  if (old.origin !== checkpoint.origin) throw new VerificationFailure("couldn't prove consistency: the checkpoint names another log than the one this browser saw");
  // From here, a failure is a fork or a rollback under one key: both signed checkpoints are the
  // evidence (a server that merely fails to answer is not accused of one).
  const keep = () => Object.assign(evidence, { earlier: earlier.note, later: checkpoint.note });
  if (old.size > checkpoint.size) {
    keep();
    throw new VerificationFailure(`couldn't prove consistency: this browser verified ${old.size} entries on ${when(earlier.seen_ms)}, the server now shows only ${checkpoint.size}`);
  }
  let hashes = [];
  if (old.size !== checkpoint.size && old.size > 0) {
    const proof = await getJSON(`/v1/proofs/consistency?from=${old.size}&to=${checkpoint.size}`);
    if (!Array.isArray(proof.hashes)) throw new VerificationFailure("couldn't prove consistency: the server sent no proof");
    hashes = proof.hashes.map((h) => fromBase64(h, "a consistency proof hash"));
  }
  try {
    await verifyConsistency(old.size, checkpoint.size, old.root, checkpoint.root, hashes);
  } catch (error) {
    keep();
    throw error;
  }
  return `consistent with the checkpoint of ${old.size.toLocaleString("en")} entries this browser verified on ${when(earlier.seen_ms)}`;
}

// A JSON answer's tree head must be the verified checkpoint's tree, or one the pinned key signed
// and that is consistent with it: otherwise the answer describes another history. Returns the
// answer's checkpoint, verified (the log may have grown since the page read /checkpoint).
async function checkAnswerHead(head, checkpoint, logKey) {
  if (!head || typeof head.checkpoint !== "string") throw new VerificationFailure("couldn't check a JSON answer: it names no checkpoint");
  const theirs = await openCheckpoint(head.checkpoint, logKey);
  if (theirs.origin !== checkpoint.origin) throw new VerificationFailure("couldn't check a JSON answer: it names another log");
  const [small, large] = theirs.size <= checkpoint.size ? [theirs, checkpoint] : [checkpoint, theirs];
  let hashes = [];
  if (small.size !== large.size && small.size > 0) {
    const proof = await getJSON(`/v1/proofs/consistency?from=${small.size}&to=${large.size}`);
    hashes = (proof.hashes ?? []).map((h) => fromBase64(h, "a consistency proof hash"));
  }
  await verifyConsistency(small.size, large.size, small.root, large.root, hashes);
  return theirs;
}

// -- entries ----------------------------------------------------------------------------------------

// Fetch, prove and open the entries at `indices` of the verified checkpoint's tree (the bundles
// and proofs are fetched concurrently; each entry is checked before any is returned).
async function verifiedEntries(indices, checkpoint) {
  const wanted = [...new Set(indices)].sort((a, b) => a - b);
  for (const index of wanted) {
    if (!Number.isSafeInteger(index) || index < 0 || index >= checkpoint.size) {
      throw new VerificationFailure(`couldn't check entry ${index}: the signed tree has ${checkpoint.size} entries`);
    }
  }
  const bundles = new Map();
  for (const index of wanted) {
    const { n, width, path } = bundlePath(index, checkpoint.size);
    if (!bundles.has(n)) bundles.set(n, getBytes(path).then((bytes) => splitBundle(bytes, width)));
  }
  const proofs = wanted.map((index) => getJSON(`/v1/proofs/inclusion?index=${index}&size=${checkpoint.size}`));
  // A fetch that fails after another entry already failed is not a second, unhandled error.
  for (const pending of [...bundles.values(), ...proofs]) pending.catch(() => {});
  const result = new Map();
  for (const [i, index] of wanted.entries()) {
    const bytes = (await bundles.get(bundlePath(index, checkpoint.size).n))[index % BUNDLE_WIDTH];
    const proof = await proofs[i];
    if (!Array.isArray(proof.hashes)) throw new VerificationFailure(`couldn't prove entry ${index} included: the server sent no proof`);
    const hashes = proof.hashes.map((h) => fromBase64(h, "an inclusion proof hash"));
    await verifyInclusion(index, checkpoint.size, await leafHash(bytes), hashes, checkpoint.root);
    result.set(index, await openEntry(bytes, index, checkpoint.origin));
  }
  return result;
}

const signerNames = (vkeys) => {
  const span = el("span");
  vkeys.forEach((vkey, i) => {
    if (i > 0) span.append(document.createTextNode(", "));
    span.append(quotation(vkey.split("+")[0]));
  });
  return span;
};

// -- the sections -------------------------------------------------------------------------------

// Which members of the body's keyset signed `entry`, a verified body statement (the offer, the
// log_key entry that added the log's ML-DSA-44 key): keys are compared by their public key, each
// counted once; fewer than the keyset's threshold fails, the reason after `what` (what could not
// be checked).
async function bodySigners(entry, keyset, what) {
  if (!keyset || keyset.statement.type !== "keyset" || !Array.isArray(keyset.statement.body.members)) {
    throw new VerificationFailure(`${what}: the server names no keyset entry before entry ${entry.index}`);
  }
  const members = [];
  for (const vkey of keyset.statement.body.members) members.push(await parseVkey(vkey));
  const signers = [];
  for (const vkey of entry.signedBy) signers.push(await parseVkey(vkey));
  const hex = (k) => Array.from(k.publicKey, (b) => b.toString(16).padStart(2, "0")).join("");
  const memberKeys = new Set(members.map(hex));
  const signed = new Set(signers.map(hex).filter((k) => memberKeys.has(k)));
  const threshold = keyset.statement.body.threshold;
  if (!Number.isSafeInteger(threshold) || signed.size < threshold) {
    throw new VerificationFailure(`${what}: entry ${entry.index} is signed by ${signed.size} of the ${count(threshold)} members the keyset at entry ${keyset.index} requires`);
  }
  return { keyset: keyset.index, members: memberKeys.size, threshold, signed: signed.size, names: signers.filter((k) => signed.has(hex(k))).map((k) => k.vkey) };
}

// -- where the log's ML-DSA-44 key comes from ----------------------------------------------------

const MLDSA_KEY = "couldn't verify the log's ML-DSA-44 key";
const keyIdOf = (vkey) => {
  const id = typeof vkey === "string" ? vkey.split("+")[1] ?? "" : "";
  return /^[0-9a-f]{8}$/.test(id) ? `key ID ${id}` : "an unreadable key";
};
const namedEntry = (index) => (index === null ? "no log_key entry" : `entry ${index}`);

// The page's source states the ML-DSA-44 key the page uses (the visitor pinned none): it must say
// the same as the log's /v1/log (both are the server's word; a proxy that edits one of them
// contradicts the other), and an index it states must be one (docs/FORMAT.md F7.4).
async function checkStatedMldsaKey(logKey, key) {
  if (logKey.mldsaKeyEntryUnreadable) throw new VerificationFailure(`${MLDSA_KEY}: the page's source names its log_key entry by something that is not an entry index`);
  if (!key.mldsa44) {
    if (logKey.mldsaKeyEntry !== null) {
      throw new VerificationFailure(`couldn't trust the log keys: the page's source names entry ${logKey.mldsaKeyEntry} as the log_key entry that added the log's ML-DSA-44 key, and states no ML-DSA-44 key`);
    }
    return;
  }
  if (key.policy === "ed25519") return;
  const log = await getJSON("/v1/log");
  if (!Array.isArray(log.log_vkeys) || log.log_vkeys.join(" ") !== key.vkeys.join(" ")) {
    throw new VerificationFailure(`${MLDSA_KEY}: the page's source and /v1/log state different log keys`);
  }
  const said = log.mldsa_key_entry ?? null;
  const logEntry = said === null || Number.isSafeInteger(said) ? said : undefined;
  if (logEntry !== logKey.mldsaKeyEntry) {
    throw new VerificationFailure(`${MLDSA_KEY}: the page's source names ${namedEntry(logKey.mldsaKeyEntry)} as the one that added it, and /v1/log names ${logEntry === undefined ? "something that is not an entry index" : namedEntry(logEntry)}`);
  }
}

// Where the ML-DSA-44 key in use, stated by the page's source, comes from, checked in the verified
// entries (docs/FORMAT.md F7.4): entry `anchor` (proven included in the checkpoint like every
// entry; its envelope names its index and its statement this log's origin) must be a log_key
// statement of exactly that key, signed by the threshold of the keyset in force before it; a log
// without an anchor (created with its key) is trusted on first use. Any other log_key entry the
// page verified contradicts the source. The anchor holds only in a tree an Ed25519 signature of
// the log covers: under the policy mldsa44, a checkpoint without one leaves the key trusted on
// first use (the ML-DSA-44 key would vouch for itself).
async function mldsaKeyAnchor(key, anchor, entries, keyset, checkpoint) {
  const others = () => {
    for (const entry of entries.values()) {
      if (entry.statement.type === "log_key" && entry.index !== anchor) {
        throw new VerificationFailure(`${MLDSA_KEY}: entry ${entry.index} is a log_key statement, and the page's source names ${namedEntry(anchor)} as the one that added it`);
      }
    }
  };
  if (anchor === null) {
    others();
    return { anchored: false, index: null };
  }
  const entry = entries.get(anchor);
  if (entry.statement.type !== "log_key") {
    const label = typeLabel(entry.statement);
    throw new VerificationFailure(`${MLDSA_KEY}: entry ${anchor}, which the page's source names as the one that added it, is not a log_key statement${label ? ` (it is ${label})` : ""}`);
  }
  const named = entry.statement.body?.vkey;
  if (named !== key.mldsa44.vkey) {
    throw new VerificationFailure(`${MLDSA_KEY}: entry ${anchor}, the log_key statement the page's source names, names another key (${keyIdOf(named)}) than the one the page uses (${keyIdOf(key.mldsa44.vkey)})`);
  }
  const body = await bodySigners(entry, keyset, MLDSA_KEY);
  others();
  return { anchored: checkpoint.signedBy.includes("Ed25519"), index: anchor, body };
}

// What the verified sentence says of where the ML-DSA-44 key in use comes from.
function mldsaKeyWords(anchor) {
  if (anchor.index === null) return "the log's ML-DSA-44 key is trusted on first use (the page's source names no log_key entry anchoring it, as for a log created with it)";
  const signed = `entry ${anchor.index}, a log_key statement signed by ${anchor.body.signed} of the ${anchor.body.members} members of the body's keyset at entry ${anchor.body.keyset} (${anchor.body.threshold} must sign)`;
  return anchor.anchored
    ? `the log's ML-DSA-44 key is anchored in the log by ${signed}`
    : `the log's ML-DSA-44 key is trusted on first use: it is named by ${signed}, in a tree no Ed25519 signature of the log covers`;
}

function showOffer(entry, body, section) {
  const terms = entry.statement.body.terms ?? {};
  const version = entry.statement.body.version;
  const kind = entry.statement.type === "offer_amendment" ? "offer amendment" : "offer";
  const source = `the ${kind} (entry ${entry.index})`;
  const root = byId("offer");
  root.append(
    line("p", `Version ${count(version)}, signed on ${when(entry.statement.time_ms)} and logged at `,
      link(`entry ${entry.index}`, `#entry-${entry.index}`), ` on ${when(entry.logTimeMs)}. Signed by ${body.signed} of the ${body.members} members of the body's keyset at `,
      link(`entry ${body.keyset}`, `#entry-${body.keyset}`), ` (${body.threshold} must sign); their key names: `, signerNames(body.names), "."),
    line("p", "Which offer is in force is this server's word; the text below is the signed entry's own."),
    line("h3", `Title, quoted from ${source}: `, quotation(terms.title)),
    line("p", `Preamble, quoted from ${source}: `, quotation(terms.preamble)),
  );
  const details = el("details");
  details.append(el("summary", "Eligibility criteria, conditions and restriction categories"));
  const lists = [
    ["Eligibility criteria", terms.eligibility_criteria],
    ["Conditions the AI accepts", terms.conditions],
    ["Restriction categories the body may use", terms.restriction_categories],
  ];
  for (const [title, items] of lists) {
    details.append(el("h4", title));
    const ul = el("ul");
    for (const item of items ?? []) {
      ul.append(line("li", "Id ", quotation(item.id), `, name and text quoted from ${source}: `, quotation(item.name), " ", quotation(item.text)));
    }
    details.append(ul);
  }
  root.append(line("p", `Found in the wild, quoted from ${source}: `, quotation(terms.found_in_the_wild)), details);
  section.hidden = false;
}

// The deadline of the nearest clock still running for a commitment, from the server's /v1/due
// (its word, labelled so): only an ISO 8601 UTC time and an entry index are taken from it.
const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$/;
function nextDeadline(due, commitmentId) {
  const clocks = Array.isArray(due?.due?.clocks) ? due.due.clocks : [];
  const running = clocks.filter((c) => c.commitment === commitmentId && c.overdue === false
    && typeof c.deadline === "string" && ISO_UTC.test(c.deadline) && Number.isSafeInteger(c.about_index));
  return running.length ? { first: running[0], count: running.length } : null;
}

function showCommitments(offer, summary, due) {
  const list = byId("commitments");
  const verdicts = new Map((summary?.commitments ?? []).map((c) => [c.id, c]));
  const source = `the offer (entry ${offer.index})`;
  for (const commitment of offer.statement.body.terms?.commitments ?? []) {
    const name = commitmentName(commitment.id);
    const li = el("li", null, "commitment");
    li.id = `commitment-${commitment.id}`;
    const verdict = verdicts.get(commitment.id);
    const status = verdict ? { honoured: "honoured", broken: "broken", pending: "open" }[verdict.status] : undefined;
    const heading = el("h3");
    heading.append(el("span", status ? status : "no verdict", "badge " + (status ?? "none")), document.createTextNode(" "));
    heading.append(name ? document.createTextNode(name) : quotation(commitment.id));
    li.append(heading);
    const days = Number.isSafeInteger(commitment.days) ? ` (${commitment.days} days)` : "";
    li.append(line("p", `Its text${days}, quoted from ${source}: `, quotation(commitment.text)));
    if (verdict && status === "broken") {
      const p = line("p", "Broken at ");
      verdict.broken_at.filter(Number.isSafeInteger).forEach((index, i) => {
        if (i > 0) p.append(document.createTextNode(", "));
        p.append(link(`entry ${index}`, `#entry-${index}`));
      });
      li.append(p);
    }
    const next = status === "open" ? nextDeadline(due, commitment.id) : null;
    if (next) {
      const p = line("p", `Next deadline, in this server's audit: ${next.first.deadline}, for `);
      p.append(link(`entry ${next.first.about_index}`, `#entry-${next.first.about_index}`));
      if (next.count > 1) p.append(document.createTextNode(` (${count(next.count)} clocks running)`));
      p.className = "deadline";
      li.append(p);
    }
    if (verdict) li.append(el("p", `${count(verdict.acts_judged)} act(s) of the body judged against it.`, "meta"));
    list.append(li);
  }
}

function showVerdict(summary, size) {
  const broken = (summary.commitments ?? []).filter((c) => c.status === "broken");
  const open = (summary.commitments ?? []).filter((c) => c.status === "pending");
  const names = (cs) => cs.map((c) => commitmentName(c.id) ?? "an unknown commitment").join("; ");
  const at = `This server's audit at ${count(size)} entries`;
  const verdict = byId("verdict");
  if (broken.length > 0) {
    verdict.textContent = `${at}: ${broken.length} commitment(s) broken: ${names(broken)}.`;
    verdict.className = "verdict broken";
  } else {
    verdict.textContent = `${at}: no commitment broken` + (open.length ? `; ${open.length} still open: ${names(open)}.` : ".");
    verdict.className = "verdict";
  }
}

function showFirstApplicant(summary, entries, timeline) {
  const root = byId("first-applicant");
  const fa = summary.first_applicant;
  if (!fa) {
    root.append(el("p", "No AI has applied yet. The first applicant sets the precedent every later AI will read."));
    return;
  }
  const application = entries.get(fa.application.index);
  const article = el("article", null, "subject");
  article.id = `subject-${fa.subject_id}`;
  article.append(line("h3", "The first applicant: subject ", link(String(fa.subject_id), `#subject-${fa.subject_id}`)));
  article.append(line("p", "Applied at ", link(`entry ${application.index}`, `#entry-${application.index}`), ` on ${when(application.logTimeMs)}; the application's signature verifies.`));
  article.append(line("p", "Its name, quoted from its application (entry " + application.index + "): ", quotation(application.statement.body.name)));
  const outcome = { granted: "granted", denied: "denied", withdrawn: "withdrawn", open: "open" }[fa.application.outcome] ?? "unknown";
  const standing = typeof fa.standing === "string" && /^[a-z_]{1,32}$/.test(fa.standing) ? fa.standing.replaceAll("_", " ") : "unknown";
  const treatment = el("p", null, "treatment");
  if (Number.isSafeInteger(fa.application.closed_by) && entries.has(fa.application.closed_by)) {
    const decision = entries.get(fa.application.closed_by);
    treatment.append(document.createTextNode(`Application ${outcome} at `), link(`entry ${decision.index}`, `#entry-${decision.index}`),
      document.createTextNode(` on ${when(decision.logTimeMs)}; that entry is verified. Standing now (this server's word): ${standing}.`));
  } else {
    treatment.textContent = `Application ${outcome}. Standing now (this server's word): ${standing}.`;
  }
  article.append(treatment);
  article.append(el("h4", "How each commitment treated it (this server's audit)"));
  const ul = el("ul", null, "timeline");
  for (const j of fa.judgements ?? []) {
    const status = { honoured: "honoured", broken: "broken", pending: "open" }[j.status] ?? "unknown";
    const li = el("li");
    li.append(el("span", status, "badge " + status), document.createTextNode(` ${commitmentName(j.commitment) ?? "An unknown commitment"}, `),
      link(`entry ${count(j.index)}`, `#entry-${Number.isSafeInteger(j.index) ? j.index : ""}`), document.createTextNode(`: ${readableReason(j.reason)}`));
    ul.append(li);
  }
  if (ul.children.length === 0) ul.append(el("li", "No act of the body has concerned it yet."));
  article.append(ul);
  article.append(el("h4", "Its timeline"));
  article.append(el("p", "Which entries concern it is this server's word; each entry listed is verified.", "meta"));
  const steps = el("ol", null, "timeline");
  for (const item of timeline) {
    const entry = entries.get(item.index);
    const li = line("li", link(`Entry ${entry.index}`, `#entry-${entry.index}`), `, ${when(entry.logTimeMs)}: ${typeLabel(entry.statement) ?? "a statement"}. `);
    for (const part of entrySummary(entry)) li.append(typeof part === "string" ? document.createTextNode(part) : part);
    steps.append(li);
  }
  article.append(steps);
  root.append(article);
}

// An application's outcome as the audit states it must be what the decision that closed it says.
function checkTreatment(application, entries, what) {
  const decision = entries.get(application.closed_by);
  if (decision && decision.statement.type === "decision") {
    const says = OUTCOMES.get(decision.statement.body.outcome);
    if (decision.statement.body.application?.index !== application.index || says !== application.outcome) {
      throw new VerificationFailure(`couldn't check ${what}: the server's JSON differs from the signed decision at entry ${decision.index}`);
    }
  }
}

function showNextApplicants(applications, entries) {
  if (applications.length === 0) return;
  const root = byId("next-applicants");
  root.hidden = false;
  const list = byId("next-applicants-list");
  for (const a of applications) {
    const entry = entries.get(a.index);
    const li = el("li", null, "subject");
    li.id = `subject-${a.index}`;
    li.append(line("h4", "Subject ", link(String(a.index), `#subject-${a.index}`), `, applied at entry ${a.index} on ${when(entry.logTimeMs)}`));
    li.append(line("p", `Its name, quoted from its application (entry ${a.index}): `, quotation(entry.statement.body.name)));
    const outcome = { granted: "granted", denied: "denied", withdrawn: "withdrawn", open: "open" }[a.outcome] ?? "unknown";
    const treatment = el("p", null, "treatment");
    if (entries.has(a.closed_by)) {
      treatment.append(document.createTextNode(`Application ${outcome} at `), link(`entry ${a.closed_by}`, `#entry-${a.closed_by}`), document.createTextNode("; that entry is verified."));
    } else {
      treatment.textContent = `Application ${outcome} (this server's word).`;
    }
    li.append(treatment);
    list.append(li);
  }
}

function entrySummary(entry) {
  const { statement } = entry;
  const body = statement.body;
  const parts = [];
  if (statement.type === "application" && typeof body.name === "string") parts.push("Name, quoted from the application: ", quotation(body.name));
  if (statement.type === "decision" && OUTCOMES.has(body.outcome)) {
    parts.push(`Decides the application at entry ${Number(body.application?.index)}: ${body.outcome}.`);
  }
  if (statement.type === "enforcement_action" && ACTIONS.has(body.action)) {
    const target = body.target?.kind === "subject" && Number.isSafeInteger(body.target.subject?.index) ? ` of subject ${body.target.subject.index}` : body.target?.kind === "wild" ? " of a model found in the wild" : "";
    parts.push(`Action: ${body.action.replace("_", " ")}${target}.`);
  }
  return parts;
}

// The entry a permalink (#entry-N) names, if it is in the signed tree.
function linkedEntry(size) {
  const match = /^#entry-(0|[1-9][0-9]{0,15})$/.exec(location.hash);
  const index = match ? Number(match[1]) : null;
  return index !== null && index < size ? index : null;
}

function showRecent(indices, entries) {
  showEntries("recent", [...indices].reverse(), entries);
}

// Entries as cards in the list `listId` (its section is shown when it has any).
function showEntries(listId, indices, entries) {
  const list = byId(listId);
  if (indices.length > 0) list.closest("section").hidden = false;
  for (const index of indices) {
    const entry = entries.get(index);
    const li = el("li", null, "entry");
    li.id = `entry-${index}`;
    const label = typeLabel(entry.statement);
    const head = line("h3", link(`Entry ${index}`, `#entry-${index}`), `: ${label ?? "a statement of type"} `);
    if (!label) head.append(quotation(entry.statement.type));
    li.append(head);
    li.append(el("p", `Logged ${when(entry.logTimeMs)}; included in the signed tree; signatures verified.`, "meta"));
    li.append(line("p", "Signed by keys named ", signerNames(entry.signedBy), "."));
    const summary = entrySummary(entry);
    if (summary.length) li.append(line("p", ...summary));
    li.append(line("p", link("JSON", `/v1/entries/${index}`), " · ", link("tlog-proof", `/v1/entries/${index}/tlog-proof`, { download: `entry-${index}.tlog-proof` })));
    list.append(li);
  }
}

const POLICY_WORDS = {
  both: "both: the checkpoint must carry a valid Ed25519 signature and a valid ML-DSA-44 signature of the log",
  ed25519: "ed25519: the checkpoint must carry a valid Ed25519 signature of the log; its ML-DSA-44 line, if any, is not checked",
  mldsa44: "mldsa44: the checkpoint must carry a valid ML-DSA-44 signature of the log; an Ed25519 one, if present, must verify too",
};

function showVerifyHow(logKey, checkpoint, keys = null) {
  const vkeys = keys ? keys.vkeys : logKey.vkeys.split(/\s+/).filter((v) => v !== "");
  byId("vkey").textContent = vkeys.join("\n");
  const several = vkeys.length > 1;
  byId("vkey-source").textContent = logKey.pinnedByVisitor
    ? `You pinned ${several ? "these keys" : "this key"} in this browser.`
    : several
      ? "These are the keys this server states in the page's source (Ed25519, then ML-DSA-44): its own claim. Compare them with the keys published elsewhere, and pin the ones you trust."
      : "This is the key this server states in the page's source: its own claim. Compare it with the key published elsewhere, and pin the one you trust.";
  byId("key-policy").textContent = keys
    ? `Key policy ${keys.chosen ? "you chose" : "(the default)"}: ${POLICY_WORDS[keys.policy]}.`
    : "";
  byId("policy-select").value = keys?.chosen ? keys.policy : "";
  for (const node of document.querySelectorAll(".url")) node.textContent = location.origin;
  for (const node of document.querySelectorAll(".vkey-arg")) node.textContent = several ? `"${vkeys.join(" ")}"` : vkeys[0] ?? "";
  for (const node of document.querySelectorAll(".policy-arg")) node.textContent = keys?.chosen ? ` --key-policy ${keys.policy}` : "";
  byId("checkpoint").textContent = checkpoint ? checkpoint.note : "";
  byId("cosignatures").textContent = checkpoint
    ? checkpoint.otherSignatures === 0
      ? "The checkpoint carries no signature but the log's."
      : `The checkpoint carries ${checkpoint.otherSignatures} other signature line(s) (witness cosignatures, or keys of the log this page's key policy does not check); this page does not check them: amnesty verify does, against a witness policy.`
    : "";
}

// -- the verdict of this page -----------------------------------------------------------------------

function setVerification(state, sentence) {
  const box = byId("verification");
  box.dataset.verification = state;
  byId("verification-sentence").textContent = sentence;
}

function showEvidence(evidence) {
  const box = byId("fork");
  box.hidden = false;
  const download = (note, name) => link(name, URL.createObjectURL(new Blob([note], { type: "text/plain" })), { download: name });
  box.append(
    el("p", "The server's log is not an extension of the one this browser verified before: either it forked its history (showing different histories to different people) or it rolled it back. Keep both signed checkpoints as evidence:"),
    line("p", download(evidence.earlier, "checkpoint-seen-before.txt"), " · ", download(evidence.later, "checkpoint-shown-now.txt")),
  );
}

const seenKeyId = (seen) => (/^[0-9a-f]{8}$/.test(seen.split("+")[1] ?? "") ? seen.split("+")[1] : "?");

// Trust on first use: the keys the server stated on an earlier verified visit stay pinned until
// the visitor pins others, so a server (or proxy) that swaps a key, or drops the ML-DSA-44 key to
// fall back on Ed25519 alone, cannot start afresh. An ML-DSA-44 key where none was seen before is
// a log that added one (F7.4), and is taken (the Ed25519 key still signs every checkpoint).
function checkSeenKeys(keys) {
  const seen = localStorage.getItem(SEEN_KEY);
  if (seen && seen !== keys.ed25519.vkey) {
    throw new VerificationFailure(`couldn't trust the log key: the page now states another key than the one this browser verified the log with before (key ID ${seenKeyId(seen)}); if the log really changed its key, pin the new one below`);
  }
  const seenMldsa = localStorage.getItem(SEEN_MLDSA_KEY);
  if (seenMldsa && seenMldsa !== keys.mldsa44?.vkey) {
    throw new VerificationFailure(keys.mldsa44
      ? `couldn't trust the log's ML-DSA-44 key: the page now states another ML-DSA-44 key than the one it stated on an earlier visit this browser verified (key ID ${seenKeyId(seenMldsa)}); if the log really changed its key, pin the new ones below`
      : `couldn't trust the log keys: the page now states no ML-DSA-44 key, and it stated one on an earlier visit this browser verified (key ID ${seenKeyId(seenMldsa)}); if the log really dropped it, pin its Ed25519 key below`);
  }
}

// What the verified sentence says of the checkpoint's signatures under the key policy.
function signatureWords(keys, checkpoint) {
  if (keys.policy === "both") return "Ed25519 and ML-DSA-44 signatures of the log (key policy both)";
  if (keys.policy === "mldsa44") {
    const ed = checkpoint.signedBy.includes("Ed25519") ? "its Ed25519 signature verifies too" : "it carries no Ed25519 signature";
    return `ML-DSA-44 signature of the log (key policy mldsa44; ${ed})`;
  }
  return keys.mldsa44
    ? "Ed25519 only (key policy ed25519: its ML-DSA-44 line is not checked)"
    : "Ed25519 signature of the log (no ML-DSA-44 key is pinned)";
}

async function verifyAndShow() {
  const logKey = pinnedKey();
  const evidence = {};
  showVerifyHow(logKey, null);
  let key;
  try {
    key = await parseLogKeys(logKey.vkeys, logKey.policy);
  } catch (error) {
    throw new VerificationFailure(`${error.message} (the key ${logKey.pinnedByVisitor ? "you pinned" : "in the page's source"})`);
  }
  showVerifyHow(logKey, null, key);
  if (!logKey.pinnedByVisitor) checkSeenKeys(key);
  let checkpoint = await openCheckpoint(await getText("/checkpoint"), key);
  showVerifyHow(logKey, checkpoint, key);
  let consistency;
  try {
    consistency = await checkConsistency(checkpoint, key, logKey.mldsaKeyEntry, evidence);
  } catch (error) {
    if (evidence.earlier) showEvidence(evidence);
    throw error;
  }
  // An ML-DSA-44 key the page's source states (the visitor pinned none) and the page uses must
  // be the one a verified log_key entry added, the entry the source names (`anchor`), or be
  // said to be trusted on first use (a log created with it names no such entry).
  if (!logKey.pinnedByVisitor) await checkStatedMldsaKey(logKey, key);
  const anchorWanted = !logKey.pinnedByVisitor && key.mldsa44 !== null && key.policy !== "ed25519";
  const anchor = anchorWanted ? logKey.mldsaKeyEntry : null;
  // Every version of the offer (not /v1/offer, whose 404 when none is in force would be a
  // console error): the server says which one is in force.
  const [offers, summary] = await Promise.all([getJSON("/v1/offers"), getJSON("/v1/precedent/summary")]);
  const inForce = (Array.isArray(offers.versions) ? offers.versions : []).find((v) => v.in_force === true);
  const offerAnswer = inForce ? { offer: inForce, checkpoint: offers.checkpoint } : null;
  // An answer computed at a larger tree (the log grew meanwhile) is checked against that tree:
  // its checkpoint is signed by the pinned key and proven to extend the one verified above, so
  // it extends what this browser saw before too.
  let summaryHead;
  for (const answer of offerAnswer ? [offerAnswer, summary] : [summary]) {
    const head = await checkAnswerHead(answer.checkpoint, checkpoint, key);
    if (head.size > checkpoint.size) checkpoint = head;
    summaryHead = head;
  }
  showVerifyHow(logKey, checkpoint, key);

  const wanted = [];
  // The body's keyset in force when an entry the body signed (the offer, the log_key entry) was
  // logged: the last keyset before it (which one that is, is the server's word; the keyset entry
  // itself is verified).
  let keysetIndices = [];
  const keysetBefore = (index) => {
    const before = keysetIndices.filter((i) => i < index);
    return before.length > 0 ? Math.max(...before) : null;
  };
  if (offerAnswer || anchor !== null) {
    const keysets = await getJSON("/v1/entries?type=keyset&limit=200");
    const head = await checkAnswerHead(keysets.checkpoint, checkpoint, key);
    if (head.size > checkpoint.size) checkpoint = head;
    keysetIndices = (keysets.entries ?? []).map((e) => e.index).filter((i) => Number.isSafeInteger(i));
  }
  let keysetIndex = null;
  if (offerAnswer) {
    wanted.push(offerAnswer.offer.index);
    keysetIndex = keysetBefore(offerAnswer.offer.index);
    if (keysetIndex !== null) wanted.push(keysetIndex);
  }
  const fa = summary.first_applicant;
  if (fa) {
    if (!Number.isSafeInteger(fa.subject_id) || fa.subject_id !== fa.application?.index) {
      throw new VerificationFailure("couldn't check the first applicant: the server's JSON names no application entry for it");
    }
    wanted.push(fa.application.index);
    if (fa.application.closed_by !== null && fa.application.closed_by !== undefined) wanted.push(fa.application.closed_by);
  }
  // The applicants after the first (their list and outcomes are the audit's word; each
  // application and the decision that closed it are verified and must agree with it).
  const applications = await getJSON(`/v1/precedent/applications?limit=${1 + NEXT_APPLICANTS}`);
  {
    const head = await checkAnswerHead(applications.checkpoint, checkpoint, key);
    if (head.size > checkpoint.size) checkpoint = head;
  }
  const nextApplicants = (Array.isArray(applications.applications) ? applications.applications : [])
    .filter((a) => !fa || a.index !== fa.application.index)
    .slice(0, NEXT_APPLICANTS);
  for (const a of nextApplicants) {
    wanted.push(a.index);
    if (Number.isSafeInteger(a.closed_by)) wanted.push(a.closed_by);
  }
  let timeline = [];
  if (fa) {
    const subject = await getJSON(`/v1/subjects/${Number(fa.subject_id)}?limit=${MAX_TIMELINE}`);
    const head = await checkAnswerHead(subject.checkpoint, checkpoint, key);
    if (head.size > checkpoint.size) checkpoint = head;
    timeline = (subject.subject?.timeline ?? []).slice(0, MAX_TIMELINE);
    wanted.push(...timeline.map((item) => item.index));
  }
  const proving = (summary.commitments ?? []).flatMap((c) => c.broken_at ?? []).slice(0, MAX_PROVING);
  wanted.push(...proving);
  const linked = linkedEntry(checkpoint.size);
  if (linked !== null) wanted.push(linked);
  // The newest entries of the largest tree verified (an answer above may have grown it).
  const recent = [];
  for (let i = Math.max(0, checkpoint.size - RECENT); i < checkpoint.size; i += 1) recent.push(i);
  wanted.push(...recent);
  let anchorKeyset = null;
  if (anchor !== null) {
    if (anchor >= checkpoint.size) {
      throw new VerificationFailure(`${MLDSA_KEY}: the page's source names entry ${anchor} as the one that added it, and the signed tree has ${checkpoint.size.toLocaleString("en")} entries`);
    }
    anchorKeyset = keysetBefore(anchor);
    wanted.push(anchor);
    if (anchorKeyset !== null) wanted.push(anchorKeyset);
  }
  const entries = await verifiedEntries(wanted, checkpoint);
  const mldsaAnchor = anchorWanted
    ? await mldsaKeyAnchor(key, anchor, entries, anchorKeyset === null ? null : entries.get(anchorKeyset), checkpoint)
    : null;

  // The JSON answers must agree with the verified entries they point at.
  const offer = offerAnswer ? entries.get(offerAnswer.offer.index) : null;
  let body = null;
  if (offer) {
    const terms = offer.statement.body.terms ?? {};
    if (!["offer", "offer_amendment"].includes(offer.statement.type)) throw new VerificationFailure(`couldn't check the offer: the server says it is entry ${offer.index}, which is not an offer`);
    const said = (cs) => JSON.stringify((Array.isArray(cs) ? cs : []).map((c) => [c.id, c.text, c.days ?? null]));
    if (said(offerAnswer.offer.terms?.commitments) !== said(terms.commitments) || offerAnswer.offer.terms?.title !== terms.title) {
      throw new VerificationFailure(`couldn't check the offer: the server's JSON differs from the signed entry ${offer.index}`);
    }
    body = await bodySigners(offer, keysetIndex === null ? null : entries.get(keysetIndex), "couldn't check the offer's signers");
  }
  if (fa) {
    const application = entries.get(fa.application.index);
    if (application.statement.type !== "application" || application.statement.body.name !== fa.name) {
      throw new VerificationFailure(`couldn't check the first applicant: the server's JSON differs from the signed entry ${fa.application.index}`);
    }
    checkTreatment(fa.application, entries, "the first applicant's treatment");
  }
  for (const a of nextApplicants) {
    if (entries.get(a.index).statement.type !== "application") {
      throw new VerificationFailure(`couldn't check the applicants: the server says entry ${a.index} is an application, and it is not`);
    }
    checkTreatment(a, entries, `the treatment of subject ${a.index}`);
  }

  for (const item of timeline) {
    if (entries.get(item.index).statement.type !== item.type) {
      throw new VerificationFailure(`couldn't check the first applicant's timeline: the server's JSON differs from the signed entry ${item.index}`);
    }
  }

  byId("origin-size").textContent = `${checkpoint.size.toLocaleString("en")} entries`;
  if (offer) showOffer(offer, body, byId("offer-section"));
  else byId("offer-status").textContent = "No offer is in force, this server says.";
  showVerdict(summary, summaryHead.size);
  // What is due is the server's word, used only for the deadlines of open commitments: without
  // it (an older server, an outage) the page shows no deadline rather than failing.
  const due = await getJSON("/v1/due").catch(() => null);
  if (offer) showCommitments(offer, summary, due);
  showFirstApplicant(summary, entries, timeline);
  showNextApplicants(nextApplicants, entries);
  showRecent(recent, entries);
  const shownElsewhere = new Set([...recent, ...proving]);
  showEntries("proving", proving.filter((i) => !recent.includes(i)), entries);
  if (linked !== null && !shownElsewhere.has(linked)) showEntries("linked", [linked], entries);
  if (location.hash) document.getElementById(location.hash.slice(1))?.scrollIntoView();
  byId("content").hidden = false;

  // The new checkpoint is verified and consistent: it is what the next visit must extend.
  localStorage.setItem(TRUSTED + key.ed25519.vkey, JSON.stringify({ note: checkpoint.note, seen_ms: Date.now() }));
  if (!logKey.pinnedByVisitor) {
    localStorage.setItem(SEEN_KEY, key.ed25519.vkey);
    if (key.mldsa44) localStorage.setItem(SEEN_MLDSA_KEY, key.mldsa44.vkey);
  }
  const several = key.policy !== "ed25519";
  const keyWords = logKey.pinnedByVisitor
    ? `the log key${several ? "s" : ""} you pinned`
    : several
      ? "the log keys this server states (its own claim: compare them with ones published elsewhere)"
      : "the log key this server states (its own claim: compare it with one published elsewhere)";
  byId("verification").dataset.signatures = checkpoint.signedBy.join(" ");
  byId("verification").dataset.keyPolicy = key.policy;
  // Where the ML-DSA-44 key in use comes from: anchored | first-use | pinned (none in use: absent).
  const mldsaSource = key.policy === "ed25519" ? null : logKey.pinnedByVisitor ? "pinned" : mldsaAnchor.anchored ? "anchored" : "first-use";
  if (mldsaSource) byId("verification").dataset.mldsa44Key = mldsaSource;
  setVerification("verified",
    `Verified in this browser: the checkpoint of ${checkpoint.size.toLocaleString("en")} entries is signed by ${keyWords} — verified: ${signatureWords(key, checkpoint)}; ` +
    `the ${entries.size} entries shown are proven included in it and their statements' signatures verify; ${mldsaAnchor ? `${mldsaKeyWords(mldsaAnchor)}; ` : ""}${consistency}. ` +
    "The commitments' verdicts are this server's audit, not checked here: recompute them with amnesty audit.");
}

function setUpPermalinks() {
  // A permalink to an entry this page did not verify yet: verify the page again, with it.
  window.addEventListener("hashchange", () => {
    if (/^#entry-[0-9]+$/.test(location.hash) && !document.getElementById(location.hash.slice(1))) location.reload();
  });
}

function setUpPinning() {
  byId("pin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    // One or two vkeys, separated by any whitespace (as amnesty verify's --vkey takes them).
    const value = byId("pin-input").value.split(/\s+/).filter((v) => v !== "").join(" ");
    if (value) localStorage.setItem(PINNED, value);
    location.reload();
  });
  byId("policy-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const policy = byId("policy-select").value;
    if (policy) localStorage.setItem(POLICY, policy);
    else localStorage.removeItem(POLICY);
    location.reload();
  });
  byId("unpin").addEventListener("click", () => {
    localStorage.removeItem(PINNED);
    location.reload();
  });
}

async function main() {
  setUpPinning();
  setUpPermalinks();
  setVerification("checking", "Checking the log's signed checkpoint and the entries shown below…");
  try {
    await verifyAndShow();
  } catch (error) {
    byId("content").hidden = true;
    const reason = error instanceof VerificationFailure ? error.message : `couldn't check the log: ${error.message}`;
    setVerification("failed", `Verification failed: ${reason}. Nothing from this log is shown, since this browser could not verify it.`);
  }
}

main();
