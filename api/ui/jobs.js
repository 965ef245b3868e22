// /ui: the jobs, newest first, filtered by status, tag and API, kept live by /v1/events.
"use strict";
(() => {
  const {api, el, badge, when, seconds, stream} = diarist;
  const PAGE = 100, WANT = 50, MAX_PAGES = 10;
  const body = document.querySelector("#jobs tbody");
  const form = document.getElementById("filters");
  const moreButton = document.getElementById("more");
  const rows = new Map();  // job id -> {row, job}
  let cursor = null, loading = null;

  for (const status of JSON.parse(document.body.dataset.statuses)) document.getElementById("f-status").append(el("option", {value: status, text: status}));
  for (const name of JSON.parse(document.body.dataset.apis)) document.getElementById("f-api").append(el("option", {value: name, text: name}));

  const params = new URLSearchParams(location.search);
  for (const name of ["status", "tag", "api"]) form.elements[name].value = params.get(name) || "";

  function filters() {
    return {status: form.elements.status.value, tag: form.elements.tag.value.trim(), api: form.elements.api.value};
  }

  function matches(job) {
    const f = filters();
    return (!f.status || job.status === f.status) && (!f.tag || job.options.tag === f.tag) && (!f.api || job.options.api === f.api);
  }

  function cells(job) {
    const progress = el("span", {class: `bar small ${job.status}`}, el("span", {class: "fill"}));
    progress.firstChild.style.width = `${job.progress}%`;
    return [
      el("td", {text: when(job.created_at)}),
      el("td", {class: "file"}, el("a", {href: `/ui/jobs/${encodeURIComponent(job.id)}`, text: job.filename || job.id})),
      el("td", {}, badge(job.status)),
      el("td", {}, progress, `${job.progress.toFixed(0)}%`),
      el("td", {text: job.options.api || "diarist"}),
      el("td", {text: job.options.tag || ""}),
      el("td", {text: seconds(job.media.duration)}),
      el("td", {text: job.speakers ?? "—"}),
      el("td", {text: job.language || "—"}),
      el("td", {class: "mono", text: job.id.slice(0, 8)}),
    ];
  }

  function newer(a, b) {  // the listing's order: creation time, then id, newest first
    return a.created_at > b.created_at || (a.created_at === b.created_at && a.id > b.id);
  }

  function place(job, fresh) {
    const known = rows.get(job.id);
    if (known) {
      if (job.version < known.job.version || (job.version === known.job.version && job.updated_at < known.job.updated_at)) return;
      if (!matches(job)) { known.row.remove(); rows.delete(job.id); return; }
      known.job = job;
      known.row.replaceChildren(...cells(job));
      return;
    }
    if (!matches(job)) return;
    const row = el("tr", {"data-id": job.id, class: fresh ? "fresh" : null}, ...cells(job));
    const after = [...rows.values()].find((r) => newer(job, r.job));
    if (after) body.insertBefore(row, after.row);
    else if (cursor === null || !fresh) body.append(row);
    else return;  // older than every job shown while there are older pages: it is on those
    rows.set(job.id, {row, job});
    showCount();
  }

  function showCount() {
    document.getElementById("empty").hidden = rows.size > 0;
    document.getElementById("count").textContent = `${rows.size} shown`;
  }

  function showError(error) {
    const box = document.getElementById("error");
    box.hidden = !error;
    box.textContent = error ? error.message : "";
  }

  // Pages of /v1/jobs (status and tag filter on the server; the API in the page), until WANT more rows show.
  async function load(reset) {
    if (reset) { body.replaceChildren(); rows.clear(); cursor = null; }
    const f = filters();
    const before = rows.size;
    let pages = 0;
    try {
      do {
        const query = new URLSearchParams({limit: PAGE});
        if (f.status) query.set("status", f.status);
        if (f.tag) query.set("tag", f.tag);
        if (cursor) query.set("cursor", cursor);
        const page = await api("GET", `/v1/jobs?${query}`);
        cursor = page.next_cursor;
        for (const job of page.jobs) place(job, false);
        pages++;
      } while (cursor && rows.size - before < WANT && pages < MAX_PAGES);
      showError(null);
    } catch (error) { showError(error); }
    moreButton.hidden = !cursor;
    showCount();
  }

  function reload(reset) { loading = (loading || Promise.resolve()).then(() => load(reset)); return loading; }

  // The newest page again, merged (after the live stream (re)connects: whatever changed meanwhile).
  async function refresh() {
    const f = filters();
    const query = new URLSearchParams({limit: PAGE});
    if (f.status) query.set("status", f.status);
    if (f.tag) query.set("tag", f.tag);
    try { for (const job of (await api("GET", `/v1/jobs?${query}`)).jobs) place(job, false); } catch (error) { showError(error); }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const query = new URLSearchParams(Object.entries(filters()).filter(([, v]) => v));
    history.replaceState(null, "", query.toString() ? `?${query}` : location.pathname);
    reload(true);
  });
  moreButton.addEventListener("click", () => reload(false));

  reload(true);
  let opened = false;
  stream("/v1/events", document.getElementById("live"), {
    open() { if (opened) refresh(); opened = true; },
    job(job) { place(job, true); },
  });
})();
