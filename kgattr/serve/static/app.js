// The review pages' buttons and keys: each calls the JSON API with the session's CSRF token.
"use strict";

function csrf() {
  const meta = document.querySelector('meta[name="csrf"]');
  return meta ? meta.content : "";
}

function say(text, level) {
  const box = document.getElementById("message");
  box.textContent = text;
  box.className = level || "info";
}

async function api(method, url, body) {
  const response = await fetch(url, {
    method: method,
    headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf()},
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    let detail = data.detail;
    if (Array.isArray(detail)) detail = detail.map((d) => (d.loc || []).slice(1).join(".") + ": " + d.msg).join("; ");
    if (response.status === 401) detail += " (log in first)";
    throw new Error(detail || response.statusText);
  }
  return data;
}

// ---- deciding cells (queue rows and product-page suggestions share data-sku / data-attribute) ----
async function decide(el, action, value) {
  try {
    const cell = await api("POST", "/api/decisions",
      {sku: el.dataset.sku, attribute: el.dataset.attribute, action: action, value: value});
    el.classList.remove("open", "audit", "auto", "accepted", "edited", "rejected");
    el.classList.add(cell.status);
    el.querySelectorAll(".status").forEach((s) => { s.textContent = cell.status; });
    el.querySelectorAll(".badge.model").forEach((b) => { b.className = "badge reviewed"; b.textContent = "reviewed"; });
    if (cell.value) el.querySelectorAll(".value").forEach((v) => { v.textContent = cell.value; });
    say(`${cell.sku} / ${cell.attribute}: ${cell.status}${cell.value ? " " + cell.value : ""}`);
    if (cell.audit) showPrecision();
    return true;
  } catch (e) {
    say(e.message, "error");
    return false;
  }
}

// the precision measured on audited cells, in the header, after each decision on one
async function showPrecision() {
  const audit = (await api("GET", "/api/stats")).audit;
  document.getElementById("precision").textContent = audit.precision === null ? "audit precision: —" :
    `audit precision: ${(audit.precision * 100).toFixed(1)}% (${audit.correct}/${audit.decided} audited cells)`;
}

function startEdit(el, done) {
  const target = el.querySelector(".value");
  if (!target || target.querySelector("input")) return;
  const input = document.createElement("input");
  input.className = "edit";
  input.value = el.dataset.value || target.textContent.trim();
  target.replaceChildren(input);
  input.focus();
  input.select();
  input.addEventListener("keydown", async (ev) => {
    ev.stopPropagation();
    if (ev.key === "Enter") {
      ev.preventDefault();
      const value = input.value;
      target.textContent = value;
      if (await decide(el, "edit", value) && done) done();
    } else if (ev.key === "Escape") {
      target.textContent = input.value;
    }
  });
}

function wireActions(el, next) {
  el.querySelectorAll("button[data-act]").forEach((b) => b.addEventListener("click", (ev) => {
    ev.preventDefault();
    if (b.dataset.act === "edit") startEdit(el, next);
    else decide(el, b.dataset.act).then((ok) => ok && next && next());
  }));
  el.querySelectorAll("button.pick").forEach((b) => b.addEventListener("click", () => decide(el, "edit", b.dataset.value)));
}

// ---- the queue: j/k move, a accept, e edit, r reject, o open ----
function setupQueue(table) {
  const rows = Array.from(table.querySelectorAll("tr.cell"));
  let at = 0;
  const select = (i) => {
    if (!rows.length) return;
    at = Math.max(0, Math.min(rows.length - 1, i));
    rows.forEach((r, j) => r.classList.toggle("selected", j === at));
    rows[at].scrollIntoView({block: "nearest"});
  };
  const next = () => select(at + 1);
  rows.forEach((r, i) => { wireActions(r, next); r.addEventListener("click", () => select(i)); });
  select(0);
  document.addEventListener("keydown", (ev) => {
    if (ev.target.closest("input, select, textarea") || ev.ctrlKey || ev.metaKey || ev.altKey || !rows.length) return;
    const row = rows[at];
    if (ev.key === "j") select(at + 1);
    else if (ev.key === "k") select(at - 1);
    else if (ev.key === "a") decide(row, "accept").then((ok) => ok && next());
    else if (ev.key === "r") decide(row, "reject").then((ok) => ok && next());
    else if (ev.key === "e") { ev.preventDefault(); startEdit(row, next); }
    else if (ev.key === "o") window.location = row.querySelector("a").href;
  });
  const bulk = document.getElementById("bulk");
  bulk.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const filters = new FormData(document.getElementById("filters"));
    const body = {min_confidence: parseFloat(new FormData(bulk).get("min_confidence"))};
    for (const key of ["category", "attribute", "band", "status"]) if (filters.get(key)) body[key] = filters.get(key);
    try {
      const result = await api("POST", "/api/queue/accept", body);
      say(`${result.accepted} cells accepted`);
      setTimeout(() => window.location.reload(), 600);
    } catch (e) { say(e.message, "error"); }
  });
}

// ---- the rules page: fields by kind, values by attribute, dry run, save, remove ----
function setupRules(form) {
  const vocabulary = JSON.parse(document.getElementById("vocabulary").textContent);
  const kinds = JSON.parse(document.getElementById("kinds").textContent);
  const result = document.getElementById("rule-result");
  const show = () => {
    const used = kinds[form.kind.value];
    form.querySelectorAll("[data-field]").forEach((l) => { l.hidden = !used.includes(l.dataset.field); });
  };
  const values = () => {
    form.values.replaceChildren(...(vocabulary.values[form.attribute.value] || []).map((v) => new Option(v, v)));
  };
  form.kind.addEventListener("change", show);
  form.attribute.addEventListener("change", values);
  show();
  values();
  const rule = () => {
    const used = kinds[form.kind.value];
    const body = {kind: form.kind.value};
    if (form.category.value) body.category = form.category.value;
    for (const f of used) {
      if (f === "values") body.values = Array.from(form.values.selectedOptions).map((o) => o.value);
      else if (form[f].value !== "") body[f] = (f === "min" || f === "max") ? parseFloat(form[f].value) : form[f].value;
    }
    if (form.kind.value === "excludes" && body.then !== undefined) { body.then_not = body.then; delete body.then; }
    return body;
  };
  const show_result = (html, level) => { result.className = level; result.innerHTML = html; };
  const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));
  document.getElementById("dry-run").addEventListener("click", async () => {
    show_result("running…", "info");
    try {
      const r = await api("POST", "/api/rules/test", {rule: rule()});
      const counts = Object.entries(r.counts).map(([k, n]) => `<li>${n} ${esc(k)}</li>`).join("");
      const lint = r.lint.map((f) => `<li class="${f.level}">${f.level}: ${esc(f.message)}</li>`).join("");
      show_result(`<b>Dry run</b><ul class="counts">${counts}${lint}</ul>`, "info");
    } catch (e) { show_result(esc(e.message), "error"); }
  });
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const r = await api("POST", "/api/rules", rule());
      const warnings = r.warnings.map((w) => `<li class="warning">${esc(w)}</li>`).join("");
      show_result(`added <b>${esc(r.id)}</b> to ${esc(r.file)}<pre>${esc(r.block)}</pre><ul>${warnings}</ul>`, "ok");
    } catch (e) { show_result(esc(e.message), "error"); }
  });
  document.querySelectorAll("button.remove-rule").forEach((b) => b.addEventListener("click", async () => {
    try {
      await api("DELETE", "/api/rules/" + b.dataset.rule.split("/").map(encodeURIComponent).join("/"));
      b.closest("li").remove();
      say("removed " + b.dataset.rule);
    } catch (e) { say(e.message, "error"); }
  }));
}

document.addEventListener("DOMContentLoaded", () => {
  const table = document.getElementById("queue");
  if (table) setupQueue(table);
  document.querySelectorAll("article.suggestion").forEach((a) => wireActions(a));
  const form = document.getElementById("rule-form");
  if (form) setupRules(form);
});
