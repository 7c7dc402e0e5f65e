// The nbresume dashboard: polls /nbresume/api/ and renders one table per checkpoint store.
// Plain DOM (textContent only: phase names come from files on disk), no build step.
"use strict";

(function () {
  const BASE = document.querySelector('meta[name="nbresume-base"]').content;
  const FAST = 1000; // ms between refreshes while a loop runs
  const SLOW = 1500; // ms otherwise: a new run or store shows within 2 s
  const HIDDEN = 15000; // ms while the tab is hidden
  const STALLED = 60; // s without a progress write before a running row says so

  let timer = null;
  let skew = 0; // server clock minus ours, in seconds: ages use the server's clock
  let busy = false;
  const lastGood = new Map(); // store -> its last view, shown while a refresh of it fails
  const openHistories = new Set(); // the history lists the user opened: kept open across refreshes

  function $(id) {
    return document.getElementById(id);
  }

  function cookie(name) {
    const found = document.cookie.split("; ").find((c) => c.startsWith(name + "="));
    return found ? decodeURIComponent(found.slice(name.length + 1)) : "";
  }

  async function api(path, options) {
    const init = Object.assign({ credentials: "same-origin", headers: {} }, options || {});
    if (init.method && init.method !== "GET") {
      // Jupyter's XSRF protection: the _xsrf cookie's value, echoed in a header
      init.headers["X-XSRFToken"] = cookie("_xsrf");
      init.headers["Content-Type"] = "application/json";
    }
    const response = await fetch(BASE + "api/" + path, init);
    let body = null;
    try {
      body = await response.json();
    } catch (e) {
      body = null;
    }
    if (!response.ok) {
      const message = (body && body.message) || response.statusText;
      const error = new Error(response.status + " " + message);
      error.status = response.status;
      throw error;
    }
    skew = body.now - Date.now() / 1000;
    return body;
  }

  function now() {
    return Date.now() / 1000 + skew;
  }

  // -- formatting ---------------------------------------------------------------------------------

  function duration(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return "–";
    if (seconds < 10) return seconds < 1 ? seconds.toFixed(2) + "s" : seconds.toFixed(1) + "s";
    const s = Math.round(seconds);
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const sec = s % 60;
    if (h) return h + "h" + String(m).padStart(2, "0") + "m";
    return m ? m + "m" + String(sec).padStart(2, "0") + "s" : sec + "s";
  }

  function age(epoch) {
    if (!epoch) return "–";
    const seconds = Math.max(0, now() - epoch);
    if (seconds < 60) return Math.round(seconds) + "s ago";
    if (seconds < 3600) return Math.round(seconds / 60) + "m ago";
    if (seconds < 86400) return Math.round(seconds / 3600) + "h ago";
    return new Date(epoch * 1000).toLocaleDateString();
  }

  function when(epoch) {
    return epoch ? new Date(epoch * 1000).toLocaleString() : "";
  }

  function size(bytes) {
    if (bytes === null || bytes === undefined) return "–";
    const units = ["B", "KB", "MB", "GB", "TB"];
    let n = bytes;
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i += 1;
    }
    return i === 0 ? n + " B" : n.toFixed(1) + " " + units[i];
  }

  function plural(n, word) {
    return n + " " + word + (n === 1 ? "" : "s");
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "style") node.style.cssText = value;
      else if (key.startsWith("data-") || key.startsWith("aria-") || key === "role" || key === "title")
        node.setAttribute(key, value);
      else node[key] = value;
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // -- rendering ----------------------------------------------------------------------------------

  function progressCell(row) {
    const p = row.progress;
    if (!p || p.done === null) {
      return el("td", { class: "progress" }, row.kind === "phase" ? "" : "saved progress of an unfinished loop");
    }
    const total = p.total;
    const fraction = total ? Math.min(1, p.done / total) : null;
    const bar = el(
      "div",
      {
        class: "bar" + (fraction === null ? " indeterminate" : ""),
        role: "progressbar",
        "aria-valuemin": "0",
        "aria-valuemax": total === null ? null : String(total),
        "aria-valuenow": String(p.done),
      },
      el("div", {})
    );
    if (fraction !== null) bar.firstChild.style.width = (fraction * 100).toFixed(1) + "%";
    const parts = [p.done + "/" + (total === null ? "?" : total)];
    if (p.skipped) parts.push("resumed " + p.skipped);
    if (row.running) {
      if (p.rate) parts.push(p.rate.toPrecision(3) + " it/s");
      const since = p.updated ? now() - p.updated : 0;
      if (since > STALLED) parts.push("no progress for " + duration(since));
      else if (p.eta !== null) parts.push("ETA " + duration(Math.max(0, p.eta - since)));
    } else if (row.status === "interrupted") {
      parts.push(row.resumable ? "stopped; re-run the cell to resume" : "stopped");
    } else if (p.elapsed !== null) {
      parts.push("in " + duration(p.elapsed));
    }
    return el("td", { class: "progress" }, bar, el("div", { class: "progress-text" }, parts.join(" · ")));
  }

  function resumedText(resumes) {
    // a run resumed from a snapshot in a new kernel: its duration adds up every kernel's time
    if (!resumes) return "";
    return "in every kernel that ran it: resumed " + (resumes === 1 ? "once" : resumes + " times");
  }

  function runTime(p) {
    // the run's time in every kernel (elapsed at the last progress write), and since that write
    return p.elapsed === null ? now() - p.started : p.elapsed + Math.max(0, now() - (p.updated || now()));
  }

  function lastRun(row) {
    // a running phase: when it started; otherwise when it last finished (or failed)
    const started = row.running && row.progress ? row.progress.started : null;
    const epoch = started || row.updated;
    const cell = el("td", { class: "num", title: when(epoch) }, age(epoch));
    if (started) cell.prepend("started ");
    return cell;
  }

  function historyList(store, row) {
    // the kept versions, newest first, each with the command that makes it current again
    const history = row.history || [];
    if (history.length < 2) return null;
    const key = store.store + "\u0000" + row.name;
    const items = history.map((v) =>
      el(
        "li",
        { class: v.current ? "current" : null },
        el("span", { title: when(v.created) }, "#" + v.number + (v.current ? " current" : "") + " · " + age(v.created)),
        v.duration === null ? null : " · ran " + duration(v.duration),
        v.reason ? " · " + v.reason : null,
        v.resumes ? " · " + resumedText(v.resumes).replace("in every kernel that ran it: ", "") : null,
        v.rollback ? el("code", { class: "rollback", title: "run it in the notebook to bring this version back" }, v.rollback) : null
      )
    );
    const details = el(
      "details",
      { class: "history", open: openHistories.has(key) },
      el("summary", {}, plural(history.length, "version")),
      el("ol", {}, ...items)
    );
    details.addEventListener("toggle", () => (details.open ? openHistories.add(key) : openHistories.delete(key)));
    return details;
  }

  function phaseRow(store, row) {
    const started = row.progress && row.progress.started;
    const running = row.running && started;
    const button = el("button", { type: "button", class: "clear", disabled: row.running }, "Clear");
    button.title = row.running
      ? "running in a kernel: interrupt it first"
      : "delete this " + row.kind + "'s checkpoints";
    button.addEventListener("click", () => clear(store, row, button));
    const kind = row.kind === "phase" ? null : el("span", { class: "kind" }, row.kind);
    const notebook = row.notebook
      ? el("div", { class: "notebook", title: row.notebook }, row.notebook.split("/").pop())
      : null;
    return el(
      "tr",
      { class: row.status, "data-store": store.store, "data-name": row.name, "data-kind": row.kind },
      el("td", { class: "name" }, kind, row.name, notebook, historyList(store, row)),
      el("td", {}, el("span", { class: "status status-" + row.status }, row.status)),
      progressCell(row),
      el("td", { class: "num snapshot", title: when(row.last_snapshot) }, row.last_snapshot ? age(row.last_snapshot) : "–"),
      lastRun(row),
      el(
        "td",
        { class: "num", title: resumedText(running ? row.progress.resumes : row.resumes) },
        duration(running ? runTime(row.progress) : row.duration)
      ),
      el("td", { class: "num" }, size(row.size)),
      el("td", {}, button)
    );
  }

  function storeSection(store) {
    const where = store.dir ? store.dir + "/" : "(server root)";
    const header = el("header", {}, el("h2", {}, where));
    const section = el("section", { class: "store", "data-store": store.store }, header);
    if (!store.phases) {
      section.append(el("div", { class: "empty" }, store.error || "unreadable"));
      return section;
    }
    const running = store.running ? " · " + store.running + " running" : "";
    const stale = store.error ? " · not refreshed: " + store.error : "";
    // a store with more rows than the server reads shows its newest; says how many are left out
    const more = store.more ? " · " + store.more + " more not shown" : "";
    header.append(el("span", { class: "meta" }, plural(store.phases.length, "phase") + more + " · " + size(store.size) + running + stale));
    if (!store.phases.length) {
      section.append(el("div", { class: "empty" }, "no checkpoints"));
      return section;
    }
    const head = el(
      "tr",
      {},
      ...["phase", "status", "progress", "#last snapshot", "#last run", "#duration", "#size", ""].map((t) =>
        t.startsWith("#") ? el("th", { class: "num" }, t.slice(1)) : el("th", {}, t)
      )
    );
    const widths = ["19%", "9%", "26%", "10%", "12%", "8%", "8%", "8%"];
    const columns = el("colgroup", {}, ...widths.map((w) => el("col", { style: "width: " + w })));
    const body = el("tbody", {}, ...store.phases.map((r) => phaseRow(store, r)));
    const table = el("table", {}, columns, el("thead", {}, head), body);
    section.append(table);
    return section;
  }

  function render(stores) {
    const running = stores.reduce((n, s) => n + (s.running || 0), 0);
    $("summary").textContent =
      (stores.length ? plural(stores.length, "store") : "No checkpoint stores") +
      " under this server's root" +
      (running ? " · " + running + " running" : "") +
      (stores.length ? "" : ". Run a %%checkpoint cell in a notebook to create one (.nbresume/ next to it).");
    $("stores").replaceChildren(...stores.map(storeSection));
    $("refreshed").textContent =
      "Updated " + new Date().toLocaleTimeString() + (running ? " · refreshing every second" : "");
  }

  function showError(message) {
    const box = $("error");
    box.hidden = !message;
    box.textContent = message || "";
  }

  // -- actions ------------------------------------------------------------------------------------

  async function refresh() {
    clearTimeout(timer);
    if (busy) return;
    busy = true;
    let running = false;
    try {
      const listing = await api("stores");
      const stores = await Promise.all(
        listing.stores.map((s) =>
          s.error
            ? s
            : api("phases?store=" + encodeURIComponent(s.store)).then(
                (view) => (lastGood.set(s.store, view), view),
                // a store busy for a moment keeps its last view rather than blinking
                (e) => Object.assign({}, lastGood.get(s.store) || { store: s.store, dir: s.dir }, { error: e.message })
              )
        )
      );
      running = stores.some((s) => s.running);
      render(stores);
      showError("");
    } catch (e) {
      showError(
        e.status === 403
          ? "Not authorized: open this page from a logged-in Jupyter (or add ?token=…)."
          : "Could not load the checkpoints: " + e.message
      );
    } finally {
      busy = false;
      timer = setTimeout(refresh, document.hidden ? HIDDEN : running ? FAST : SLOW);
    }
  }

  async function clear(store, row, button) {
    const where = store.dir ? store.dir + "/" : "the server root";
    const question =
      "Clear " + row.kind + " '" + row.name + "' in " + where + "?\n\n" +
      "Its cached variables, outputs, history and snapshots are deleted; the cell runs from the start next time.";
    if (!window.confirm(question)) return;
    button.disabled = true;
    try {
      await api("clear", {
        method: "POST",
        body: JSON.stringify({ store: store.store, name: row.name, kind: row.kind }),
      });
      showError("");
    } catch (e) {
      showError("Could not clear '" + row.name + "': " + e.message);
      button.disabled = false;
    }
    refresh();
  }

  $("refresh").addEventListener("click", refresh);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") refresh();
  });
  refresh();
})();
