/* kefu console: plain JavaScript over kefu's HTTP API, no framework, no build step.
 * Everything a customer wrote is put on the page as text (textContent), never as markup.
 * The staff token is kept in sessionStorage (this tab only) and sent as a header, never in a URL. */
"use strict";

(() => {
  const I18N = window.KEFU_I18N;
  const lang = (navigator.languages && navigator.languages[0]) || navigator.language || "en";
  const L = lang.toLowerCase().startsWith("zh") ? "zh" : "en";
  const words = I18N[L];
  document.documentElement.lang = L === "zh" ? "zh-CN" : "en";
  document.title = words.title;

  function t(key, vars) {
    let text = words[key] !== undefined ? words[key] : (I18N.en[key] !== undefined ? I18N.en[key] : key);
    for (const [k, v] of Object.entries(vars || {})) text = text.split("{" + k + "}").join(String(v));
    return text;
  }
  const tv = (group, value) => (value === null || value === undefined) ? "" : t(group + "." + value) === group + "." + value ? String(value) : t(group + "." + value);

  /* h("tag", {attr: value, on: {click: fn}}, children...): children are nodes or text */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "on") for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
      else if (k === "class") el.className = v;
      else if (k === "dataset") Object.assign(el.dataset, v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat(Infinity)) if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
    return el;
  }

  const session = {
    get token() { return sessionStorage.getItem("kefu.token"); },
    set token(v) { v ? sessionStorage.setItem("kefu.token", v) : sessionStorage.removeItem("kefu.token"); },
    get lastEventId() { return sessionStorage.getItem("kefu.lastEventId"); },
    set lastEventId(v) { sessionStorage.setItem("kefu.lastEventId", v); },
  };
  let me = null;

  class Refused extends Error {
    constructor(status, body) { super(body && body.detail || String(status)); this.status = status; this.body = body || {}; }
  }

  async function api(method, path, body) {
    const headers = {"Authorization": "Bearer " + session.token, "Accept": "application/json"};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const resp = await fetch(path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body)});
    let data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    if (resp.status === 401) { signOut(t("signed_out", {detail: data && data.detail || "401"})); throw new Refused(401, data); }
    if (!resp.ok) throw new Refused(resp.status, data);
    return data;
  }

  /* -- messages to the user ------------------------------------------------------------------ */
  function alertBox(text, kind) {
    const box = document.getElementById("alert");
    box.textContent = text || "";
    box.className = kind || "";
    box.hidden = !text;
  }
  function toast(text, kind) {
    const el = h("div", {class: "toast " + (kind || "")}, text);
    document.getElementById("toasts").append(el);
    setTimeout(() => el.remove(), 8000);
  }

  /* -- time ---------------------------------------------------------------------------------- */
  const when = (iso) => iso ? new Intl.DateTimeFormat(L === "zh" ? "zh-CN" : "en-GB",
    {month: "short", day: "numeric", hour: "2-digit", minute: "2-digit"}).format(new Date(iso)) : "";
  function span(seconds) {
    const s = Math.abs(Math.round(seconds)), d = Math.floor(s / 86400), hh = Math.floor(s % 86400 / 3600),
      mm = Math.floor(s % 3600 / 60), ss = s % 60;
    const text = d ? `${d}d ${hh}h` : hh ? `${hh}h ${String(mm).padStart(2, "0")}m` : `${mm}m ${String(ss).padStart(2, "0")}s`;
    return (seconds < 0 ? "−" : "") + text;
  }
  /* a countdown element: business time left as the API measured it, counted down while the clock runs */
  function countdown(view) {
    const el = h("span", {class: "left " + view.state, dataset: {left: view.left_seconds, running: view.running ? "1" : "", state: view.state, t0: Date.now()}});
    el.title = when(view.due);
    tick(el);
    return el;
  }
  function offerCountdown(iso) {
    const left = (new Date(iso).getTime() - Date.now()) / 1000;
    return countdown({left_seconds: Math.round(left), running: true, state: left < 30 ? "warning" : "open", due: iso});
  }
  function tick(el) {
    const left = Number(el.dataset.left) - (el.dataset.running ? (Date.now() - Number(el.dataset.t0)) / 1000 : 0);
    const state = el.dataset.state;
    let text = span(left);
    if (state === "met") text = t("met");
    else if (state === "paused") text = span(left) + " · " + t("paused");
    else if (left < 0) text = span(left) + " " + t("overdue");
    else if (!el.dataset.running) text = span(left) + " · " + t("stopped");
    el.textContent = text;
    el.classList.toggle("overdue", state !== "met" && left < 0);
  }
  setInterval(() => document.querySelectorAll("span.left").forEach(tick), 1000);

  function mainDeadline(deadlines) {
    for (const name of ["first_response", "next_response", "resolution"]) {
      const d = deadlines && deadlines[name];
      if (d && d.state !== "met") return [name, d];
    }
    return null;
  }
  const badges = (item) => [
    item.emergency ? h("span", {class: "badge emergency"}, t("emergency")) : null, " ",
    h("span", {class: "badge " + item.priority}, tv("priority", item.priority)),
  ];

  /* -- frame --------------------------------------------------------------------------------- */
  const liveLabel = h("span", {class: "live off", id: "live"}, t("live_off"));
  function frame(active) {
    const top = document.getElementById("top");
    top.replaceChildren();
    const links = [];
    if (me && me.role === "agent") links.push(["#/work", t("work")]);
    if (me && me.role !== "agent") links.push(["#/floor", t("floor")]);
    links.push(["#/search", t("search")]);
    if (me && me.role === "admin") links.push(["#/team", t("team")]);
    top.append(
      h("span", {class: "brand"}, "kefu"),
      me ? h("nav", {"aria-label": "main"}, links.map(([href, label]) =>
        h("a", {href, "aria-current": href.slice(1) === active ? "page" : null}, label))) : null,
      me ? h("span", {class: "who"}, liveLabel, h("span", {id: "whoami"}, `${me.subject} (${me.role})`),
        h("button", {type: "button", id: "signout", on: {click: () => signOut()}}, t("signout"))) : null,
    );
  }
  const main = () => document.getElementById("main");
  function show(...nodes) { main().replaceChildren(...nodes.flat(Infinity).filter((n) => n !== null && n !== undefined)); }

  /* -- sign in ------------------------------------------------------------------------------- */
  function signInView(message) {
    frame(null);
    const input = h("input", {id: "token", type: "password", autocomplete: "off", required: true, "aria-describedby": "token-help"});
    const form = h("form", {class: "card signin", id: "signin"},
      h("h1", {}, t("title")),
      h("label", {for: "token"}, t("token")), input,
      h("p", {class: "muted", id: "token-help"}, t("token_help")),
      h("button", {type: "submit", class: "primary"}, t("signin")));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      session.token = input.value.trim();
      try {
        me = await api("GET", "/v1/me");
      } catch (e) {
        session.token = null;
        alertBox(t("signin_failed", {detail: e.message}), "error");
        return;
      }
      alertBox("");
      startLive();
      location.hash = me.role === "agent" ? "#/work" : "#/floor";
      route();
    });
    show(form);
    if (message) alertBox(message, "error");
    input.focus();
  }
  function signOut(message) {
    session.token = null;
    me = null;
    stopLive();
    history.replaceState(null, "", location.pathname);
    signInView(message);
  }

  /* -- my work ------------------------------------------------------------------------------- */
  async function workView() {
    frame("/work");
    if (me.role !== "agent") return show(h("p", {class: "empty"}, t("no_agent")));
    const work = await api("GET", `/v1/agents/${encodeURIComponent(me.subject)}/work`);
    const rows = work.items.map((i) => {
      const dl = mainDeadline(i.deadlines);
      return h("tr", {class: i.emergency ? "emergency" : "", dataset: {request: i.request_id, state: i.state}},
        h("td", {}, h("a", {href: `#/requests/${i.request_id}`}, i.ref)),
        h("td", {}, badges(i), " ", h("span", {class: "subject"}, i.subject)),
        h("td", {}, tv("state", i.state)),
        h("td", {class: "hide-narrow"}, i.category),
        h("td", {}, dl ? [h("span", {class: "muted"}, t(dl[0]) + " "), countdown(dl[1])] : ""),
        h("td", {}, i.state === "offered" && i.offer_expires_at ? [offerCountdown(i.offer_expires_at), " ",
          h("button", {type: "button", class: "primary accept", dataset: {request: i.request_id},
            on: {click: () => act(i.request_id, "accept", {}, () => { location.hash = `#/requests/${i.request_id}`; })}}, t("accept"))] : ""));
    });
    show(h("h1", {}, t("work")),
      rows.length ? h("table", {id: "work"}, h("thead", {}, h("tr", {},
        [t("ref"), t("subject"), t("state"), t("category"), t("due"), t("offer_left")].map((c, n) =>
          h("th", {scope: "col", class: n === 3 ? "hide-narrow" : null}, c)))), h("tbody", {}, rows))
        : h("p", {class: "empty", id: "work"}, t("no_work")));
  }

  /* -- a request ----------------------------------------------------------------------------- */
  let shownRequest = null;
  async function requestView(id) {
    frame(null);
    shownRequest = id;
    const details = h("div", {id: "details"});
    const actions = h("aside", {class: "card actions", id: "actions", "aria-label": t("actions")});
    show(h("div", {class: "request"}, details, actions));
    await loadRequest(id, details, actions);
  }
  async function loadRequest(id, details, actions) {
    let r;
    try {
      r = await api("GET", `/v1/requests/${id}`);
    } catch (e) {
      if (e.status === 404) { details.replaceChildren(h("p", {class: "empty", id: "not-found"}, t("not_found"))); actions.remove(); return; }
      throw e;
    }
    const req = r.request, c = req.customer || {}, a = r.assignment || {};
    const item = {emergency: a.emergency, priority: r.priority};
    const facts = [
      [t("state"), tv("state", r.state)], [t("channel"), req.channel], [t("category"), a.category],
      [t("priority"), tv("priority", r.priority)], [t("department"), r.department],
      [t("co_departments"), (a.co_departments || []).join(", ")], [t("queue"), r.queue], [t("agent"), r.agent_id || "—"],
      [t("customer"), [c.name, c.tier ? `(${c.tier})` : ""].filter(Boolean).join(" ")],
      [t("phone"), c.phone], [t("email"), c.email], [t("openid"), c.wechat_openid], [t("received"), when(req.received_at)],
    ].filter(([, v]) => v);
    const clocks = Object.entries(r.deadlines || {}).map(([name, d]) => [h("dt", {}, t(name)), h("dd", {}, countdown(d))]);
    const conversation = (r.messages || []).map((m) => h("li", {class: "message " + m.direction},
      h("div", {class: "meta"}, `${tv("dir", m.direction)} · ${m.kind} · ${m.by} · ${when(m.at)}`),
      h("p", {class: "text"}, m.text)));
    const notes = (r.history || []).filter((e) => e.action === "noted" && e.detail && e.detail.text && !e.detail.to_customer)
      .map((e) => h("li", {class: "message internal"}, h("div", {class: "meta"}, `${t("kind.note")} · ${e.actor} · ${when(e.at)}`),
        h("p", {class: "text"}, e.detail.text)));
    const historyRows = (r.history || []).map((e) => h("tr", {}, h("td", {class: "at"}, when(e.at)), h("td", {}, e.actor), h("td", {}, e.action),
      h("td", {class: "hide-narrow"}, h("span", {class: "text"}, Object.entries(e.detail || {}).filter(([k]) => k !== "text")
        .map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join("; ")))));
    details.replaceChildren(
      h("h1", {id: "request-title"}, `[${r.ref || id}] `, h("span", {class: "subject"}, req.subject || (req.body || "").slice(0, 80)), " ", badges(item)),
      h("div", {class: "card"}, h("dl", {class: "facts"}, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]), clocks,
        r.offer_expires_at && r.state === "offered" ? [h("dt", {}, t("offer_left")), h("dd", {}, offerCountdown(r.offer_expires_at))] : [])),
      whyCard(a),
      h("h2", {}, t("conversation")), h("ol", {class: "conversation", id: "conversation"}, conversation, notes),
      h("h2", {}, t("history")), h("table", {id: "history"}, h("tbody", {}, historyRows)));
    if (actions && !actions.dataset.built) buildActions(id, r, actions);
    if (actions) actions.querySelector("#accept-row").hidden = !["queued", "offered", "pending"].includes(r.state);
  }
  function whyCard(a) {
    // routing's explanation: each matched rule and the words it found, and the category scores
    const evidence = Object.entries(a.evidence || {}).filter(([rule]) => !rule.startsWith("topic:"));
    const scores = Object.entries(a.scores || {}).sort((x, y) => y[1] - x[1]);
    return h("details", {class: "card why", id: "why"}, h("summary", {}, t("why")),
      evidence.length ? h("ul", {class: "evidence"}, evidence.map(([rule, words]) =>
        h("li", {}, h("code", {}, rule), " ", h("q", {class: "text"}, words)))) : h("p", {class: "muted"}, t("no_evidence")),
      scores.length ? h("p", {class: "scores"}, t("scores") + ": " + scores.map(([c, v]) => `${tv("category", c)} ${v}`).join(" · ")) : null);
  }
  function buildActions(id, r, actions) {
    actions.dataset.built = "1";
    const field = (name, label, el) => [h("label", {for: name}, label), el];
    const area = (name) => h("textarea", {id: name, name, required: true, maxlength: 4000});
    const form = (name, title, fields, button, body) => {
      const f = h("form", {id: `${name}-form`}, h("h3", {}, title), fields, h("button", {type: "submit", class: name === "reply" || name === "resolve" ? "primary" : ""}, button));
      f.addEventListener("submit", (ev) => { ev.preventDefault(); act(id, name, body(f), () => f.reset()); });
      return f;
    };
    const val = (f, n) => f.elements[n].value.trim() || undefined;
    actions.append(
      h("div", {id: "accept-row"}, h("button", {type: "button", class: "primary", id: "accept",
        on: {click: () => act(id, "accept", {})}}, t("accept"))),
      form("reply", t("reply"), field("reply-text", t("reply"), area("reply-text")), t("send"), (f) => ({text: val(f, "reply-text")})),
      form("note", t("note"), field("note-text", t("note"), area("note-text")), t("add_note"), (f) => ({text: val(f, "note-text")})),
      form("pending", t("pending"), field("pending-reason", t("reason"), h("input", {id: "pending-reason", name: "pending-reason"})),
        t("set_pending"), (f) => ({reason: val(f, "pending-reason")})),
      form("transfer", t("transfer"), [h("div", {class: "row"},
        h("div", {}, field("transfer-department", t("to_department"), h("input", {id: "transfer-department", name: "transfer-department"}))),
        h("div", {}, field("transfer-queue", t("to_queue"), h("input", {id: "transfer-queue", name: "transfer-queue"}))),
        h("div", {}, field("transfer-agent", t("to_agent"), h("input", {id: "transfer-agent", name: "transfer-agent"})))),
        field("transfer-reason", t("reason"), h("input", {id: "transfer-reason", name: "transfer-reason", required: true}))], t("do_transfer"),
        (f) => ({department: val(f, "transfer-department"), queue: val(f, "transfer-queue"), to_agent: val(f, "transfer-agent"), reason: val(f, "transfer-reason")})),
      form("correct", t("correct"), [h("div", {class: "row"},
        h("div", {}, field("correct-category", t("category"), h("select", {id: "correct-category", name: "correct-category"},
          h("option", {value: ""}, t("unchanged")), ["inquiry", "suggestion", "complaint", "help"].map((c) => h("option", {value: c}, tv("category", c)))))),
        h("div", {}, field("correct-priority", t("priority"), h("select", {id: "correct-priority", name: "correct-priority"},
          h("option", {value: ""}, t("unchanged")), ["urgent", "important", "normal"].map((p) => h("option", {value: p}, tv("priority", p))))))),
        field("correct-reason", t("reason"), h("input", {id: "correct-reason", name: "correct-reason", required: true}))], t("do_correct"),
        (f) => ({category: val(f, "correct-category"), priority: val(f, "correct-priority"), reason: val(f, "correct-reason")})),
      form("escalate", t("escalate"), field("escalate-reason", t("reason"), h("input", {id: "escalate-reason", name: "escalate-reason", required: true})),
        t("do_escalate"), (f) => ({reason: val(f, "escalate-reason")})),
      form("resolve", t("resolve"), [field("resolve-text", t("resolution_text"), area("resolve-text")),
        h("label", {class: "inline"}, h("input", {type: "checkbox", id: "first-contact", name: "first-contact"}), t("first_contact"))],
        t("do_resolve"), (f) => ({resolution: val(f, "resolve-text"), first_contact: f.elements["first-contact"].checked})),
      form("close", t("close"), field("close-reason", t("reason"), h("input", {id: "close-reason", name: "close-reason"})),
        t("do_close"), (f) => ({reason: val(f, "close-reason")})),
    );
  }
  async function act(id, action, body, after) {
    try {
      await api("POST", `/v1/requests/${id}/${action}`, body);
      alertBox("");
      toast(t("done"));
      if (after) after();
    } catch (e) {
      if (e.status === 401) return;
      if (e.status === 409) alertBox(t("conflict"), "");
      else alertBox(t("failed", {detail: e.message}), "error");
    }
    refresh(true);
  }

  /* -- the floor (supervisors) --------------------------------------------------------------- */
  async function floorView() {
    frame("/floor");
    const floor = await api("GET", "/v1/floor");
    if (!floor.departments.length) return show(h("p", {class: "empty"}, t("no_departments")));
    const line = (i) => h("li", {class: i.emergency ? "emergency" : "", dataset: {request: i.request_id}},
      h("a", {href: `#/requests/${i.request_id}`}, i.ref), " ", badges(i), " ", h("span", {class: "subject"}, i.subject), " ",
      i.agent_id ? h("span", {class: "muted"}, `· ${i.agent_id} · ${tv("state", i.state)} `) : null,
      (() => { const dl = mainDeadline(i.deadlines); return dl ? countdown(dl[1]) : null; })());
    const sections = floor.departments.map((d) => h("section", {class: "department", dataset: {department: d.department}},
      h("h2", {}, d.department),
      h("div", {class: "queues"}, d.queues.filter((q) => q.waiting_count || q.held.length).map((q) => h("div", {class: "card queue", dataset: {queue: q.queue}},
        h("h3", {}, q.queue),
        h("div", {class: "counts"}, h("span", {}, `${t("waiting")} ${q.waiting_count}`), h("span", {}, `${t("held")} ${q.held.length}`),
          q.breached ? h("span", {class: "breached"}, `${q.breached} ${t("breached")}`) : null,
          q.warnings ? h("span", {class: "warnings"}, `${q.warnings} ${t("warnings")}`) : null),
        q.waiting.length ? h("ol", {class: "waiting"}, q.waiting.map(line)) : null,
        q.held.length ? h("ul", {class: "held"}, q.held.map(line)) : null))),
      d.queues.every((q) => !q.waiting_count && !q.held.length) ? h("p", {class: "empty"}, t("nothing_waiting")) : null,
      d.agents.length ? h("table", {class: "agents"}, h("thead", {}, h("tr", {}, [t("agent"), t("status"), t("load")].map((c) => h("th", {scope: "col"}, c)))),
        h("tbody", {}, d.agents.map((ag) => h("tr", {dataset: {agent: ag.agent_id}},
          h("td", {}, `${ag.name} (${ag.agent_id})`),
          h("td", {}, h("select", {"aria-label": `${t("status")} ${ag.agent_id}`, class: "status", dataset: {agent: ag.agent_id},
            on: {change: (ev) => setStatus(ag.agent_id, ev.target.value)}},
            ["available", "away", "offline"].map((s) => h("option", {value: s, selected: s === ag.status}, tv("status", s))))),
          h("td", {}, `${ag.load} / ${ag.capacity}`))))) : null));
    const urgent = new Map();
    for (const d of floor.departments) for (const q of d.queues) for (const i of [...q.waiting, ...q.held]) if (i.emergency) urgent.set(i.request_id, i);
    const emergencies = urgent.size ? h("section", {class: "card emergencies", id: "emergencies"}, h("h2", {}, t("emergencies")),
      h("ul", {}, [...urgent.values()].map(line))) : null;
    show(h("h1", {}, t("floor")), emergencies, sections);
  }
  async function setStatus(agent, status) {
    try {
      await api("PUT", `/v1/agents/${encodeURIComponent(agent)}/status`, {status});
      toast(t("status_changed", {agent, status: tv("status", status)}));
    } catch (e) {
      if (e.status !== 401) alertBox(t("failed", {detail: e.message}), "error");
    }
    refresh(true);
  }

  /* -- search -------------------------------------------------------------------------------- */
  let lastSearch = null;
  function searchView() {
    frame("/search");
    const results = h("div", {id: "results"});
    const input = (name, label) => [h("label", {for: `s-${name}`}, label), h("input", {id: `s-${name}`, name})];
    const states = h("select", {id: "s-state", name: "state"}, h("option", {value: ""}, t("any_state")),
      ["queued", "offered", "accepted", "pending", "resolved", "closed"].map((s) => h("option", {value: s}, tv("state", s))));
    const form = h("form", {class: "card", id: "search"}, h("p", {class: "muted"}, t("search_hint")),
      h("div", {class: "row"}, h("div", {}, input("ref", t("ref"))), h("div", {}, input("contact", t("contact"))),
        h("div", {}, input("q", t("words"))), h("div", {}, h("label", {for: "s-state"}, t("state")), states)),
      h("p", {}, h("button", {type: "submit", class: "primary"}, t("find"))));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const params = new URLSearchParams();
      for (const n of ["ref", "contact", "q", "state"]) { const v = form.elements[n].value.trim(); if (v) params.set(n, v); }
      lastSearch = params;
      runSearch(params, results);
    });
    show(h("h1", {}, t("search")), form, results);
    form.elements.ref.focus();
  }
  async function runSearch(params, results, more) {
    let page;
    try { page = await api("GET", "/v1/requests?" + params.toString()); } catch (e) {
      if (e.status !== 401) alertBox(t("failed", {detail: e.message}), "error");
      return;
    }
    alertBox("");
    const rows = page.requests.map((f) => h("tr", {dataset: {request: f.request_id}},
      h("td", {}, h("a", {href: `#/requests/${f.request_id}`}, f.ref)), h("td", {}, tv("state", f.state)), h("td", {}, f.channel || ""),
      h("td", {}, f.department || ""), h("td", {}, f.agent_id || ""), h("td", {}, when(f.received_at))));
    const table = more || h("table", {id: "found"}, h("thead", {}, h("tr", {}, [t("ref"), t("state"), t("channel"), t("department"), t("agent"), t("received")]
      .map((c) => h("th", {scope: "col"}, c)))), h("tbody", {}));
    table.tBodies[0].append(...rows);
    const moreButton = page.cursor ? h("button", {type: "button", on: {click: (ev) => {
      ev.target.remove(); const p = new URLSearchParams(params); p.set("cursor", page.cursor); runSearch(p, results, table);
    }}}, t("more")) : null;
    if (!more) results.replaceChildren(rows.length ? table : h("p", {class: "empty"}, t("no_results")));
    if (moreButton) results.append(moreButton);
  }

  /* -- the team (admins): agents and their tokens ------------------------------------------- */
  async function teamView() {
    frame("/team");
    const floor = await api("GET", "/v1/floor");
    const departments = floor.departments.map((d) => d.department);
    const agents = floor.departments.flatMap((d) => d.agents);
    const input = (id, label, attrs) => h("div", {}, h("label", {for: id}, label), h("input", {id, name: id, ...(attrs || {})}));
    const select = (id, label, options) => h("div", {}, h("label", {for: id}, label),
      h("select", {id, name: id}, options.map(([v, text]) => h("option", {value: v}, text))));
    const agentForm = h("form", {class: "card", id: "agent-form"}, h("h2", {}, t("agent_profile")),
      h("div", {class: "row"}, input("ag-id", t("agent_id"), {required: true, pattern: "[A-Za-z0-9_-]{1,64}"}),
        input("ag-name", t("name"), {required: true}), select("ag-department", t("department"), departments.map((d) => [d, d])),
        input("ag-queues", t("queues_hint")), input("ag-capacity", t("capacity"), {type: "number", min: 0, max: 100, value: 3}),
        select("ag-status", t("status"), ["available", "away", "offline"].map((s) => [s, tv("status", s)]))),
      h("p", {}, h("button", {type: "submit", class: "primary"}, t("save"))));
    agentForm.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = agentForm.elements, id = f["ag-id"].value.trim();
      const queues = f["ag-queues"].value.split(",").map((q) => q.trim()).filter(Boolean);
      try {
        await api("PUT", `/v1/agents/${encodeURIComponent(id)}`, {name: f["ag-name"].value.trim(), department: f["ag-department"].value,
          queues, capacity: Number(f["ag-capacity"].value), status: f["ag-status"].value});
        toast(t("done"));
        teamView();
      } catch (e) { if (e.status !== 401) alertBox(t("failed", {detail: e.message}), "error"); }
    });
    const issued = h("div", {id: "issued"});
    const tokenForm = h("form", {class: "card", id: "token-form"}, h("h2", {}, t("issue_token")),
      h("div", {class: "row"}, input("tk-subject", t("subject_id"), {required: true, pattern: "[A-Za-z0-9_-]{1,64}"}),
        select("tk-role", t("role"), [["agent", "agent"], ["supervisor", "supervisor"]]),
        input("tk-departments", t("departments_hint"))),
      h("p", {}, h("button", {type: "submit", class: "primary"}, t("issue"))), issued);
    tokenForm.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = tokenForm.elements, role = f["tk-role"].value;
      const body = {subject: f["tk-subject"].value.trim(), role};
      if (role === "supervisor") body.departments = f["tk-departments"].value.split(",").map((d) => d.trim()).filter(Boolean);
      try {
        const token = await api("POST", "/v1/tokens", body);
        issued.replaceChildren(h("label", {for: "issued-token"}, t("token_issued", {subject: token.subject, until: when(token.expires_at)})),
          h("textarea", {id: "issued-token", readonly: true, rows: 3}, token.token));
        issued.querySelector("textarea").select();
      } catch (e) { if (e.status !== 401) alertBox(t("failed", {detail: e.message}), "error"); }
    });
    const rows = agents.map((ag) => h("tr", {dataset: {agent: ag.agent_id}}, h("td", {}, ag.agent_id), h("td", {}, ag.name),
      h("td", {}, floor.departments.find((d) => d.agents.includes(ag)).department), h("td", {}, ag.queues.join(", ")),
      h("td", {}, tv("status", ag.status)), h("td", {}, `${ag.load} / ${ag.capacity}`)));
    show(h("h1", {}, t("team")), agentForm, tokenForm, h("h2", {}, t("agents")),
      rows.length ? h("table", {id: "agents"}, h("thead", {}, h("tr", {}, [t("agent_id"), t("name"), t("department"), t("queue"), t("status"), t("load")]
        .map((c) => h("th", {scope: "col"}, c)))), h("tbody", {}, rows)) : h("p", {class: "empty"}, t("no_agents")));
  }

  /* -- live: server-sent events over fetch (a header carries the token, never the URL) -------- */
  let liveAbort = null;
  function stopLive() { if (liveAbort) liveAbort.abort(); liveAbort = null; setLive(false); }
  function setLive(on) { liveLabel.className = "live " + (on ? "on" : "off"); liveLabel.textContent = t(on ? "live_on" : "live_off"); }
  async function startLive() {
    stopLive();
    const abort = liveAbort = new AbortController();
    let delay = 1000;
    while (!abort.signal.aborted && session.token) {
      try {
        const headers = {"Authorization": "Bearer " + session.token, "Accept": "text/event-stream"};
        if (session.lastEventId) headers["Last-Event-ID"] = session.lastEventId;
        const resp = await fetch("/v1/live", {headers, signal: abort.signal, cache: "no-store"});
        if (resp.status === 401) { signOut(t("signed_out", {detail: "401"})); return; }
        if (!resp.ok || !resp.body) throw new Error(String(resp.status));
        setLive(true);
        delay = 1000;
        refresh(true);  // what happened while away is in the views read now
        const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const {value, done} = await reader.read();
          if (done) break;
          buffer += value;
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, end); buffer = buffer.slice(end + 2);
            const fields = {};
            for (const line of block.split("\n")) {
              if (!line || line.startsWith(":")) continue;
              const i = line.indexOf(":");
              fields[line.slice(0, i)] = line.slice(i + 1).replace(/^ /, "");
            }
            if (fields.id) session.lastEventId = fields.id;
            if (fields.data) onNotice(fields.event, JSON.parse(fields.data));
          }
        }
      } catch (e) {
        if (abort.signal.aborted) return;
      }
      setLive(false);
      await new Promise((ok) => setTimeout(ok, delay));
      delay = Math.min(delay * 2, 10000);
    }
  }
  const refOf = (id) => id.slice(4, 12).toUpperCase();
  function onNotice(kind, n) {
    const ref = refOf(n.request_id);
    if (kind === "offered" && me && n.agent_id === me.subject) toast(t("new_offer", {ref}));
    else if (kind === "customer_wrote") toast(t("customer_wrote", {ref}));
    else if (kind === "sla_warning") toast(t("sla_warning", {ref}));
    else if (kind === "sla_breached") toast(t("sla_breached", {ref}), "emergency");
    else if (kind === "assigned" && n.emergency) toast(t("emergency_arrived", {ref}), "emergency");
    const view = location.hash.slice(1);
    if (view.startsWith("/requests/")) { if (n.request_id === shownRequest) refresh(true); }
    else if (view === "/work" || view === "/floor") refresh(false);
  }

  /* -- views and refresh ----------------------------------------------------------------------- */
  /* a view is read again after a change: at once for the request on screen, at most every 2 s for
     a list (a busy floor has many events a second; each read is a call, and an audit record) */
  let refreshTimer = null, lastRefresh = 0;
  function refresh(soon) {
    clearTimeout(refreshTimer);
    const wait = soon ? 250 : Math.max(250, lastRefresh + 2000 - Date.now());
    refreshTimer = setTimeout(async () => {
      if (!me) return;
      lastRefresh = Date.now();
      const view = location.hash.slice(1);
      try {
        if (view === "/work") await workView();
        else if (view === "/floor") await floorView();
        else if (view.startsWith("/requests/") && shownRequest) {
          await loadRequest(shownRequest, document.getElementById("details"), document.getElementById("actions"));
        }
      } catch (e) { if (e.status !== 401) alertBox(t("failed", {detail: e.message}), "error"); }
    }, wait);
  }
  async function route() {
    if (!me) return signInView();
    const view = location.hash.slice(1) || (me.role === "agent" ? "/work" : "/floor");
    const found = view.match(/^\/requests\/(req_[a-z2-7]{26})$/);
    shownRequest = null;
    try {
      if (found) await requestView(found[1]);
      else if (view === "/floor") await floorView();
      else if (view === "/search") searchView();
      else if (view === "/team" && me.role === "admin") await teamView();
      else await workView();
      main().focus({preventScroll: true});
    } catch (e) { if (e.status !== 401) alertBox(t("failed", {detail: e.message}), "error"); }
  }
  window.addEventListener("hashchange", () => { alertBox(""); route(); });

  (async () => {
    document.querySelector(".skip").textContent = t("skip");
    if (!session.token) return signInView();
    try { me = await api("GET", "/v1/me"); } catch (e) { return; }
    startLive();
    route();
  })();
})();
