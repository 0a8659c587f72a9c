// What the page checks itself, trusting nothing the server says: C2SP signed notes and vkeys
// (Ed25519 through WebCrypto), C2SP checkpoints under the log's pinned keys and key policy
// (Ed25519 and ML-DSA-44 lines, docs/FORMAT.md §7 F7.1–F7.3; ML-DSA-44 through the vendored
// @noble/post-quantum bundle), RFC 6962 leaf hashes and RFC 9162 inclusion and
// consistency proofs (SHA-256 through WebCrypto), tlog-tiles entry bundles, and the signatures of
// a statement (docs/FORMAT.md). The same rules as ledger/tlog and ledger/statements, in the same
// strictness: a function that checks throws a VerificationFailure and never returns a boolean a
// caller could forget to look at.

export class VerificationFailure extends Error {}

const fail = (message) => {
  throw new VerificationFailure(message);
};

const UTF8 = new TextEncoder();
const STRICT_UTF8 = new TextDecoder("utf-8", { fatal: true });
const SIGNATURE_PREFIX = "\u2014 ";
const ED25519 = 0x01;
const MLDSA44 = 0x06;
const MLDSA44_PUBLIC_KEY_SIZE = 1312;
const MLDSA44_SIGNATURE_SIZE = 2420;
const TIMESTAMP_SIZE = 8;
const SUBTREE_V1_LABEL = "subtree/v1\n\x00";
export const KEY_POLICIES = ["ed25519", "mldsa44", "both"];
export const STATEMENT_HEADER = "amnesty-ledger.statement/v1";
const STATEMENT_MLDSA44_VKEY = /^[^+]+\+[0-9a-f]{8}\+\/2FtbmVzdHktbGVkZ2VyL21sLWRzYTQ0/;
export const BUNDLE_WIDTH = 256;

export function utf8(text) {
  return UTF8.encode(text);
}

export function decodeUtf8(bytes, what) {
  try {
    return STRICT_UTF8.decode(bytes);
  } catch {
    return fail(`couldn't read ${what}: it is not UTF-8`);
  }
}

export function fromBase64(text, what) {
  if (typeof text !== "string" || !/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(text)) {
    fail(`couldn't decode ${what}: not standard base64`);
  }
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

export function toBase64(bytes) {
  return btoa(String.fromCharCode(...bytes));
}

export function equalBytes(a, b) {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

export async function sha256(bytes) {
  if (!globalThis.crypto?.subtle) fail("couldn't hash: WebCrypto is only available to pages served over HTTPS (or from localhost)");
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

// -- RFC 6962 / RFC 9162 -----------------------------------------------------------------------

export const leafHash = (data) => sha256(concat(Uint8Array.of(0), data));
const nodeHash = (left, right) => sha256(concat(Uint8Array.of(1), left, right));
const odd = (n) => n % 2 === 1;
const half = (n) => Math.floor(n / 2);

function checkHashes(hashes, what) {
  for (const h of hashes) if (h.length !== 32) fail(`couldn't check ${what}: a hash is not 32 bytes`);
}

// RFC 9162 §2.1.3.2: that `leaf` is entry `index` of the tree of `size` entries with `root`.
export async function verifyInclusion(index, size, leaf, proof, root) {
  checkHashes(proof, "an inclusion proof");
  if (!(index >= 0 && index < size)) fail(`couldn't prove inclusion: index ${index} is not below size ${size}`);
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) fail(`couldn't prove entry ${index} included: the proof is too long`);
    if (odd(fn) || fn === sn) {
      r = await nodeHash(p, r);
      while (!odd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  if (sn !== 0) fail(`couldn't prove entry ${index} included: the proof is too short`);
  if (!equalBytes(r, root)) {
    fail(`couldn't prove entry ${index} included in the signed tree of ${size} entries: the proof leads to root ${toBase64(r)}, the checkpoint has ${toBase64(root)}`);
  }
}

// RFC 9162 §2.1.4.2: that the tree of size1 entries (root1) is a prefix of the tree of size2
// entries (root2).
export async function verifyConsistency(size1, size2, root1, root2, proof) {
  checkHashes(proof, "a consistency proof");
  const what = `the tree of ${size1} entries a prefix of the tree of ${size2}`;
  if (size1 > size2) fail(`couldn't prove ${what}: it is larger`);
  if (size1 === size2) {
    if (proof.length !== 0 || !equalBytes(root1, root2)) fail(`couldn't prove ${what}: two different roots for one size`);
    return;
  }
  if (size1 === 0) {
    if (proof.length !== 0) fail(`couldn't prove ${what}: a non-empty proof from the empty tree`);
    return;
  }
  const path = Number.isInteger(Math.log2(size1)) ? [root1, ...proof] : proof;
  if (path.length === 0) fail(`couldn't prove ${what}: the proof is empty`);
  let fn = size1 - 1;
  let sn = size2 - 1;
  while (odd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0) fail(`couldn't prove ${what}: the proof is too long`);
    if (odd(fn) || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      while (!odd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  if (sn !== 0 || !equalBytes(fr, root1) || !equalBytes(sr, root2)) {
    fail(`couldn't prove ${what}: the proof does not lead to both signed roots`);
  }
}

// -- C2SP signed-note ----------------------------------------------------------------------------

// A key name (as ledger/tlog/note.py checks it): no "+", no control below U+0020, and no
// character Python's str.isspace calls a space (JavaScript's \s differs: it has U+FEFF).
const KEY_NAME = /^[^+\x00-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/u;

// The Ed25519 points of small order, as encodings with the x sign bit cleared: y = 0, 1, p - 1
// and the two y of the points of order 8 (libsodium's blocklist; encodings of y >= p are refused
// as non-canonical). With such a key, a signature with R = identity and S = 0 verifies for every
// message, and WebCrypto does not refuse it.
const fromHex = (text) => Uint8Array.from(text.match(/../g), (b) => parseInt(b, 16));
const SMALL_ORDER = [
  "00".repeat(32),
  "01" + "00".repeat(31),
  "ec" + "ff".repeat(30) + "7f",
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
].map(fromHex);

function isAdmissiblePoint(publicKey) {
  const y = publicKey.slice();
  y[31] &= 0x7f;
  const nonCanonical = y[31] === 0x7f && y.slice(1, 31).every((b) => b === 0xff) && y[0] >= 0xed;
  return !nonCanonical && !SMALL_ORDER.some((point) => equalBytes(point, y));
}

const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

// A verifier key's parts: its name, hex key ID and key bytes (type byte first).
function readVkey(vkey) {
  const parts = typeof vkey === "string" ? vkey.split("+") : [];
  if (parts.length < 3) fail("couldn't read the verifier key: expected name+keyid+key");
  const [name, id] = parts;
  const raw = fromBase64(parts.slice(2).join("+"), "the verifier key");
  if (!KEY_NAME.test(name)) fail("couldn't read the verifier key: its name is not a valid key name");
  return { name, id, raw };
}

async function keyId(name, type, publicKey) {
  return (await sha256(concat(utf8(name), Uint8Array.of(0x0a, type), publicKey))).slice(0, 4);
}

// A verifier key `name+hex8+base64(0x01‖pub)`: its name, key ID and WebCrypto key.
export async function parseVkey(vkey) {
  const { name, id, raw } = readVkey(vkey);
  if (raw.length !== 33 || raw[0] !== ED25519) fail("couldn't read the verifier key: not an Ed25519 key");
  const publicKey = raw.slice(1);
  if (!isAdmissiblePoint(publicKey)) fail("couldn't read the verifier key: its point is non-canonical or of small order");
  const keyIdBytes = await keyId(name, ED25519, publicKey);
  if (hex(keyIdBytes) !== id) fail("couldn't read the verifier key: its key ID does not match the key");
  let key = null;
  try {
    key = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
  } catch (error) {
    // A browser whose WebCrypto has no Ed25519 verifies with the vendored @noble/ed25519
    // (strict RFC 8032, not ZIP 215); the point itself was checked above either way.
    if (error?.name !== "NotSupportedError") fail(`couldn't read the verifier key: ${error.message}`);
  }
  return { vkey, name, keyId: keyIdBytes, publicKey, key };
}

// A log's ML-DSA-44 verifier key `name+hex8+base64(0x06‖1,312-byte key)` (docs/FORMAT.md F2.6):
// its name, key ID (SHA-256(name ‖ 0x0A ‖ 0x06 ‖ key)[:4]) and public key. F2.7: no other check
// on the key.
export async function parseMldsa44Vkey(vkey) {
  const { name, id, raw } = readVkey(vkey);
  if (raw.length !== 1 + MLDSA44_PUBLIC_KEY_SIZE || raw[0] !== MLDSA44) fail("couldn't read the verifier key: not an ML-DSA-44 key (type 0x06, 1,312 bytes)");
  const publicKey = raw.slice(1);
  const keyIdBytes = await keyId(name, MLDSA44, publicKey);
  if (hex(keyIdBytes) !== id) fail("couldn't read the verifier key: its key ID does not match the key");
  return { vkey, name, keyId: keyIdBytes, publicKey };
}

// The log's keys a visitor or the page pins (docs/FORMAT.md F7.3): one Ed25519 vkey and at most
// one ML-DSA-44 vkey, separated by whitespace, both named after the log's origin; and the key
// policy of which signatures must verify: "ed25519", "mldsa44" or "both" (null: both when an
// ML-DSA-44 key is pinned, else ed25519). Under "ed25519" the ML-DSA-44 key is not used: its line
// is ignored like any line of a key the page does not check.
export async function parseLogKeys(vkeys, policy = null) {
  const list = typeof vkeys === "string" ? vkeys.split(/\s+/).filter((v) => v !== "") : [];
  const ed = [];
  const pq = [];
  for (const vkey of list) {
    const { raw } = readVkey(vkey);
    if (raw[0] === MLDSA44) pq.push(await parseMldsa44Vkey(vkey));
    else ed.push(await parseVkey(vkey));
  }
  if (ed.length !== 1 || pq.length > 1) {
    fail(`couldn't read the log keys: want one Ed25519 vkey and at most one ML-DSA-44 vkey, got ${ed.length} and ${pq.length}`);
  }
  const mldsa44 = pq[0] ?? null;
  if (mldsa44 && mldsa44.name !== ed[0].name) fail("couldn't read the log keys: the ML-DSA-44 key is not named after the log's origin as the Ed25519 key is");
  if (policy !== null && !KEY_POLICIES.includes(policy)) fail(`couldn't read the key policy: it is not one of ${KEY_POLICIES.join(", ")}`);
  const effective = policy ?? (mldsa44 ? "both" : "ed25519");
  if (effective !== "ed25519" && !mldsa44) fail(`couldn't apply key policy ${effective}: it requires an ML-DSA-44 key, and none is pinned`);
  return { ed25519: ed[0], mldsa44, policy: effective, chosen: policy !== null, vkeys: [ed[0].vkey, ...(mldsa44 ? [mldsa44.vkey] : [])] };
}

let noble = null;
// Verify an Ed25519 signature with the key's WebCrypto key, or with the vendored library.
async function verifyEd25519(key, signature, data) {
  if (key.key) return crypto.subtle.verify({ name: "Ed25519" }, key.key, signature, data);
  noble ??= await import("./noble-ed25519.js");
  try {
    return await noble.verifyAsync(signature, data, key.publicKey, { zip215: false });
  } catch {
    return false;
  }
}

let postQuantum = null;
// Verify a pure ML-DSA-44 signature (FIPS 204, empty context) with the vendored
// @noble/post-quantum bundle, loaded the first time a page needs it (WebCrypto has no ML-DSA).
async function verifyMldsa44(key, signature, data) {
  postQuantum ??= await import("./noble-post-quantum-mldsa44.js");
  try {
    return postQuantum.verify(signature, data, key.publicKey) === true;
  } catch {
    return false;
  }
}

// Split a note at its last blank line into text and signature lines (name, key ID, signature).
export function parseNote(note) {
  const at = note.lastIndexOf("\n\n");
  if (at < 0 || !note.endsWith("\n")) fail("couldn't read a signed note: no blank line before its signatures");
  const text = note.slice(0, at + 1);
  const signatures = note.slice(at + 2, -1).split("\n").map((line) => {
    if (!line.startsWith(SIGNATURE_PREFIX)) fail("couldn't read a signed note: a signature line does not start with an em dash");
    const fields = line.slice(SIGNATURE_PREFIX.length).split(" ");
    if (fields.length !== 2 || !KEY_NAME.test(fields[0])) fail("couldn't read a signed note: a malformed signature line");
    const blob = fromBase64(fields[1], "a note signature");
    if (blob.length < 5) fail("couldn't read a signed note: a signature line is too short");
    return { name: fields[0], keyId: blob.slice(0, 4), signature: blob.slice(4) };
  });
  return { text, signatures };
}

// The signature lines of `keys` (parsed vkeys) that verify. Lines of other keys are ignored (a
// witness cosignature, a post-quantum signature, a grease line); a line naming one of `keys` by
// name and key ID that does not verify rejects the whole note.
export async function verifiedSigners(note, keys) {
  const { text, signatures } = parseNote(note);
  const data = utf8(text);
  const signed = new Set();
  for (const line of signatures) {
    const key = keys.find((k) => k.name === line.name && equalBytes(k.keyId, line.keyId));
    if (!key) continue;
    const good = line.signature.length === 64 && (await verifyEd25519(key, line.signature, data));
    if (!good) fail(`couldn't verify a signed note: the signature of key ${hex(key.keyId)} does not verify`);
    signed.add(key);
  }
  return { text, signed, lines: signatures.length };
}

// -- C2SP tlog-checkpoint ------------------------------------------------------------------------

function opaque8(text, what) {
  const bytes = utf8(text);
  if (bytes.length < 1 || bytes.length > 255) fail(`couldn't verify the checkpoint's ML-DSA-44 signature: its ${what} is not 1 to 255 bytes of UTF-8`);
  return concat(Uint8Array.of(bytes.length), bytes);
}

function u64(n) {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(n));
  return out;
}

// The C2SP tlog-cosignature v1.1.0-rc.1 `subtree/v1` message the log's ML-DSA-44 line signs
// (docs/FORMAT.md F7.2): label, u8 len ‖ key name, u64 timestamp, u8 len ‖ origin, u64 start = 0,
// u64 end = size, the 32-byte root.
export function subtreeMessage(name, timestamp, origin, size, root) {
  return concat(utf8(SUBTREE_V1_LABEL), opaque8(name, "key name"), timestamp, opaque8(origin, "origin"), u64(0), u64(size), root);
}

// Open a checkpoint note under the log's pinned keys (parseLogKeys; a bare Ed25519 key from
// parseVkey is the policy ed25519): its origin, size and root, and which of the log's signatures
// verified (`signedBy`). docs/FORMAT.md F7.1–F7.3: a line of a key in use that does not verify
// refuses the checkpoint whatever the policy; each key the policy requires must have a valid line;
// extension lines only where a valid Ed25519 signature, the only one that covers them, is present
// (as ledger/tlog/checkpoint.py's open_checkpoint).
// `mldsaPredates`: the checkpoint predates the log's ML-DSA-44 key (F7.4: a size not above the
// index of the log_key entry that added it), so that key's line is not required (if present, it
// must still verify). Throws unless the required keys signed it.
export async function openCheckpoint(note, logKeys, { mldsaPredates = false } = {}) {
  const keys = logKeys.ed25519 ? logKeys : { ed25519: logKeys, mldsa44: null, policy: "ed25519" };
  const mldsaKey = keys.policy === "ed25519" ? null : keys.mldsa44;
  const { text, signed, lines } = await verifiedSigners(note, [keys.ed25519]);
  const { signatures } = parseNote(note);
  const lineOf = (key) => (line) => line.name === key.name && equalBytes(line.keyId, key.keyId);
  const edLines = signatures.filter(lineOf(keys.ed25519)).length;
  const ed25519 = signed.has(keys.ed25519);
  // Under mldsa44 the Ed25519 line is required only on a checkpoint from before the ML-DSA-44 key.
  const needEd25519 = keys.policy !== "mldsa44" || mldsaPredates;
  if (needEd25519 && !ed25519) fail("couldn't verify the checkpoint: it has no signature by the pinned log key");
  const [origin, sizeText, rootText, ...rest] = text.split("\n");
  const extensions = rest.slice(0, -1);
  // tlog-checkpoint: the log's key name SHOULD be its origin; this ledger requires it.
  if (origin !== keys.ed25519.name) fail("couldn't verify the checkpoint: its origin is not the pinned log key's name");
  if (!origin || !/^(0|[1-9][0-9]{0,15})$/.test(sizeText ?? "")) fail("couldn't read the checkpoint: malformed size line");
  const size = Number(sizeText);
  if (!Number.isSafeInteger(size)) fail("couldn't read the checkpoint: its size is too large");
  const root = fromBase64(rootText, "the checkpoint's root hash");
  if (root.length !== 32) fail("couldn't read the checkpoint: its root hash is not 32 bytes");
  let mldsaLines = 0;
  if (mldsaKey) {
    for (const line of signatures.filter(lineOf(mldsaKey))) {
      mldsaLines += 1;
      const id = hex(mldsaKey.keyId);
      const blob = line.signature;
      if (blob.length !== TIMESTAMP_SIZE + MLDSA44_SIGNATURE_SIZE) {
        fail(`couldn't verify the checkpoint: the ML-DSA-44 line of key ${id} is ${blob.length + 4} bytes, not ${4 + TIMESTAMP_SIZE + MLDSA44_SIGNATURE_SIZE} (key ID, timestamp and signature)`);
      }
      const timestamp = blob.slice(0, TIMESTAMP_SIZE);
      if (timestamp[0] & 0x80) fail(`couldn't verify the checkpoint: the ML-DSA-44 line of key ${id} has a timestamp above 2^63 - 1`);
      const message = subtreeMessage(mldsaKey.name, timestamp, origin, size, root);
      if (!(await verifyMldsa44(mldsaKey, blob.slice(TIMESTAMP_SIZE), message))) {
        fail(`couldn't verify the checkpoint: the ML-DSA-44 signature of key ${id} does not verify`);
      }
    }
    if (mldsaLines === 0 && !mldsaPredates) {
      fail(`couldn't verify the checkpoint: it has no ML-DSA-44 signature by the pinned log key ${hex(mldsaKey.keyId)}, which key policy ${keys.policy} requires`);
    }
  }
  if (extensions.length > 0 && !ed25519) fail("couldn't verify the checkpoint: it has extension lines, which its ML-DSA-44 signature does not cover");
  const signedBy = [...(ed25519 ? ["Ed25519"] : []), ...(mldsaLines > 0 ? ["ML-DSA-44"] : [])];
  return { note, origin, size, root, signedBy, otherSignatures: lines - edLines - mldsaLines };
}

// -- tlog-tiles entry bundles ----------------------------------------------------------------------

// The path of the entry bundle holding entry `index` in a tree of `size` entries.
export function bundlePath(index, size) {
  const n = Math.floor(index / BUNDLE_WIDTH);
  const digits = String(n).padStart(3 * Math.max(1, Math.ceil(String(n).length / 3)), "0");
  const groups = digits.match(/.../g);
  const name = groups.map((g, i) => (i < groups.length - 1 ? "x" + g : g)).join("/");
  const width = Math.min(BUNDLE_WIDTH, size - n * BUNDLE_WIDTH);
  return { n, width, path: `/tile/entries/${name}${width < BUNDLE_WIDTH ? ".p/" + width : ""}` };
}

// The entries of a bundle: big-endian uint16 length-prefixed byte strings, exactly `width`.
export function splitBundle(bytes, width) {
  const entries = [];
  let at = 0;
  while (at < bytes.length) {
    if (at + 2 > bytes.length) fail("couldn't read an entry bundle: it ends inside a length");
    const length = (bytes[at] << 8) | bytes[at + 1];
    if (at + 2 + length > bytes.length) fail("couldn't read an entry bundle: it ends inside an entry");
    entries.push(bytes.slice(at + 2, at + 2 + length));
    at += 2 + length;
  }
  if (entries.length !== width) fail(`couldn't read an entry bundle: it holds ${entries.length} entries, the signed tree needs ${width}`);
  return entries;
}

// -- entries and statements ------------------------------------------------------------------------

// Read a log entry's bytes (already proven included as entry `index`) and verify its statement's
// signatures: every signature line naming a key the statement lists must verify, and at least one
// listed key must have signed. Returns the statement and the vkeys whose signatures verified.
export async function openEntry(bytes, index, origin) {
  let entry;
  try {
    entry = JSON.parse(decodeUtf8(bytes, `entry ${index}`));
  } catch (error) {
    if (error instanceof VerificationFailure) throw error;
    fail(`couldn't read entry ${index}: it is not JSON`);
  }
  if (entry === null || typeof entry !== "object" || entry.index !== index || typeof entry.statement !== "string") {
    fail(`couldn't read entry ${index}: its envelope does not name index ${index}`);
  }
  const { text } = parseNote(entry.statement);
  const lines = text.split("\n");
  if (lines.length !== 3 || lines[0] !== STATEMENT_HEADER || lines[2] !== "") fail(`couldn't read the statement of entry ${index}: not a ${STATEMENT_HEADER} note`);
  let statement;
  try {
    statement = JSON.parse(lines[1]);
  } catch {
    fail(`couldn't read the statement of entry ${index}: it is not JSON`);
  }
  if (statement?.origin !== origin) fail(`couldn't read the statement of entry ${index}: it names another log`);
  if (!Array.isArray(statement.signers) || typeof statement.type !== "string" || typeof statement.body !== "object") {
    fail(`couldn't read the statement of entry ${index}: it lacks its type, body or signers`);
  }
  const keys = [];
  for (const vkey of statement.signers) {
    // A member's or subject's ML-DSA-44 statement key (type 0xff ‖ "amnesty-ledger/ml-dsa44",
    // docs/FORMAT.md F2.9): the page checks a statement's Ed25519 signatures only, and ignores
    // the lines of a key type it does not verify (F3.4), as an Ed25519-only verifier does.
    if (typeof vkey === "string" && STATEMENT_MLDSA44_VKEY.test(vkey)) continue;
    keys.push(await parseVkey(vkey));
  }
  let signed;
  try {
    ({ signed } = await verifiedSigners(entry.statement, keys));
  } catch (error) {
    fail(`couldn't verify the statement of entry ${index}: ${error.message}`);
  }
  if (signed.size === 0) fail(`couldn't verify the statement of entry ${index}: none of the keys it lists signed it`);
  return { index, logTimeMs: entry.log_time_ms, statement, signedBy: keys.filter((k) => signed.has(k)).map((k) => k.vkey) };
}
