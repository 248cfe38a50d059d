// Small DOM and formatting helpers, and the spend chart (inline SVG: nothing to load).
export const PROVIDERS = ["local", "runpod", "replicate", "veo"];
const SVG = "http://www.w3.org/2000/svg";

export function providerColour(provider) { return `var(--p-${provider}, #888)`; }

// h("tag", {attr: value, style: {...}}, ...children): children are nodes, strings, or arrays of them.
export function h(tag, attrs = {}, ...children) {
  const svg = ["svg", "rect", "line", "text", "g", "title", "polyline"].includes(tag);
  const el = svg ? document.createElementNS(SVG, tag) : document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "style") Object.assign(el.style, value);
    else if (name === "class" && !svg) el.className = value;
    else if (value === true) {
      el.setAttribute(name, "");
      if (name in el && typeof el[name] === "boolean") el[name] = true;
    } else el.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === "") continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export function money(value) {
  if (value === null || value === undefined || value === "") return "—";
  const n = Number(value);
  return `$${n.toFixed(n !== 0 && Math.abs(n) < 1 ? 4 : 2)}`;
}

export function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return `${d.toISOString().slice(0, 10)} ${d.toISOString().slice(11, 19)} UTC`;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "—";
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  if (seconds < 3600) return `${(seconds / 60).toFixed(1)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

export function badge(value, prefix = "s") {
  return h("span", { class: `badge ${prefix}-${value}` }, value);
}

// columns: strings or {label, num, hide}; rows: arrays of cells (string or node), with an optional className.
export function table(columns, rows, { id, caption } = {}) {
  const cols = columns.map((c) => (typeof c === "string" ? { label: c } : c));
  const cls = (c) => [c.num ? "num" : "", c.hide ? "hide-narrow" : ""].join(" ").trim() || null;
  return h("div", { class: "table-wrap" }, h("table", { id },
    caption ? h("caption", { class: "small muted", style: { textAlign: "left", captionSide: "bottom", paddingTop: "6px" } }, caption) : null,
    h("thead", {}, h("tr", {}, ...cols.map((c) => h("th", { scope: "col", class: cls(c) }, c.label)))),
    h("tbody", {}, ...rows.map((row) => h("tr", { class: row.className || null },
      ...row.map((cell, i) => h("td", { class: cls(cols[i]) }, cell)))))));
}

export function flash(message) {
  const box = document.getElementById("flash");
  const item = h("div", {}, message);
  box.append(item);
  setTimeout(() => item.remove(), 6000);
}

// Cumulative spend this month, stacked by provider for each day, against a budget's limit and its thresholds.
export function spendChart(days, series, budget) {
  // Drawn at the width it will have, so its labels stay legible on a phone.
  const room = (document.getElementById("main") || document.body).clientWidth - 60;
  const W = Math.round(Math.max(320, Math.min(760, room))); const H = W < 500 ? 220 : 260; const L = 56; const R = 12; const T = 12; const B = 34;
  const cumulative = series.map((s) => { let run = 0; return s.values.map((v) => (run += v)); });
  const totals = days.map((_, i) => cumulative.reduce((sum, c) => sum + c[i], 0));
  const limit = budget ? Number(budget.limit_usd) : 0;
  const top = Math.max(...totals, limit, 0.01) * 1.08;
  const x = (i) => L + ((W - L - R) * i) / days.length;
  const y = (v) => T + (H - T - B) * (1 - v / top);
  const bw = Math.max(2, ((W - L - R) / days.length) * 0.7);
  const kids = [h("title", {}, "Cumulative spend this month by provider, against the budget")];
  for (let k = 0; k <= 4; k++) {
    const v = (top * k) / 4;
    kids.push(h("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#e3e7ec" }),
      h("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, `$${v < 10 ? v.toFixed(2) : v.toFixed(0)}`));
  }
  days.forEach((day, i) => {
    let base = 0;
    series.forEach((s, p) => {
      const v = cumulative[p][i];
      if (v > 0) {
        kids.push(h("rect", { x: x(i) + 1, y: y(base + v), width: bw, height: Math.max(0.5, y(base) - y(base + v)), style: { fill: providerColour(s.provider) }, "data-provider": s.provider },
          h("title", {}, `${day} ${s.provider}: $${v.toFixed(4)} so far this month`)));
      }
      base += v;
    });
    if (i % Math.ceil(days.length / (W < 500 ? 5 : 10)) === 0 || i === days.length - 1) {
      kids.push(h("text", { x: x(i) + bw / 2, y: H - B + 16, "text-anchor": "middle" }, day.slice(5)));
    }
  });
  if (budget && limit > 0) {
    for (const t of budget.thresholds) {
      if (t >= 1) continue;
      kids.push(h("line", { x1: L, x2: W - R, y1: y(limit * t), y2: y(limit * t), stroke: "#a15c00", "stroke-dasharray": "4 4", class: "threshold" }),
        h("text", { x: W - R - 4, y: y(limit * t) - 4, "text-anchor": "end" }, `${Math.round(t * 100)} %`));
    }
    kids.push(h("line", { x1: L, x2: W - R, y1: y(limit), y2: y(limit), stroke: "#b42318", "stroke-width": 2, class: "budget-line" }),
      h("text", { x: W - R - 4, y: y(limit) - 4, "text-anchor": "end" }, `${budget.scope} limit $${limit.toFixed(2)}`));
  }
  kids.push(h("line", { x1: L, x2: W - R, y1: y(0), y2: y(0), stroke: "#8a94a3" }));
  return h("svg", { class: "chart", id: "spend-chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "Cumulative spend by provider per day against the budget" }, ...kids);
}
