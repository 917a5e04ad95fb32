// ringmaster dashboard: polls /api/v1 once a second and redraws.
"use strict";
const $ = (s) => document.querySelector(s);
let selected = new URLSearchParams(location.search).get("job") || "";

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const k of kids) e.append(k);
  return e;
}
function rows(tbody, list, cells, onclick) {
  tbody.replaceChildren(...list.map((x) => {
    const tr = el("tr", {}, ...cells(x).map((c) => el("td", {}, c == null ? "–" : String(c))));
    if (onclick) onclick(tr, x);
    return tr;
  }));
}
const fix = (v, d) => (v == null ? null : Number(v).toFixed(d));
const age = (s) => (s == null ? null : s.toFixed(1) + " s");
function dur(s) {
  if (s == null) return "–";
  s = Math.round(s);
  return s >= 3600 ? Math.floor(s / 3600) + "h" + Math.floor((s % 3600) / 60) + "m" : s >= 60 ? Math.floor(s / 60) + "m" + (s % 60) + "s" : s + "s";
}

// chart draws each key's values against the step as a polyline (the first
// key solid, the others dashed) with min/max labels and dashed markers
// where the generation changes.
function chart(svg, pts, ...keys) {
  const W = 480, H = 200, L = 44, R = 8, T = 8, B = 20;
  const ns = "http://www.w3.org/2000/svg";
  const mk = (t, a) => { const e = document.createElementNS(ns, t); for (const k in a) e.setAttribute(k, a[k]); return e; };
  const key = keys[0];
  const p = pts.filter((q) => Number.isFinite(q[key]));
  svg.dataset.points = String(p.length);
  const extra = keys.slice(1).map((k) => pts.filter((q) => Number.isFinite(q[k])));
  if (extra.length) svg.dataset.extraPoints = extra.map((e) => e.length).join(",");
  const kids = [mk("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }), mk("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B })];
  if (p.length > 0) {
    const xs = p.map((q) => q.step), ys = p.map((q) => q[key]);
    extra.forEach((e, i) => e.forEach((q) => ys.push(q[keys[i + 1]])));
    let x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
    if (x1 === x0) x1 = x0 + 1;
    if (y1 === y0) { y1 += 0.5; y0 -= 0.5; }
    const sx = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R), sy = (y) => H - B - ((y - y0) / (y1 - y0)) * (H - T - B);
    for (let i = 1; i < p.length; i++) {
      if (p[i].generation !== p[i - 1].generation) kids.push(mk("line", { class: "gen", x1: sx(p[i].step), y1: T, x2: sx(p[i].step), y2: H - B }));
    }
    kids.push(mk("polyline", { class: "line", points: p.map((q) => sx(q.step).toFixed(1) + "," + sy(q[key]).toFixed(1)).join(" ") }));
    extra.forEach((e, i) => {
      if (e.length) kids.push(mk("polyline", { class: "line extra", "data-key": keys[i + 1], points: e.map((q) => sx(q.step).toFixed(1) + "," + sy(q[keys[i + 1]]).toFixed(1)).join(" ") }));
    });
    const label = (x, y, s, anchor) => { const t = mk("text", { x, y, "text-anchor": anchor }); t.textContent = s; return t; };
    const f = (v) => (Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3));
    kids.push(label(L - 3, T + 8, f(y1), "end"), label(L - 3, H - B, f(y0), "end"), label(L, H - 6, String(x0), "start"), label(W - R, H - 6, String(x1), "end"));
  }
  svg.replaceChildren(...kids);
}

async function get(path) {
  const r = await fetch(path, { cache: "no-store" });
  if (!r.ok) throw new Error(path + ": " + r.status);
  return r.json();
}

async function tick() {
  try {
    const [cl, jobs] = await Promise.all([get("/api/v1/cluster"), get("/api/v1/jobs")]);
    const h = $("#health");
    const voters = cl.members.filter((m) => m.suffrage === "voter").length;
    h.textContent = cl.leader ? "leader " + cl.leader + " · " + voters + " voters · term " + cl.term : "no leader";
    h.className = "pill " + (cl.leader ? "ok" : "bad");
    $("#members").replaceChildren(...cl.members.map((m) => el("span", { class: "pill " + (m.leader ? "ok" : "") }, m.id + " " + m.suffrage + (m.leader ? " (leader)" : ""))),
      el("span", {}, "served by " + cl.node + " (" + cl.raft_state + ")"));
    rows($("#workers tbody"), cl.workers, (w) => [w.id, w.state + (w.reason ? ": " + w.reason : ""), w.job, w.cores, age(w.heartbeat_age_seconds), w.address]);
    if (!selected && jobs.length) selected = (jobs.find((j) => j.state === "running") || jobs[0]).id;
    rows($("#jobs tbody"), jobs, (j) => [j.id, j.state, j.step + "/" + j.max_steps, j.generation, j.committed_step, j.reason], (tr, j) => {
      tr.dataset.job = j.id;
      if (j.id === selected) tr.className = "sel";
      tr.onclick = () => { selected = j.id; tick(); };
    });
    if (selected) await job(selected);
    $("#updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    $("#health").textContent = "error: " + e.message;
    $("#health").className = "pill bad";
  }
}

async function job(id) {
  const d = await get("/api/v1/jobs/" + encodeURIComponent(id));
  $("#job").hidden = false;
  $("#job-id").textContent = d.id;
  const st = $("#job-state");
  st.textContent = d.state;
  st.className = "pill " + d.state;
  const last = d.points.length ? d.points[d.points.length - 1] : null;
  $("#job-line").textContent = "step " + d.step + "/" + d.max_steps + " · generation " + d.generation + " (dp " + d.dp_size + " × tp " + d.tp_size + ")" +
    (last ? " · loss " + last.loss.toFixed(4) + (last.val_loss != null ? " · val loss " + last.val_loss.toFixed(4) : "") + " · " + last.tokens_per_sec.toFixed(0) + " tokens/s" : "") + " · ETA " + dur(d.eta_seconds) +
    " · checkpoint " + d.committed_step + (d.reason ? " · " + d.reason : "");
  chart($("#chart-loss"), d.points, "loss", "val_loss");
  chart($("#chart-tps"), d.points, "tokens_per_sec");
  rows($("#ranks tbody"), d.ranks, (r) => [r.rank, r.worker, r.dp, r.tp, r.reported ? r.step : null, r.reported ? fix(r.loss, 4) : null, r.step_seconds == null ? null : (r.step_seconds * 1000).toFixed(0) + " ms",
    fix(r.straggler_score, 2), age(r.heartbeat_age_seconds)]);
  rows($("#checkpoints tbody"), d.checkpoints.slice().reverse(), (c) => [c.step + (c.final ? " (final)" : ""), c.generation,
    Object.entries(c.holders).map(([k, v]) => k + ": " + v.join(",")).join("; ")]);
  $("#timeline").replaceChildren(...d.events.slice().reverse().map((e) => el("li", { class: "ev-" + e.kind, "data-kind": e.kind },
    el("span", { class: "kind" }, new Date(e.t).toLocaleTimeString() + " " + e.kind), e.text)));
}

tick();
setInterval(tick, 1000);
