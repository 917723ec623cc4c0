// sparq explorer: renders the data embedded in #sparq-data (shape: pipeline/read/explore.py).
// Every piece of run text goes into the page through textContent, never as HTML: generated
// problems are model output.
"use strict";
(function () {
  const D = JSON.parse(document.getElementById("sparq-data").textContent);
  const $ = (id) => document.getElementById(id);
  const SVGNS = "http://www.w3.org/2000/svg";
  const PAGE = 50;
  const EMPTY = "#b8b8b8", SEED = "#8c6d46";
  const RUN_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
  const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const kid of kids) if (kid !== null && kid !== undefined) e.append(kid);
    return e;
  }
  function sv(tag, attrs) {
    const e = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  }
  const fmt = (x, d = 3) => (x === null || x === undefined ? "\u2013" : Number(x).toFixed(d));
  function viridis(t) {
    t = Math.max(0, Math.min(1, t)) * (VIRIDIS.length - 1);
    const i = Math.min(VIRIDIS.length - 2, Math.floor(t)), f = t - i;
    const c = VIRIDIS[i].map((a, j) => Math.round(a + f * (VIRIDIS[i + 1][j] - a)));
    return `rgb(${c[0]},${c[1]},${c[2]})`;
  }

  // -- per-run derived state ---------------------------------------------------------------
  let ri = 0, R = null, step = 0, sel = -1, occ = null, finalOcc = null, qmax = 1, hay = null;
  const ARCHIVED = new Set(["new", "improve"]);
  const status = (r, i) => r.dict.status[r.c.status[i]];
  const opName = (r, i) => r.dict.op[r.c.op[i]];
  const outcome = (r, i) => r.dict.outcome[r.c.outcome[i]];

  // The archive after step n: replay of the insertion events of steps 0..n (archive property).
  function occupancy(r, n) {
    const held = new Int32Array(r.cells).fill(-1);
    const ev = r.events;
    for (let j = 0; j < ev.step.length && ev.step[j] <= n; j++) if (ev.cell[j] < r.cells) held[ev.cell[j]] = ev.cand[j];
    return held;
  }

  // -- overview ------------------------------------------------------------------------------
  function overview() {
    const m = R.metrics, last = m.step.length - 1;
    const gen = R.c.step.filter((s) => s > 0).length;
    let archived = 0;
    for (let i = 0; i < R.c.id.length; i++) if (R.c.step[i] > 0 && ARCHIVED.has(outcome(R, i))) archived++;
    const occupied = finalOcc.reduce((a, v) => a + (v >= 0 ? 1 : 0), 0);
    let checked = 0, valid = 0;
    for (let i = 0; i < R.c.id.length; i++) if (R.c.step[i] > 0 && R.c.valid[i] !== null) { checked++; valid += R.c.valid[i]; }
    const cards = [[R.steps, "steps"], [gen, "generated candidates"], [archived, "archived"],
      [`${occupied} / ${R.cells}`, "cells occupied"], [fmt(last >= 0 ? m.coverage[last] : null), "coverage"],
      [fmt(last >= 0 ? m.qd_score[last] : null), "QD score"],
      [checked ? fmt(valid / checked) : "n/a", checked ? `valid share (${valid} of ${checked} checked)` : "validity not checked"]];
    // Candidates whose request the engine refused (too long for the context, rejected): the run went on.
    let failed = 0;
    for (let i = 0; i < R.c.id.length; i++) if (status(R, i) === "failed") failed++;
    if (failed) cards.push([failed, "failed (request refused; see their reasons)"]);
    $("overview").replaceChildren(...cards.map(([v, l]) => el("div", { class: "card" },
      el("div", { class: "v", text: String(v) }), el("div", { class: "l", text: l }))));
    $("subtitle").textContent = `run ${R.run_id} \u00b7 ${R.path} \u00b7 ${R.archive_kind} archive \u00b7 ` +
      `page written ${D.generated_at}`;
  }

  // -- archive map -------------------------------------------------------------------------
  const W = 640, H = 460, PAD = 14;
  let rects = [], centres = [], cellSize = 8, hovered = -1;
  function buildMap() {
    const xs = R.xy.map((p) => p[0]), ys = R.xy.map((p) => p[1]);
    const lo = (v) => v.reduce((a, x) => Math.min(a, x), Infinity), hi = (v) => v.reduce((a, x) => Math.max(a, x), -Infinity);
    const x0 = lo(xs), x1 = hi(xs), y0 = lo(ys), y1 = hi(ys);
    const sx = (W - 2 * PAD) / (x1 - x0 || 1), sy = (H - 2 * PAD) / (y1 - y0 || 1);
    cellSize = Math.max(4, Math.min(12, 0.45 * Math.sqrt((W * H) / Math.max(1, R.cells))));
    const svg = sv("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "archive map" });
    centres = R.xy.map((p) => [PAD + (p[0] - x0) * sx, H - PAD - (p[1] - y0) * sy]);
    rects = centres.map(([x, y], c) => {
      const r = sv("rect", { class: "cell", x: (x - cellSize / 2).toFixed(1), y: (y - cellSize / 2).toFixed(1),
        width: cellSize.toFixed(1), height: cellSize.toFixed(1), "data-cell": c });
      svg.append(r);
      return r;
    });
    // Cells can overlap in the projection: the pointer picks the cell whose centre is nearest
    // (within a cell's size), not the shape drawn on top, so every cell can be reached.
    svg.addEventListener("mousemove", (e) => hover(e, cellAt(svg, e)));
    svg.addEventListener("mouseleave", (e) => hover(e, -1));
    svg.addEventListener("click", (e) => { const c = cellAt(svg, e); if (c >= 0) clickCell(c); });
    $("map").replaceChildren(svg);
    $("projection").textContent = `Cell positions: ${R.projection}. Nearby cells hold problems the embedder ` +
      "sees as similar.";
  }

  function cellAt(svg, e) {
    const m = svg.getScreenCTM();
    if (!m) return -1;
    const pt = new DOMPoint(e.clientX, e.clientY).matrixTransform(m.inverse());
    let best = -1, bd = cellSize * cellSize;
    centres.forEach(([x, y], c) => {
      const d = (x - pt.x) ** 2 + (y - pt.y) ** 2;
      if (d <= bd) { bd = d; best = c; }
    });
    return best;
  }
  function hover(e, c) {
    if (c !== hovered) {
      if (hovered >= 0) rects[hovered].classList.remove("hover");
      if (c >= 0) rects[c].classList.add("hover");
      hovered = c;
    }
    const t = $("tip");
    if (c < 0) { t.hidden = true; return; }
    t.textContent = cellText(c);
    t.hidden = false;
    t.style.left = Math.min(window.innerWidth - 390, e.clientX + 14) + "px";
    t.style.top = (e.clientY + 14) + "px";
  }

  function compareSets() {
    // Cells filled at the slider's step by each run sharing this run's centroids.
    const g = D.compare.group;
    if (!g.includes(ri) || g.length < 2) return null;
    const mine = new Set(), others = new Set();
    for (const j of g) {
      const o = j === ri ? occ : occupancy(D.runs[j], Math.min(step, D.runs[j].steps));
      o.forEach((v, c) => { if (v >= 0) (j === ri ? mine : others).add(c); });
    }
    return { mine, others };
  }

  function paintMap() {
    const mode = $("mode").value;
    const cmp = mode === "compare" ? compareSets() : null;
    let n = 0;
    rects.forEach((r, c) => {
      const i = occ[c];
      const state = i < 0 ? "empty" : status(R, i) === "seed" ? "seed" : "generated";
      if (i >= 0) n++;
      let fill, stroke = "#4a4f57", round = state !== "seed";
      if (cmp) {
        const a = cmp.mine.has(c), b = cmp.others.has(c);
        fill = a && b ? "#9aa3ad" : a ? RUN_COLOURS[0] : b ? RUN_COLOURS[1] : "none";
        stroke = a || b ? "#4a4f57" : EMPTY;
        round = true;
      } else if (state === "empty") { fill = "none"; stroke = EMPTY; }
      else if (state === "seed") fill = SEED;
      else fill = viridis(R.c.q[i] / qmax);
      r.setAttribute("fill", fill);
      r.setAttribute("stroke", stroke);
      r.setAttribute("rx", round ? (cellSize / 2).toFixed(1) : "0");
      r.dataset.state = state;
      r.classList.toggle("sel", sel >= 0 && occ[c] === sel);
    });
    // Drawn last = on top: generated elites over seeds over empty cells.
    const svg = rects.length ? rects[0].parentNode : null;
    for (const state of ["empty", "seed", "generated"]) rects.forEach((r) => { if (r.dataset.state === state) svg.append(r); });
    $("occupied").textContent = `${n} of ${R.cells} cells occupied`;
    $("occupied").dataset.count = n;
    $("step-label").textContent = String(step);
    legend(cmp);
  }

  function legend(cmp) {
    const sw = (colour, label, round, hollow) => el("span", null, el("i", { style:
      `background:${hollow ? "transparent" : colour};border:1.5px solid ${hollow ? EMPTY : colour};` +
      `border-radius:${round ? "50%" : "0"}` }), label);
    if (cmp) {
      const other = D.compare.group.filter((j) => j !== ri).map((j) => D.runs[j].run_id).join(", ");
      $("legend").replaceChildren(sw(RUN_COLOURS[0], `only ${R.run_id}`, true), sw(RUN_COLOURS[1], `only ${other}`, true),
        sw("#9aa3ad", "both", true), sw(EMPTY, "neither", true, true));
      return;
    }
    const ramp = el("span", { class: "ramp", style: `background:linear-gradient(to right,${[0, 0.25, 0.5, 0.75, 1].map(viridis).join(",")})` });
    $("legend").replaceChildren(sw(EMPTY, "empty cell", true, true), sw(SEED, "held by a seed (unscored)", false),
      el("span", null, "generated elite, quality 0", ramp, fmt(qmax, 2)));
  }

  function cellText(c) {
    const i = occ[c];
    if (i < 0) return `cell ${c}: empty after step ${step}`;
    const head = status(R, i) === "seed" ? `cell ${c}: seed (unscored)` :
      `cell ${c}: quality ${fmt(R.c.q[i])}, solve rate ${fmt(R.c.sr[i], 2)}, step ${R.c.step[i]}, depth ${R.c.depth[i]}`;
    const p = R.c.problem[i] || "";
    return head + "\n" + (p.length > 240 ? p.slice(0, 239) + "\u2026" : p);
  }
  function clickCell(c) {
    const i = occ[c];
    if (i >= 0) return select(i);
    sel = -1;
    paintMap();
    $("panel").replaceChildren(el("p", { class: "muted", text: `Cell ${c} is empty after step ${step}.` }));
    $("panel").dataset.id = "";
  }

  // -- elite panel ---------------------------------------------------------------------------
  const blockCache = new Map();
  async function detail(r, i) {
    // [row, solution, attempts] of row i, inflating its step's block once.
    const key = D.runs.indexOf(r) + ":" + r.c.step[i];
    if (!blockCache.has(key)) {
      const bin = atob(r.blocks[String(r.c.step[i])]);
      const bytes = new Uint8Array(bin.length);
      for (let j = 0; j < bin.length; j++) bytes[j] = bin.charCodeAt(j);
      const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
      const rows = JSON.parse(await new Response(stream).text());
      blockCache.set(key, new Map(rows.map((row) => [row[0], row])));
    }
    return blockCache.get(key).get(i) || [i, null, []];
  }

  function jump(i, label) { return el("a", { class: "jump id", text: label || R.c.id[i], onclick: () => select(i) }); }

  function checks(i) {
    const v = R.c.valid[i];
    if (v === 1 && R.c.repair && R.c.repair[i]) {
      return el("span", { class: "flag good", text: `valid after a repair: ${R.c.repair[i]}` });
    }
    if (v === 1) return el("span", { class: "flag good", text: "valid: every check passed" });
    if (v === 0) return el("span", { class: "flag bad", text: `invalid: ${R.c.vreason[i] || "a check failed"}` });
    return el("span", { class: "muted", text: "not checked (a seed, unparsed, a duplicate or an older run)" });
  }

  function validity(i) {
    const d = R.c.disp[i];
    if (d === 1) return el("span", { class: "flag bad", text: `disputed: a solver majority of ${fmt(100 * R.c.share[i], 0)}% ` +
      `answered ${R.c.maj[i]}, the reference says ${R.c.answer[i]}` });
    if (d === 0) return el("span", { class: "flag good", text: "not disputed (no confident majority against the reference)" });
    return el("span", { class: "muted", text: "not solved, so not checked" });
  }

  let panelToken = 0;
  function select(i) {
    sel = i;
    paintMap();
    document.querySelectorAll("#cands tbody tr.sel").forEach((tr) => tr.classList.remove("sel"));
    const tr = document.querySelector(`#cands tbody tr[data-idx="${i}"]`);
    if (tr) tr.classList.add("sel");
    const c = R.c, st = status(R, i);
    const flags = el("div", null, el("span", { class: `flag ${st === "seed" ? "seed" : st === "ok" ? "good" : "bad"}`, text: st }), " ",
      finalOcc[c.cell[i]] === i ? el("span", { class: "flag good", text: `elite of cell ${c.cell[i]} now` }) : null);
    const dl = el("dl", { class: "fields" });
    const field = (k, v) => dl.append(el("dt", { text: k }), el("dd", null, v));
    field("id", el("span", { class: "id", text: c.id[i] }));
    field("step / slot", `${c.step[i]} / ${c.slot[i]}`);
    field("operator", opName(R, i) + (c.target[i] ? ` (target ${c.target[i]})` : ""));
    field("depth", String(c.depth[i]));
    field("cell", c.cell[i] >= 0 ? String(c.cell[i]) : "none");
    field("solve rate", c.sr[i] === null ? "not solved" : `${fmt(c.sr[i], 3)} (${c.nc[i]} of ${c.k[i]} correct)`);
    field("quality", fmt(c.q[i]));
    field("archive outcome", outcome(R, i));
    if (R.dict.reason[c.reason[i]]) field("reason", R.dict.reason[c.reason[i]]);
    field("validity checks", checks(i));
    field("solver majority", validity(i));
    if (c.parent[i] >= 0) field("parent", jump(c.parent[i]));
    if (c.parent2[i] >= 0) field("second parent", jump(c.parent2[i]));
    const sol = el("div", { class: "text muted", text: "loading\u2026" });
    const atts = el("div", { class: "muted", text: "loading\u2026" });
    $("panel").replaceChildren(flags, dl,
      el("b", { text: "Problem" }), el("div", { class: "text problem", text: c.problem[i] || "(none)" }),
      el("b", { text: "Reference answer" }), el("div", { class: "text answer", text: c.answer[i] === null ? "(none)" : c.answer[i] }),
      el("b", { text: "Solution" }), sol,
      el("b", { text: "Solver attempts" }), atts);
    $("panel").dataset.id = c.id[i];
    const token = ++panelToken;
    detail(R, i).then(([, solution, attempts]) => {
      if (token !== panelToken) return;
      sol.className = "text";
      sol.textContent = solution === null ? "(none)" : solution;
      if (!attempts.length) { atts.textContent = "no attempts (seeds and unsolved candidates have none)"; return; }
      atts.className = "";
      atts.replaceChildren(el("ol", { class: "attempts" }, ...attempts.map(([text, ext, ok]) => el("li", null,
        el("span", { class: ok ? "ok" : "no", text: ok ? "correct" : "wrong" }),
        ` extracted: ${ext === null ? "(nothing)" : ext}`, el("div", { class: "atext", text }))))),
      atts.append(el("p", { class: "muted small", text: `Attempt texts are cut at ${D.attempt_chars} characters.` }));
    }).catch((err) => { sol.textContent = atts.textContent = `could not read the details: ${err}`; });
    lineage(i);
  }

  // -- lineage ---------------------------------------------------------------------------------
  function words(s) { return (s || "").split(/\s+/).filter((w) => w.length); }
  function wordDiff(a, b) {
    // Longest common subsequence over words; falls back to whole texts for very long ones.
    const x = words(a), y = words(b), n = x.length, m = y.length;
    const out = el("div", { class: "text diff" });
    if (n * m > 250000) { out.append(el("del", { text: a }), " ", el("ins", { text: b })); return out; }
    const L = new Uint32Array((n + 1) * (m + 1));
    for (let p = n - 1; p >= 0; p--) for (let q = m - 1; q >= 0; q--)
      L[p * (m + 1) + q] = x[p] === y[q] ? L[(p + 1) * (m + 1) + q + 1] + 1 : Math.max(L[(p + 1) * (m + 1) + q], L[p * (m + 1) + q + 1]);
    let p = 0, q = 0;
    const push = (tag, w) => { out.append(tag ? el(tag, { text: w }) : w, " "); };
    while (p < n && q < m) {
      if (x[p] === y[q]) { push(null, x[p]); p++; q++; }
      else if (L[(p + 1) * (m + 1) + q] >= L[p * (m + 1) + q + 1]) push("del", x[p++]);
      else push("ins", y[q++]);
    }
    while (p < n) push("del", x[p++]);
    while (q < m) push("ins", y[q++]);
    return out;
  }

  function chainList(i, seen, depth) {
    const ol = el("ol", { class: "lineage" });
    for (let j = i; j >= 0; j = R.c.parent[j]) {
      if (seen.has(j)) { ol.append(el("li", null, el("span", { class: "muted" }, "continues as shown above at ", jump(j)))); break; }
      seen.add(j);
      const st = status(R, j), par = R.c.parent[j], par2 = R.c.parent2[j];
      const meta = st === "seed" ? `seed \u00b7 step 0 \u00b7 cell ${R.c.cell[j]}` :
        `depth ${R.c.depth[j]} \u00b7 step ${R.c.step[j]} \u00b7 ${opName(R, j)} \u00b7 solve rate ${fmt(R.c.sr[j], 2)} \u00b7 ` +
        `quality ${fmt(R.c.q[j])} \u00b7 cell ${R.c.cell[j] >= 0 ? R.c.cell[j] : "none"}`;
      const li = el("li", { class: st === "seed" ? "seed" : null, "data-idx": j },
        el("div", { class: "meta" }, meta + " \u00b7 ", jump(j)));
      if (par >= 0) li.append(el("div", { class: "meta", text: "word changes from its parent:" }), wordDiff(R.c.problem[par], R.c.problem[j]));
      else li.append(el("div", { class: "text", text: R.c.problem[j] || "" }));
      if (par2 >= 0 && depth < 6) {
        const d = el("details", { open: "" }, el("summary", null, "second parent ", jump(par2), " and its lineage"),
          el("div", { class: "meta", text: "word changes from the second parent:" }), wordDiff(R.c.problem[par2], R.c.problem[j]),
          chainList(par2, seen, depth + 1));
        li.append(d);
      }
      ol.append(li);
      if (par < 0 && st !== "seed") ol.append(el("li", { class: "muted", text: "lineage ends here without a seed (broken parent link)" }));
    }
    return ol;
  }
  function lineage(i) {
    $("lineage").replaceChildren(el("p", { class: "muted small", text: "Newest first, back to the seed; deleted words " +
      "struck through in red, inserted words in green." }), chainList(i, new Set(), 0));
  }

  // -- candidates table ----------------------------------------------------------------------------
  const COLS = [
    { key: "id", label: "id", get: (i) => R.c.id[i], cls: "id" },
    { key: "step", label: "step", get: (i) => R.c.step[i], n: true },
    { key: "op", label: "operator", get: (i) => opName(R, i) },
    { key: "status", label: "status", get: (i) => status(R, i) },
    { key: "outcome", label: "archive", get: (i) => outcome(R, i) },
    { key: "sr", label: "solve rate", get: (i) => R.c.sr[i], n: true, d: 2 },
    { key: "q", label: "quality", get: (i) => R.c.q[i], n: true, d: 3 },
    { key: "cell", label: "cell", get: (i) => R.c.cell[i], n: true },
    { key: "depth", label: "depth", get: (i) => R.c.depth[i], n: true },
    { key: "disp", label: "disputed", get: (i) => (R.c.disp[i] === null ? "" : R.c.disp[i] ? "yes" : "no") },
    { key: "problem", label: "problem", get: (i) => R.c.problem[i] || "" },
  ];
  let view = [], page = 0, sortKey = "step", sortDir = 1;

  function filtersFor() {
    const opt = (sel, values) => sel.replaceChildren(el("option", { value: "", text: "any" }),
      ...values.map((v, k) => el("option", { value: String(k), text: v || "(none)" })));
    opt($("f-op"), R.dict.op);
    opt($("f-status"), R.dict.status);
    $("step-min").max = $("step-max").max = R.steps;
    const head = document.querySelector("#cands thead tr");
    head.replaceChildren(...COLS.map((col) => el("th", { "data-key": col.key, text: col.label,
      onclick: () => { sortDir = sortKey === col.key ? -sortDir : 1; sortKey = col.key; refilter(); } })));
  }

  function num(id) { const v = $(id).value; return v === "" ? null : Number(v); }
  function refilter() {
    const c = R.c, n = c.id.length;
    const s0 = num("step-min"), s1 = num("step-max"), r0 = num("sr-min"), r1 = num("sr-max");
    const op = $("f-op").value, st = $("f-status").value, arch = $("f-arch").value;
    const text = $("search").value.trim().toLowerCase();
    if (text && !hay) hay = c.id.map((id, i) => `${c.problem[i] || ""}\n${c.answer[i] || ""}\n${id}`.toLowerCase());
    const out = [];
    for (let i = 0; i < n; i++) {
      if (s0 !== null && c.step[i] < s0) continue;
      if (s1 !== null && c.step[i] > s1) continue;
      if (op !== "" && c.op[i] !== +op) continue;
      if (st !== "" && c.status[i] !== +st) continue;
      if ((r0 !== null || r1 !== null) && (c.sr[i] === null || (r0 !== null && c.sr[i] < r0) || (r1 !== null && c.sr[i] > r1))) continue;
      if (arch === "yes" && !ARCHIVED.has(outcome(R, i))) continue;
      if (arch === "no" && ARCHIVED.has(outcome(R, i))) continue;
      if (arch === "elite" && !(c.cell[i] >= 0 && finalOcc[c.cell[i]] === i)) continue;
      if (text && !hay[i].includes(text)) continue;
      out.push(i);
    }
    const col = COLS.find((x) => x.key === sortKey);
    const key = out.map(col.get);
    const order = out.map((_, k) => k);
    order.sort((a, b) => {
      const x = key[a], y = key[b];
      if (x === y) return out[a] - out[b];
      if (x === null) return 1;
      if (y === null) return -1;
      return (x < y ? -1 : 1) * sortDir;
    });
    view = order.map((k) => out[k]);
    page = 0;
    document.querySelectorAll("#cands th").forEach((th) => {
      th.classList.toggle("asc", th.dataset.key === sortKey && sortDir > 0);
      th.classList.toggle("desc", th.dataset.key === sortKey && sortDir < 0);
    });
    renderPage();
  }

  function renderPage() {
    const pages = Math.max(1, Math.ceil(view.length / PAGE));
    page = Math.max(0, Math.min(page, pages - 1));
    const rows = view.slice(page * PAGE, (page + 1) * PAGE).map((i) => {
      const tr = el("tr", { "data-idx": i, class: i === sel ? "sel" : null, onclick: () => select(i) });
      for (const col of COLS) {
        let v = col.get(i);
        if (col.d !== undefined) v = fmt(v, col.d);
        if (col.key === "problem" && v.length > 140) v = v.slice(0, 139) + "\u2026";
        tr.append(el("td", { class: col.n ? "n" : col.cls || null, text: v === null ? "\u2013" : String(v) }));
      }
      return tr;
    });
    document.querySelector("#cands tbody").replaceChildren(...rows);
    const a = view.length ? page * PAGE + 1 : 0;
    $("page-info").textContent = `rows ${a}\u2013${Math.min(view.length, (page + 1) * PAGE)} of ${view.length} ` +
      `(of ${R.c.id.length} candidates, seeds included) \u00b7 page ${page + 1} of ${pages}`;
    $("page-info").dataset.rows = view.length;
  }

  // -- progress and comparison ------------------------------------------------------------------
  function chart(key, title) {
    const w = 520, h = 230, L = 46, B = 28, T = 22, Rr = 10;
    const runs = D.runs.map((r, j) => ({ r, j, xs: r.metrics.step, ys: r.metrics[key] }));
    const xmax = runs.flatMap((s) => s.xs).reduce((a, x) => Math.max(a, x), 1);
    const ymax = runs.flatMap((s) => s.ys).reduce((a, y) => Math.max(a, y), 1e-9);
    const X = (x) => L + (x / xmax) * (w - L - Rr), Y = (y) => h - B - (y / ymax) * (h - B - T);
    const svg = sv("svg", { viewBox: `0 0 ${w} ${h}`, "data-metric": key });
    const text = (x, y, s, anchor) => { const t = sv("text", { x, y, "font-size": 11, fill: "#5a6270", "text-anchor": anchor || "start" }); t.textContent = s; svg.append(t); };
    svg.append(sv("line", { x1: L, y1: h - B, x2: w - Rr, y2: h - B, stroke: "#9aa3ad" }), sv("line", { x1: L, y1: T, x2: L, y2: h - B, stroke: "#9aa3ad" }));
    text(L - 4, Y(ymax) + 4, ymax.toFixed(key === "qd_score" ? 1 : 2), "end");
    text(L - 4, h - B + 4, "0", "end");
    text(L, h - 8, "step 0");
    text(w - Rr, h - 8, `step ${xmax}`, "end");
    text(L, 14, title);
    runs.forEach((s) => {
      const pts = s.xs.map((x, k) => `${X(x).toFixed(1)},${Y(s.ys[k]).toFixed(1)}`).join(" ");
      svg.append(sv("polyline", { points: pts, fill: "none", stroke: RUN_COLOURS[s.j % RUN_COLOURS.length], "stroke-width": 2,
        "data-run": s.r.run_id }));
    });
    runs.forEach((s, k) => text(w - Rr - 4, T + 14 + 13 * k, `\u2014 ${s.r.run_id}`, "end"));
    svg.querySelectorAll("text").forEach((t, k) => { if (k >= 5) t.setAttribute("fill", RUN_COLOURS[(k - 5) % RUN_COLOURS.length]); });
    return svg;
  }

  function comparePane() {
    $("compare-pane").hidden = false;
    $("chart-coverage").replaceChildren(chart("coverage", "coverage (share of cells occupied)"));
    $("chart-qd").replaceChildren(chart("qd_score", "QD score (sum of elite qualities)"));
    $("chart-valid").replaceChildren(chart("valid_share", "valid share of the step's checked candidates"));
    if (D.runs.length < 2) {
      $("compare-pane").querySelector("h2").textContent = "Progress over steps";
      return;
    }
    const cmp = D.compare, box = $("compare");
    const parts = [];
    if (cmp.group.length >= 2) {
      parts.push(el("p", { text: `${cmp.group.map((j) => D.runs[j].run_id).join(", ")} share their centroids, so a cell ` +
        `is the same region of embedding space in each; ${cmp.both.length} cells are filled by all of them. ` +
        "Cells only one run fills (final archives; click one to open that run's elite):" }));
      for (const j of cmp.group) {
        const cells = cmp.only[String(j)] || [];
        const list = el("div", { class: "only", "data-run": String(j) });
        cells.forEach((cell) => list.append(el("a", { class: "jump", text: String(cell), onclick: () => { setRun(j); clickCell(cell); } }), " "));
        parts.push(el("p", null, el("b", { text: `${D.runs[j].run_id}: ${cells.length} cell(s) ` }), list));
      }
    } else {
      parts.push(el("p", { class: "muted", text: "No two runs share their centroids, so cells are not compared one by one." }));
    }
    for (const j of cmp.not_comparable) {
      const r = D.runs[j];
      parts.push(el("p", { class: "muted", text: r.centroid_key === null ?
        `${r.run_id} has a ${r.archive_kind} archive, without centroids: its cell numbers are niches of its own, so its ` +
        "cells are not compared with another run's; its curves above are." :
        `${r.run_id} has other centroids than ${D.runs[0].run_id}: the same cell number names a different region of ` +
        "embedding space, so its cells are not compared; its curves above are." }));
    }
    box.replaceChildren(...parts);
  }

  // -- rounds ---------------------------------------------------------------------------------
  function roundsPane() {
    const rows = R.rounds;
    $("rounds-pane").hidden = !rows;
    if (!rows) return;
    const est = (e) => (e ? `${e[0].toFixed(3)} [${e[1].toFixed(3)}, ${e[2].toFixed(3)}]` : "\u2013");
    const diff = (d) => (d ? `${d[0] >= 0 ? "+" : ""}${d[0].toFixed(3)} [${d[1].toFixed(3)}, ${d[2].toFixed(3)}] p=${d[3].toFixed(2)}` : "\u2013");
    const num = (x) => (x === null || x === undefined ? "\u2013" : String(x));
    const heads = ["round", "rows", "pass@1", "pass@k", "vs previous", "vs base", "coverage", "QD", "valid share", "elite cos"];
    document.querySelector("#rounds thead tr").replaceChildren(...heads.map((h) => el("th", { text: h })));
    document.querySelector("#rounds tbody").replaceChildren(...rows.map((r) => {
      const cells = [r.round === 0 ? "base" : String(r.round) + (r.tuned ? "" : " (not tuned)"), num(r.rows), est(r.pass1),
        (r.k ? `k=${r.k}: ` : "") + est(r.passk), diff(r.prev), diff(r.base), num(r.coverage), num(r.qd), num(r.valid), num(r.cos)];
      return el("tr", { "data-round": String(r.round) }, ...cells.map((c) => el("td", { text: c })));
    }));
    $("rounds-warnings").replaceChildren(...rows.flatMap((r) => r.warnings.map((w) => el("li", { class: "warn", text: `round ${r.round}: ${w}` }))));
  }

  // -- wiring -------------------------------------------------------------------------------
  function setRun(j) {
    ri = j; R = D.runs[j]; sel = -1; hay = null;
    step = R.steps;
    occ = occupancy(R, step);
    finalOcc = occ;
    qmax = R.c.q.reduce((a, q) => (q > a ? q : a), 1e-9);  // no spread: runs can have 100k+ rows
    $("run").value = String(j);
    $("step").max = R.steps;
    $("step").value = step;
    const cmp = D.compare.group.length >= 2 && D.compare.group.includes(j);
    $("mode-pick").hidden = !cmp;
    if (!cmp) $("mode").value = "quality";
    overview();
    roundsPane();
    buildMap();
    paintMap();
    filtersFor();
    refilter();
    $("panel").replaceChildren(el("p", { class: "muted", text: "Click a cell of the map or a row of the table." }));
    $("panel").dataset.id = "";
    $("lineage").replaceChildren(el("p", { class: "muted", text: "The selected problem's ancestors back to its seed appear here." }));
  }

  function init() {
    if (D.runs.length > 1) {
      $("run-pick").hidden = false;
      $("run").replaceChildren(...D.runs.map((r, j) => el("option", { value: String(j), text: r.run_id })));
      $("run").addEventListener("change", () => setRun(+$("run").value));
    }
    $("step").addEventListener("input", () => { step = +$("step").value; occ = occupancy(R, step); paintMap(); });
    $("mode").addEventListener("change", paintMap);
    let timer = 0;
    $("search").addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(refilter, 120); });
    for (const id of ["step-min", "step-max", "sr-min", "sr-max", "f-op", "f-status", "f-arch"]) $(id).addEventListener("change", refilter);
    $("f-reset").addEventListener("click", () => {
      for (const id of ["search", "step-min", "step-max", "sr-min", "sr-max", "f-op", "f-status", "f-arch"]) $(id).value = "";
      refilter();
    });
    $("prev").addEventListener("click", () => { page--; renderPage(); });
    $("next").addEventListener("click", () => { page++; renderPage(); });
    setRun(0);
    comparePane();
    document.title = `sparq explorer: ${D.runs.map((r) => r.run_id).join(", ")}`;
    window.sparqReadyMs = performance.now();
    document.body.dataset.ready = "1";
  }
  init();
})();
