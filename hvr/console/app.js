// hvr console: plain ES modules, no framework, no remote assets. Hash routes (#/jobs, #/jobs/ID, #/new, #/spend,
// #/campaigns, #/campaigns/ID, #/providers); everything comes from the public API with the pasted key.
import { api, ApiError, forgetKey, getKey, setKey, upload } from "./api.js";
import { h, money, when, duration, badge, table, flash, spendChart, PROVIDERS, providerColour } from "./ui.js";

const main = document.getElementById("main");
const TERMINAL = new Set(["succeeded", "failed", "cancelled", "expired", "rejected"]);
let timers = [];  // polls of the page on screen, stopped when it changes

function stopTimers() { timers.forEach(clearTimeout); timers = []; }
function later(fn, ms) { timers.push(setTimeout(fn, ms)); }

function show(...nodes) {
  main.replaceChildren(...nodes);
}

function failure(err) {
  const node = h("p", { class: "error", role: "alert" }, err instanceof ApiError ? err.message : String(err));
  if (err instanceof ApiError && (err.status === 401 || (err.status === 403 && err.body && err.body.message))) {
    forgetKey();
    stopTimers();
    setTimeout(() => keyPage(err.message), 0);
  }
  return node;
}

// ------------------------------------------------------------------------------------------------------ key entry

function keyPage(message) {
  document.getElementById("nav").hidden = true;
  document.getElementById("signout").hidden = true;
  const input = h("input", { id: "key", type: "password", autocomplete: "off", spellcheck: "false", required: true });
  const status = h("div", { id: "key-status", role: "alert" }, message ? h("p", { class: "error" }, message) : "");
  const form = h("form", { class: "card keybox", "aria-labelledby": "key-title" },
    h("h1", { id: "key-title" }, "hvr console"),
    h("p", { class: "muted" }, "Paste an API key (hvr dev prints one). It stays in this browser tab only."),
    h("label", { for: "key" }, "API key"), input,
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Open")), status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = input.value.trim();
    if (!key) return;
    status.replaceChildren(h("p", { class: "muted" }, "Checking…"));
    try {
      await api("/v1/jobs", { query: { limit: 1 }, key });
      setKey(key);
      if (!location.hash || location.hash === "#/") location.hash = "#/jobs"; else route();
    } catch (err) {
      status.replaceChildren(h("p", { class: "error", id: "key-error" }, err.message));
    }
  });
  show(form);
  input.focus();
}

// ----------------------------------------------------------------------------------------------------------- jobs

const STATUSES = ["accepted", "routed", "submitted", "running", "succeeded", "failed", "cancelled", "expired", "rejected"];

function turnaround(job) {
  if (!TERMINAL.has(job.status)) return null;
  return (Date.parse(job.updated_at) - Date.parse(job.created_at)) / 1000;
}
function chosenOf(job) {
  const attempts = job.attempts || [];
  const last = attempts[attempts.length - 1];
  if (last) return { offer: last.offer, provider: last.provider };
  const chosen = job.routing && job.routing.chosen;
  return chosen ? { offer: chosen.offer, provider: chosen.provider } : { offer: null, provider: null };
}

async function listJobs(filters) {
  const query = { status: filters.status, campaign_id: filters.campaign, limit: 200 };
  const extra = { provider: filters.provider, offer: filters.offer, from: filters.from, to: filters.to };
  let page;
  let refused = null;
  try {
    page = await api("/v1/jobs", { query: { ...query, ...extra } });
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 400 || !Object.values(extra).some(Boolean)) throw err;
    refused = err.message;  // an API without those filters (or refusing one): they apply below, and we say so
    page = await api("/v1/jobs", { query });
  }
  const items = page.items.filter((job) => {
    const at = chosenOf(job);
    const day = job.created_at.slice(0, 10);
    return (!filters.provider || at.provider === filters.provider) && (!filters.offer || at.offer === filters.offer)
      && (!filters.from || day >= filters.from) && (!filters.to || day <= filters.to);
  });
  return { items, refused };
}

async function jobsPage(params) {
  const filters = Object.fromEntries(params);
  const field = (name, label, control) => h("div", {}, h("label", { for: `f-${name}` }, label), control);
  const select = (name, options) => h("select", { id: `f-${name}`, name },
    h("option", { value: "" }, "any"), ...options.map((o) => h("option", { value: o, selected: filters[name] === o }, o)));
  const input = (name, type = "text") => h("input", { id: `f-${name}`, name, type, value: filters[name] || "" });
  const form = h("form", { class: "card", "aria-label": "Filter jobs" },
    h("div", { class: "fields" },
      field("status", "Status", select("status", STATUSES)),
      field("provider", "Provider", select("provider", PROVIDERS)),
      field("offer", "Offer", input("offer")),
      field("campaign", "Campaign id", input("campaign")),
      field("from", "From (UTC day)", input("from", "date")),
      field("to", "To (UTC day)", input("to", "date"))),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Filter"),
      h("a", { href: "#/jobs" }, "Clear"), h("a", { href: "#/new" }, "New video…")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) data.set(k, v);
    location.hash = `#/jobs?${data}`;
  });
  const body = h("div", { "aria-live": "polite" }, h("p", { class: "muted" }, "Loading…"));
  show(h("h1", {}, "Jobs"), form, body);
  const refresh = async () => {
    try {
      const { items: jobs, refused } = await listJobs(filters);
      body.replaceChildren(refused ? h("p", { class: "notice" }, `The API refused a filter (${refused}); filtered here instead.`) : "",
        jobs.length === 0 ? h("p", { class: "muted" }, "No jobs match.") : table(
        ["Job", "Status", "Where", { label: "Estimated", num: true }, { label: "Actual", num: true },
          { label: "Turnaround", num: true }, { label: "Created", hide: true }, { label: "Prompt", hide: true }],
        jobs.map((job) => {
          const at = chosenOf(job);
          return [h("a", { href: `#/jobs/${job.id}` }, job.id), badge(job.status), at.offer || "—",
            money(job.cost && job.cost.estimated_usd), money(job.cost && job.cost.actual_usd),
            duration(turnaround(job)), when(job.created_at), (job.request.prompt || "").slice(0, 60)];
        }), { id: "jobs-table", caption: `${jobs.length} jobs, newest first` }));
      if (jobs.some((j) => !TERMINAL.has(j.status))) later(refresh, 2000);
    } catch (err) { body.replaceChildren(failure(err)); }
  };
  refresh();
}

function candidateTable(decision) {
  const chosen = decision.chosen && decision.chosen.offer;
  const fallbacks = new Set((decision.fallbacks || []).map((f) => f.offer || f));
  const rows = decision.candidates.map((c) => {
    let why;
    if (c.offer === chosen) why = h("span", {}, h("strong", {}, "chosen: "), decision.chosen.reason || "");
    else if (c.feasible) why = `feasible, ranked lower (score ${c.score ?? "—"})${fallbacks.has(c.offer) ? "; fallback" : ""}`;
    else why = h("ul", { class: "reasons" }, ...c.reasons.map((r) => h("li", {}, r)));
    const tr = [c.offer, c.feasible ? "yes" : "no", money(c.estimated_cost_usd), money(c.estimated_cost_p90_usd),
      c.estimated_ready_at ? when(c.estimated_ready_at) : "—", c.score == null ? "—" : c.score.toFixed(3), why];
    tr.className = c.offer === chosen ? "chosen" : c.feasible ? "" : "infeasible";
    return tr;
  });
  return table(["Offer", "Feasible", { label: "Cost", num: true }, { label: "p90", num: true }, "Ready by",
    { label: "Score", num: true }, "Why here / why not there"], rows, { id: "candidates", caption: "Every offer of the decision" });
}

async function jobPage(id) {
  const body = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  show(h("p", {}, h("a", { href: "#/jobs" }, "← Jobs")), h("h1", {}, `Job ${id}`), body);
  let videoShown = null;
  const refresh = async () => {
    let job;
    try { job = await api(`/v1/jobs/${encodeURIComponent(id)}`); } catch (err) { body.replaceChildren(failure(err)); return; }
    const parts = [];
    const summary = h("dl", { class: "kv" },
      h("dt", {}, "Status"), h("dd", {}, badge(job.status), job.progress != null && !TERMINAL.has(job.status)
        ? ` ${Math.round(job.progress * 100)} %` : ""),
      h("dt", {}, "Prompt"), h("dd", {}, job.request.prompt || "—"),
      h("dt", {}, "Asked"), h("dd", {}, `${job.request.mode}, ${job.request.resolution} ${job.request.aspect_ratio}, `
        + `${job.request.duration_s} s, ${job.request.quality}, cap ${money(job.request.max_cost_usd)}`),
      h("dt", {}, "Cost"), h("dd", { id: "job-cost" }, `estimated ${money(job.cost && job.cost.estimated_usd)}, actual ${money(job.cost && job.cost.actual_usd)}`),
      h("dt", {}, "Created"), h("dd", {}, when(job.created_at)),
      h("dt", {}, "Deadline"), h("dd", {}, when(job.deadline)),
      h("dt", {}, "Turnaround"), h("dd", {}, duration(turnaround(job))),
      ...(job.request.campaign_id ? [h("dt", {}, "Campaign"), h("dd", {}, h("a", { href: `#/campaigns/${job.request.campaign_id}` }, job.request.campaign_id))] : []),
      ...(job.error ? [h("dt", {}, "Error"), h("dd", { class: "error" }, `${job.error.code || ""} ${job.error.message || JSON.stringify(job.error)}`)] : []));
    const actions = h("div", { class: "actions" });
    if (!TERMINAL.has(job.status)) {
      const cancel = h("button", { type: "button", class: "danger", id: "cancel" }, "Cancel job");
      cancel.addEventListener("click", async () => {
        if (!confirm(`Cancel ${job.id}?`)) return;
        cancel.disabled = true;
        try { await api(`/v1/jobs/${encodeURIComponent(id)}/cancel`, { method: "POST" }); flash("Cancel asked."); stopTimers(); refresh(); }
        catch (err) { flash(err.message); cancel.disabled = false; }
      });
      actions.append(cancel);
    }
    parts.push(h("div", { class: "card" }, summary, actions));
    if (job.output && job.output.url) {
      if (!videoShown) {
        videoShown = h("video", { id: "output", controls: true, preload: "auto", muted: true, playsinline: true, src: job.output.url,
          "aria-label": "The rendered video" });
      }
      parts.push(h("div", { class: "card" }, h("h2", {}, "Video"), videoShown,
        h("p", { class: "small muted" }, `${job.output.width}×${job.output.height}, ${job.output.frames} frames at ${job.output.fps} fps, `
          + `${(job.output.bytes / 1e6).toFixed(2)} MB — `, h("a", { href: job.output.url, download: `${job.id}.mp4` }, "download"))));
    }
    if (job.routing) {
      parts.push(h("div", { class: "card" }, h("h2", {}, "Where, and why"),
        job.routing.chosen ? h("p", {}, h("strong", {}, job.routing.chosen.offer), ` — ${job.routing.chosen.reason}`)
          : h("p", {}, (job.routing.reasons || []).join("; ") || "no offer chosen"), candidateTable(job.routing)));
    }
    const attempts = job.attempts || [];
    parts.push(h("div", { class: "card" }, h("h2", {}, "Attempts and ledger"), attempts.length === 0 ? h("p", { class: "muted" }, "No attempt yet.") :
      table(["#", "Offer", "Target", "Outcome", "Billed", { label: "Estimated", num: true }, { label: "Actual", num: true }, "Started", "Ended"],
        attempts.map((a) => [String(a.n), a.offer, a.target || "—", h("span", {}, badge(a.status), a.reason ? ` ${a.reason}` : ""),
          a.billed ? Object.entries(a.billed).map(([k, v]) => `${k} ${typeof v === "number" ? v.toFixed(1) : v}`).join(", ") : "—",
          money(a.estimated_cost_usd), money(a.actual_cost_usd), when(a.started_at), when(a.ended_at)]),
        { id: "attempts", caption: "One ledger row per attempt: what each was billed" })));
    body.replaceChildren(...parts);
    if (!TERMINAL.has(job.status)) later(refresh, 1000);
  };
  refresh();
}

// ------------------------------------------------------------------------------------------- new video / quotes

const MODES = ["t2v", "i2v", "s2v", "camera", "inpaint", "r2v", "flf2v", "animate", "extend"];
const RESOLUTIONS = ["480p", "720p", "1080p", "512x512"];

function newPage() {
  const f = (name, label, ...controls) => h("div", {}, h("label", { for: `n-${name}` }, label), ...controls);
  // A file's upload state sits beside its own input: the quote line is rewritten by every quote, which would erase it.
  const fileField = (name, label, accept) => f(name, label, h("input", { id: `n-${name}`, name, type: "file", accept }),
    h("span", { class: "muted small", id: `n-${name}-state`, "aria-live": "polite" }, ""));
  const sel = (name, options, value) => h("select", { id: `n-${name}`, name }, ...options.map((o) => h("option", { value: o, selected: o === value }, o)));
  const form = h("form", { class: "card", id: "new-form", "aria-label": "A video request" },
    h("div", { class: "fields" },
      h("div", { class: "wide" }, h("label", { for: "n-prompt" }, "Prompt"),
        h("textarea", { id: "n-prompt", name: "prompt", required: true }, "a paper boat drifting across a puddle, soft morning light")),
      f("mode", "Mode", sel("mode", MODES, "t2v")),
      f("resolution", "Resolution", h("input", { id: "n-resolution", name: "resolution", value: "512x512", list: "n-res-list" })),
      f("aspect_ratio", "Aspect ratio", sel("aspect_ratio", ["16:9", "9:16", "1:1"], "1:1")),
      f("duration_s", "Duration (s)", h("input", { id: "n-duration_s", name: "duration_s", type: "number", min: "0.5", step: "0.5", value: "2" })),
      f("quality", "Quality", sel("quality", ["draft", "standard", "premium"], "draft")),
      f("priority", "Priority", sel("priority", ["interactive", "batch"], "interactive")),
      f("deadline_s", "Deadline (s from now)", h("input", { id: "n-deadline_s", name: "deadline_s", type: "number", min: "1", value: "7200" })),
      f("max_cost_usd", "Cost cap (USD)", h("input", { id: "n-max_cost_usd", name: "max_cost_usd", inputmode: "decimal", value: "0.50" })),
      fileField("image", "Image", "image/*"),
      fileField("audio", "Audio", "audio/*"),
      fileField("mask", "Mask", "image/*")),
    h("datalist", { id: "n-res-list" }, ...RESOLUTIONS.map((r) => h("option", { value: r }))),
    h("div", { class: "actions" }, h("button", { type: "submit", id: "submit" }, "Submit"),
      h("span", { class: "muted small", id: "quote-state", "aria-live": "polite" }, "")));
  const quoteBox = h("div", { id: "quote", "aria-live": "polite" });
  show(h("h1", {}, "New video"), form, h("h2", {}, "Every offer for this request"), quoteBox);
  const refs = {};  // field -> s3:// ref, once uploaded
  const uploading = {};  // field -> the upload under way, until it ends
  const state = form.querySelector("#quote-state");

  const requestOf = () => {
    const data = new FormData(form);
    const body = { mode: data.get("mode"), prompt: data.get("prompt"), resolution: data.get("resolution"),
      aspect_ratio: data.get("aspect_ratio"), duration_s: Number(data.get("duration_s")), quality: data.get("quality"),
      priority: data.get("priority") };
    if (data.get("deadline_s")) body.deadline_s = Number(data.get("deadline_s"));
    if (data.get("max_cost_usd")) body.max_cost_usd = String(data.get("max_cost_usd"));
    for (const [name, ref] of Object.entries(refs)) body[name] = ref;
    return body;
  };
  let seq = 0;
  let timer = null;
  const quote = async () => {
    const mine = ++seq;
    state.textContent = "Quoting…";
    try {
      const decision = await api("/v1/quotes", { method: "POST", body: requestOf() });
      if (mine !== seq) return;
      state.textContent = "";
      const chosen = decision.chosen;
      quoteBox.replaceChildren(h("div", { class: "card" },
        chosen ? h("p", { class: "notice" }, "Would go to ", h("strong", {}, chosen.offer), `: ${money(chosen.estimated_cost_usd)}, ready by ${when(chosen.estimated_ready_at)} — ${chosen.reason}`)
          : h("p", { class: "error" }, `No offer can take it: ${(decision.reasons || []).join("; ")}`),
        candidateTable(decision)));
    } catch (err) {
      if (mine !== seq) return;
      state.textContent = "";
      quoteBox.replaceChildren(failure(err));
    }
  };
  const soon = () => { clearTimeout(timer); timer = setTimeout(quote, 350); };
  form.addEventListener("input", (event) => { if (event.target.type !== "file") soon(); });
  form.addEventListener("change", async (event) => {
    const input = event.target;
    if (input.type !== "file") return;
    delete refs[input.name];
    delete uploading[input.name];
    const uploadState = form.querySelector(`#n-${input.name}-state`);
    const file = input.files[0];
    uploadState.textContent = "";
    if (!file) { soon(); return; }
    uploadState.textContent = `Uploading ${file.name}…`;
    const mine = uploading[input.name] = {};  // a file chosen later wins over an upload still under way
    try {
      const ref = await upload(file);
      if (uploading[input.name] !== mine) return;
      delete uploading[input.name];
      refs[input.name] = ref; uploadState.textContent = `${file.name} uploaded`; soon();
    } catch (err) {
      if (uploading[input.name] !== mine) return;
      delete uploading[input.name];
      uploadState.textContent = ""; flash(err.message); input.value = "";
    }
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    // Sent now, the request would go without the file and be refused for it, or rendered without it.
    if (Object.keys(uploading).length) { flash(`Wait for ${Object.keys(uploading).join(", ")} to finish uploading.`); return; }
    const button = form.querySelector("#submit");
    button.disabled = true;
    try {
      const job = await api("/v1/jobs", { method: "POST", body: requestOf() });
      location.hash = `#/jobs/${job.id}`;
    } catch (err) { quoteBox.replaceChildren(failure(err)); button.disabled = false; }
  });
  quote();
}

// ---------------------------------------------------------------------------------------------------------- spend

async function spendPage() {
  const body = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  show(h("h1", {}, "Spend"), body);
  const today = new Date().toISOString().slice(0, 10);
  const first = `${today.slice(0, 8)}01`;
  const soft = (p) => p.catch((err) => ({ error: err }));
  const [budgets, byProvider, alerts, tco, scorecard, ...daily] = await Promise.all([
    soft(api("/v1/budgets")), soft(api("/v1/costs", { query: { group_by: "provider", from: first, to: today } })),
    soft(api("/v1/alerts", { query: { limit: 50 } })), soft(api("/v1/costs/tco", { query: { from: first, to: today } })),
    soft(api("/v1/scorecard", { query: { from: first, to: today } })),
    ...PROVIDERS.map((p) => soft(api("/v1/costs", { query: { group_by: "day", provider: p, from: first, to: today } })))]);
  const parts = [];
  const budgetList = budgets.error ? [] : budgets.budgets;
  // The chart: cumulative spend this month, stacked by provider per day, against each budget's line and thresholds.
  const days = [];
  for (let d = new Date(`${first}T00:00:00Z`); d.toISOString().slice(0, 10) <= today; d.setUTCDate(d.getUTCDate() + 1)) days.push(d.toISOString().slice(0, 10));
  const series = PROVIDERS.map((p, i) => {
    const groups = daily[i].error ? [] : daily[i].groups;
    const perDay = Object.fromEntries(groups.map((g) => [g.key, Number(g.actual_usd)]));
    return { provider: p, values: days.map((d) => perDay[d] || 0) };
  });
  const chartBudget = budgetList.find((b) => b.scope === "global") || budgetList[0];
  parts.push(h("div", { class: "card" }, h("h2", {}, "Spend this month, by provider per day"),
    spendChart(days, series, chartBudget),
    h("div", { class: "legend" }, ...PROVIDERS.map((p) => h("span", {}, h("i", { style: { background: providerColour(p) } }), p)),
      chartBudget ? h("span", {}, `— ${chartBudget.scope} limit ${money(chartBudget.limit_usd)}, thresholds ${chartBudget.thresholds.map((t) => `${t * 100}%`).join(", ")}`) : ""),
    byProvider.error ? failure(byProvider.error) : table(["Provider", { label: "Videos", num: true }, { label: "Actual", num: true },
      { label: "Estimated", num: true }, { label: "Per video", num: true }],
    byProvider.groups.map((g) => [g.key, String(g.videos), money(g.actual_usd), money(g.estimated_usd),
      g.videos ? money(Number(g.actual_usd) / g.videos) : "—"]), { caption: `Total ${money(byProvider.total_usd)}, ${byProvider.from} to ${byProvider.to}` })));
  parts.push(h("div", { class: "card" }, h("h2", {}, "Budgets"), budgets.error ? failure(budgets.error) : budgetList.length === 0
    ? h("p", { class: "muted" }, "No budget set (admin: PUT /v1/budgets/{scope}).")
    : table(["Scope", "Period", "Used", { label: "Spent", num: true }, { label: "Reserved", num: true }, { label: "Limit", num: true },
      "Thresholds", "Spend mode"], budgetList.map((b) => {
      const used = Number(b.limit_usd) > 0 ? (Number(b.spent_usd) + Number(b.reserved_usd)) / Number(b.limit_usd) : 0;
      const bar = h("div", { class: "bar", role: "img", "aria-label": `${Math.round(used * 100)} % used` },
        h("span", { style: { width: `${Math.min(100, used * 100)}%`, background: used >= 1 ? "var(--bad)" : used >= 0.8 ? "var(--warn)" : "var(--ok)" } }));
      return [b.scope, b.period, bar, money(b.spent_usd), money(b.reserved_usd), money(b.limit_usd),
        b.thresholds.map((t) => `${Math.round(t * 100)}%`).join(" "), badge(b.spend_mode, "b")];
    }), { id: "budgets" })));
  parts.push(h("div", { class: "card" }, h("h2", {}, "Alerts"), alerts.error ? failure(alerts.error) : alerts.alerts.length === 0
    ? h("p", { class: "muted" }, "No alert yet.")
    : table(["When", "Scope", "Period", "What", { label: "Spent", num: true }, { label: "Limit", num: true }, "Source"],
      alerts.alerts.map((a) => [when(a.at), a.scope, a.period,
        a.kind === "spend_mode" ? h("span", {}, "spend mode → ", badge(a.mode, "b")) : `threshold ${Math.round((a.threshold || 0) * 100)} %`,
        money(a.spent_usd), money(a.limit_usd), a.source]), { id: "alerts" })));
  if (!tco.error) {
    parts.push(h("div", { class: "card" }, h("h2", {}, "Against the alternatives (TCO)"),
      table(["Option", { label: "Videos", num: true }, { label: "Total", num: true }, { label: "Per video", num: true },
        { label: "Monthly at 1,000", num: true }, { label: "Not possible", num: true }],
      tco.options.map((o) => [o.option, String(o.videos), money(o.total_usd), money(o.per_video_usd), money(o.monthly_usd_at_1000), String(o.not_possible)]),
      { id: "tco" }),
      tco.local_gpu ? h("p", { class: "small muted" }, `Local GPU: fixed ${money(tco.local_gpu.fixed_usd)} (depreciation), variable ${money(tco.local_gpu.variable_usd)}, `
        + `utilization ${(tco.local_gpu.utilization * 100).toFixed(1)} %`) : ""));
  } else parts.push(h("div", { class: "card" }, h("h2", {}, "TCO"), failure(tco.error)));
  parts.push(h("div", { class: "card" }, h("h2", {}, "Scorecard"), scorecard.error ? failure(scorecard.error)
    : table(["Metric", "Target", { label: "Value", num: true }, "Verdict", { label: "Detail", hide: true }], scorecard.metrics.map((m) => [m.name, m.target,
      m.value == null ? "—" : String(m.value), badge(m.verdict, "v"), m.detail]), { id: "scorecard" })));
  body.replaceChildren(...parts);
}

// ------------------------------------------------------------------------------------------------------ campaigns

async function campaignsPage() {
  const input = h("input", { id: "c-id", name: "id", required: true });
  const form = h("form", { class: "card", "aria-label": "Open a campaign" }, h("label", { for: "c-id" }, "Campaign id"), input,
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Open")));
  form.addEventListener("submit", (e) => { e.preventDefault(); location.hash = `#/campaigns/${encodeURIComponent(input.value.trim())}`; });
  const list = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  show(h("h1", {}, "Campaigns"), form, list);
  try {
    const page = await api("/v1/jobs", { query: { limit: 500 } });
    const ids = [...new Set(page.items.map((j) => j.request.campaign_id).filter(Boolean))];
    list.replaceChildren(ids.length === 0 ? h("p", { class: "muted" }, "No campaign among the recent jobs.")
      : h("ul", {}, ...ids.map((id) => h("li", {}, h("a", { href: `#/campaigns/${encodeURIComponent(id)}` }, id)))));
  } catch (err) { list.replaceChildren(failure(err)); }
}

async function campaignPage(id) {
  const body = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  show(h("p", {}, h("a", { href: "#/campaigns" }, "← Campaigns")), h("h1", {}, `Campaign ${id}`), body);
  const refresh = async () => {
    let c; let jobs;
    try {
      c = await api(`/v1/campaigns/${encodeURIComponent(id)}`);
      jobs = (await api("/v1/jobs", { query: { campaign_id: c.id, limit: 500 } })).items;
    } catch (err) { body.replaceChildren(failure(err)); return; }
    const n = c.counts;
    const seg = (count, colour, label) => h("span", { title: `${label}: ${count}`, style: { width: `${n.total ? (100 * count) / n.total : 0}%`, background: colour } });
    const done = n.succeeded + n.failed + n.rejected + n.expired + n.cancelled;
    const links = jobs.filter((j) => j.output && j.output.url);
    const manifest = links.map((j) => `${j.id}\t${j.output.url}`).join("\n");
    const blob = URL.createObjectURL(new Blob([manifest + "\n"], { type: "text/tab-separated-values" }));
    body.replaceChildren(
      h("div", { class: "card" }, h("dl", { class: "kv" },
        h("dt", {}, "Status"), h("dd", {}, badge(c.status)), h("dt", {}, "Name"), h("dd", {}, c.name),
        h("dt", {}, "Progress"), h("dd", {}, h("div", { class: "bar", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": String(n.total), "aria-valuenow": String(done), "aria-label": "Campaign progress" },
          seg(n.succeeded, "var(--ok)", "succeeded"), seg(n.running, "var(--warn)", "running"), seg(n.failed + n.rejected + n.expired + n.cancelled, "var(--bad)", "ended otherwise")),
        h("span", { class: "small muted" }, `${n.succeeded} succeeded, ${n.running} running, ${n.accepted} waiting, ${n.failed} failed, ${n.rejected} rejected, ${n.expired} expired, ${n.cancelled} cancelled of ${n.total}`)),
        h("dt", {}, "Spent"), h("dd", {}, `${money(c.spent_usd)} of ${c.budget_usd ? money(c.budget_usd) : "no budget"}; projected ${money(c.projected_total_usd)}`),
        h("dt", {}, "Projected finish"), h("dd", {}, `${when(c.projected_finish_at)} (deadline ${when(c.deadline)})`),
        h("dt", {}, "Offer mix"), h("dd", {}, Object.entries(c.offer_mix).map(([k, v]) => `${k} ×${v}`).join(", ") || "—"))),
      h("div", { class: "card" }, h("h2", {}, `Items at risk (${c.items_at_risk_total})`), c.items_at_risk.length === 0 ? h("p", { class: "muted" }, "None.")
        : table(["Item", "Job", "Offer", "Projected finish", "Why"], c.items_at_risk.map((r) => [r.item_id, h("a", { href: `#/jobs/${r.job_id}` }, r.job_id), r.offer || "—", when(r.projected_finish_at), r.reason]))),
      h("div", { class: "card" }, h("h2", {}, `Invalid lines (${c.invalid_items_total})`), c.invalid_items.length === 0 ? h("p", { class: "muted" }, "None.")
        : table([{ label: "Line", num: true }, "Item", "Field", "Message"], c.invalid_items.map((r) => [String(r.line), r.item_id, r.field, r.message]))),
      h("div", { class: "card" }, h("h2", {}, `Outputs (${links.length})`),
        links.length ? h("p", {}, h("a", { href: blob, download: `${c.name}-manifest.tsv` }, "Download the manifest of presigned links"), h("span", { class: "small muted" }, " (they expire: reload for fresh ones)")) : "",
        h("ul", {}, ...links.map((j) => h("li", {}, h("a", { href: j.output.url }, `${j.id}.mp4`), ` ${j.request.prompt.slice(0, 60)}`)))));
    if (!["succeeded", "failed", "completed", "cancelled", "expired"].includes(c.status) && done < n.total) later(refresh, 3000);
  };
  refresh();
}

// ------------------------------------------------------------------------------------------------------ providers

async function providersPage() {
  const body = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  show(h("h1", {}, "Providers and GPU"), body);
  try {
    const { offers } = await api("/v1/providers");
    const hrs = (s) => (s == null ? "—" : duration(s));
    const parts = [h("div", { class: "card" }, table(["Offer", "Health", "Circuit", { label: "Queue", num: true },
      { label: "Learned p50", num: true }, { label: "Catalog p50", num: true }, { label: "Runs", num: true }, "Quality (learned)", { label: "Stars", num: true }],
    offers.map((o) => {
      const l = o.learned || {};
      return [o.id, h("span", { class: `badge ${o.health.up ? "c-closed" : "c-open"}` }, o.health.up ? "up" : "down"), badge(o.health.circuit, "c"), String(o.health.queue_depth ?? "—"),
        hrs(l.p50_s), hrs(l.catalog_p50_s), String(l.runs ?? "—"), l.quality ? l.quality.summary : "—", String(o.quality)];
    }), { id: "offers", caption: "Every offer of the catalog: health now, learned against catalog figures" }))];
    try {
      const agents = await api("/v1/agents");
      parts.push(h("div", { class: "card" }, h("h2", {}, "GPU boxes"), agents.agents.length === 0 ? h("p", { class: "muted" }, "No box has registered.")
        : table(["Box", "State", "GPU", { label: "Slots", num: true }, { label: "Queue", num: true }, { label: "Busy now", num: true },
          { label: "Utilization", num: true }, { label: "vs fleet", num: true }, "Models", "Last seen"], agents.agents.map((a) => {
          const r = a.registration || {};
          const pct = (v) => (v == null ? "—" : `${Math.round(v * 100)} %`);
          return [a.name, badge(a.state), `${r.gpu || "—"}${r.vram_mb ? `, ${Math.round(r.vram_mb / 1024)} GB` : ""}`, String(r.slots ?? "—"),
            String((r.queue || []).length), pct(a.busy_now), pct(a.utilization), a.time_vs_fleet == null ? "—" : `×${a.time_vs_fleet.toFixed(2)}`,
            (r.models || []).join(", "), when(a.last_seen)];
        }), { id: "agents" })));
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 403)) throw err;
      parts.push(h("p", { class: "muted small" }, "The GPU boxes are listed for admin keys."));
    }
    body.replaceChildren(...parts);
  } catch (err) { body.replaceChildren(failure(err)); }
}

// ---------------------------------------------------------------------------------------------------------- route

const PAGES = [
  [/^#\/jobs\/([^/?]+)$/, (m) => jobPage(decodeURIComponent(m[1])), "#/jobs"],
  [/^#\/jobs(?:\?(.*))?$/, (m) => jobsPage(new URLSearchParams(m[1] || "")), "#/jobs"],
  [/^#\/new$/, () => newPage(), "#/new"],
  [/^#\/spend$/, () => spendPage(), "#/spend"],
  [/^#\/campaigns\/([^/?]+)$/, (m) => campaignPage(decodeURIComponent(m[1])), "#/campaigns"],
  [/^#\/campaigns$/, () => campaignsPage(), "#/campaigns"],
  [/^#\/providers$/, () => providersPage(), "#/providers"],
];

function route() {
  stopTimers();
  if (!getKey()) { keyPage(); return; }
  document.getElementById("nav").hidden = false;
  document.getElementById("signout").hidden = false;
  const hash = location.hash || "#/jobs";
  for (const [pattern, page, tab] of PAGES) {
    const m = hash.match(pattern);
    if (m) {
      for (const a of document.querySelectorAll("#nav a")) {
        if (a.getAttribute("href") === tab) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
      }
      page(m);
      main.focus({ preventScroll: true });
      return;
    }
  }
  location.hash = "#/jobs";
}

document.getElementById("signout").addEventListener("click", () => { forgetKey(); stopTimers(); keyPage(); });
window.addEventListener("hashchange", route);
route();
