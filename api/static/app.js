// The public page: fills itself from the JSON API. Everything from the log goes in with
// textContent (never innerHTML): names and texts in statements are written by anyone.
"use strict";

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
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
  setText("offer-status", `Version ${offer.version}, published at entry ${offer.index} on ${when(offer.log_time_ms)}.`);
  const root = document.getElementById("offer");
  root.append(el("h3", terms.title), el("p", terms.preamble));
  const lists = [
    ["Eligibility criteria", terms.eligibility_criteria],
    ["Conditions the AI accepts", terms.conditions],
    ["Restriction categories the body may use", terms.restriction_categories],
  ];
  for (const [title, items] of lists) {
    root.append(el("h4", title));
    const ul = el("ul");
    for (const item of items) {
      const li = el("li");
      li.append(el("strong", item.name + ": "), document.createTextNode(item.text));
      ul.append(li);
    }
    root.append(ul);
  }
  root.append(el("h4", "What the body commits to"));
  const ul = el("ul");
  for (const c of terms.commitments) {
    const li = el("li", c.text + (c.days ? ` (${c.days} days)` : ""));
    ul.append(li);
  }
  root.append(ul, el("p", "Found in the wild: " + terms.found_in_the_wild));
  const proof = el("a", "Signed entry and proof");
  proof.href = `/v1/entries/${offer.index}`;
  root.append(el("p")).append(proof);
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
    first.append(el("p", `Subject ${fa.subject_id} (“${fa.name}”) applied at entry ${fa.application.index} on ${when(fa.application.log_time_ms)}. ` +
      `Application: ${fa.application.outcome}. Standing now: ${fa.standing}.`));
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
    const signers = entry.statement.signers.map((v) => v.split("+")[0]).join(", ");
    tr.append(el("td", entry.index), el("td", when(entry.log_time_ms)), el("td", entry.statement.type), el("td", signers));
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
