// /ui/jobs/{id}: one job, live (/v1/jobs/{id}/events), its transcript, player and commands.
"use strict";
(() => {
  const {api, el, badge, when, seconds, clock, bytes, between, stream, TERMINAL} = diarist;
  const jobId = document.body.dataset.jobId;
  const formats = JSON.parse(document.body.dataset.formats);
  const $ = (id) => document.getElementById(id);
  const player = $("player");
  let job = null, result = null, follower = null, words = [], current = null;

  function showError(error) {
    $("error").hidden = !error;
    $("error").textContent = error ? error.message : "";
  }

  function facts(target, pairs) {
    target.replaceChildren(...pairs.filter(([, v]) => v !== null && v !== undefined && v !== "").flatMap(([k, v]) => [el("dt", {text: k}), el("dd", {text: v})]));
  }

  function endedAt(j) {
    if (j.completed_at) return j.completed_at;
    const last = j.history[j.history.length - 1];
    return ["failed", "stopped", "deleted"].includes(last.event) ? last.at : null;
  }

  function renderTimings(j) {
    const ended = endedAt(j);
    const rows = [
      ["Created", j.created_at, null, ""],
      ["Started", j.started_at, between(j.created_at, j.started_at), "queued"],
      ["Diarized", j.diarized_at, between(j.started_at, j.diarized_at), "probe, VAD, diarization"],
      ["Completed", j.completed_at, between(j.diarized_at, j.completed_at), "transcription"],
    ];
    if (ended && !j.completed_at) rows.push([j.status === "DELETED" ? "Ended" : j.status[0] + j.status.slice(1).toLowerCase(), ended, between(j.started_at || j.created_at, ended), ""]);
    const table = $("timings");
    table.replaceChildren(el("tr", {}, el("th", {text: "Stage"}), el("th", {text: "At"}), el("th", {text: "Took"})),
      ...rows.map(([name, at, took, what]) => el("tr", {"data-stage": name.toLowerCase()},
        el("td", {text: name}), el("td", {text: when(at)}), el("td", {text: took === null ? "" : `${seconds(took)}${what ? ` (${what})` : ""}`}))),
      el("tr", {}, el("td", {text: "Total"}), el("td", {}), el("td", {text: seconds(between(j.created_at, ended))})));
  }

  function renderMedia(j) {
    const m = j.media;
    facts($("media"), [
      ["File", j.filename], ["Size", bytes(m.size)], ["Type", m.content_type], ["MD5", m.md5],
      ["Format", m.format], ["Codec", m.codec], ["Sample rate", m.sample_rate && `${m.sample_rate} Hz`],
      ["Channels", m.channels], ["Bit rate", m.bit_rate && `${Math.round(m.bit_rate / 1000)} kb/s`],
      ["Duration", m.duration && seconds(m.duration)], ["Speech", j.speech_seconds !== null ? seconds(j.speech_seconds) : null],
      ["Speakers", j.speakers], ["Language", j.language && `${j.language}${j.language_probability ? ` (${Math.round(j.language_probability * 100)}%)` : ""}`],
      ["API", j.options.api], ["Tag", j.options.tag], ["Attempt", j.attempt],
    ]);
  }

  function renderHistory(j) {
    $("history").replaceChildren(el("tr", {}, el("th", {text: "Version"}), el("th", {text: "Event"}), el("th", {text: "At"})),
      ...j.history.map((t) => el("tr", {}, el("td", {text: t.version}), el("td", {text: t.event}), el("td", {text: when(t.at)}))));
  }

  function render(j) {
    document.title = `${j.filename} · ${j.status} · diarist`;
    $("filename").textContent = j.filename;
    const status = $("status");
    status.textContent = j.status;
    status.className = `status ${j.status}`;
    $("progress").className = `bar ${j.status}`;
    $("progress-fill").style.width = `${j.progress}%`;
    $("progress").setAttribute("aria-valuenow", String(j.progress));
    $("progress-text").textContent = `${j.progress.toFixed(1)}%`;
    const reasons = [j.failure_reason, j.callback_failure_reason].filter(Boolean);
    $("failure").hidden = !reasons.length;
    $("failure").textContent = reasons.join(" · ");
    $("stop").disabled = !["QUEUED", "IN_PROGRESS"].includes(j.status);
    $("retry").disabled = !["FAILED", "STOPPED"].includes(j.status);
    $("delete").disabled = !["COMPLETED", "FAILED", "STOPPED"].includes(j.status);
    renderTimings(j);
    renderMedia(j);
    renderHistory(j);
    $("listen").hidden = j.status === "DELETED";
    if (j.status !== "DELETED" && !player.getAttribute("src")) player.src = `/ui/jobs/${encodeURIComponent(jobId)}/media`;
    if (j.status === "DELETED") { player.removeAttribute("src"); player.load(); }
    if (j.status === "COMPLETED" && !result) loadResult();
    if (j.status !== "COMPLETED" && result) { result = null; $("result-panel").hidden = true; $("timeline").replaceChildren(); }
  }

  function update(j) {
    if (job && (j.version < job.version || (j.version === job.version && j.updated_at < job.updated_at))) return;
    job = j;
    render(j);
  }

  function follow() {
    if (follower) follower.close();
    follower = null;
    if (TERMINAL.has(job.status)) { $("live").classList.remove("on"); $("live").textContent = "ended"; return; }
    follower = stream(`/v1/jobs/${encodeURIComponent(jobId)}/events`, $("live"), {
      job: update,
      end() { if (follower) follower.close(); follower = null; },
    });
  }

  async function loadResult() {
    try { result = await api("GET", `/v1/jobs/${encodeURIComponent(jobId)}/result`); } catch (error) { showError(error); return; }
    renderResult(result);
  }

  function speakerOf(segment, channels) { return channels > 1 ? `Speaker ${segment.speaker} (channel ${segment.channel})` : `Speaker ${segment.speaker}`; }

  function renderResult(r) {
    const segments = r.segments || [];
    const duration = r.duration || job.media.duration || Math.max(0, ...segments.map((s) => s.end));
    const channels = new Set(segments.map((s) => s.channel)).size;
    const speakers = [...new Set(segments.map((s) => s.speaker))].sort((a, b) => a - b);
    // the timeline: one lane per speaker
    const timeline = $("timeline");
    const playhead = el("div", {class: "playhead"});
    const lanes = speakers.map((speaker) => {
      const track = el("div", {class: "track", title: "click to play from here"});
      for (const s of segments.filter((x) => x.speaker === speaker)) {
        const seg = el("div", {class: "seg", title: `${clock(s.start)}–${clock(s.end)} ${s.text}`});
        seg.style.left = `${(s.start / duration) * 100}%`;
        seg.style.width = `${((s.end - s.start) / duration) * 100}%`;
        track.append(seg);
      }
      track.addEventListener("click", (event) => {
        const box = track.getBoundingClientRect();
        seek(((event.clientX - box.left) / box.width) * duration);
      });
      return el("div", {class: `lane spk spk-${speaker % 8}`, "data-speaker": speaker}, el("span", {class: "who", text: `Speaker ${speaker}`}), track);
    });
    const axis = el("div", {class: "axis"}, ...[0, 0.25, 0.5, 0.75, 1].map((f) => el("span", {text: clock(f * duration)})));
    timeline.replaceChildren(...lanes, axis, playhead);
    timeline.dataset.duration = duration;
    // the transcript, coloured by speaker; each word seeks the player
    words = [];
    const turns = segments.map((s) => {
      const list = (s.words && s.words.length) ? s.words : s.text.split(/\s+/).filter(Boolean).map((w) => ({word: w, start: s.start, end: s.end}));
      const text = el("div", {class: "text"});
      list.forEach((w, i) => {
        const span = el("span", {class: "word", text: w.word.trim(), "data-start": w.start, "data-end": w.end, title: clock(w.start)});
        words.push({span, start: w.start, end: w.end});
        text.append(span, i < list.length - 1 ? " " : "");
      });
      return el("div", {class: `turn spk spk-${s.speaker % 8}`, "data-speaker": s.speaker},
        el("div", {class: "who", text: speakerOf(s, channels)}, el("span", {class: "at", text: `${clock(s.start)}–${clock(s.end)}`})), text);
    });
    const transcript = $("transcript");
    transcript.replaceChildren(...(turns.length ? turns : [el("p", {class: "muted", text: r.task === "LANGUAGE_IDENTIFICATION" ? `Language: ${r.language}` : "No speech was found."})]));
    const stem = (job.filename || jobId).replace(/\.[^.]*$/, "");
    $("downloads").replaceChildren("Download: ", ...formats.map((f) => el("a", {class: "button", href: `/v1/jobs/${encodeURIComponent(jobId)}/result?format=${f}`, download: `${stem}.${f}`, text: f.toUpperCase(), "data-format": f})));
    $("result-panel").hidden = false;
  }

  function seek(at) {
    player.currentTime = at;
    if (player.paused) player.play().catch(() => {});
  }

  $("transcript").addEventListener("click", (event) => {
    const word = event.target.closest(".word");
    if (word) seek(Number(word.dataset.start));
  });

  player.addEventListener("timeupdate", () => {
    const t = player.currentTime;
    const duration = Number($("timeline").dataset.duration) || 0;
    const playhead = $("timeline").querySelector(".playhead");
    const first = $("timeline").querySelector(".track");
    if (playhead && first && duration) {
      const lane = first.getBoundingClientRect(), box = $("timeline").getBoundingClientRect();
      playhead.style.display = "block";
      playhead.style.left = `${lane.left - box.left + (t / duration) * lane.width}px`;
    }
    const now = words.find((w) => w.start <= t && t < w.end) || null;
    if (now !== current) {
      if (current) current.span.classList.remove("now");
      if (now) now.span.classList.add("now");
      current = now;
    }
  });

  async function command(method, path) {
    showError(null);
    try {
      update(await api(method, path));
      follow();
    } catch (error) {
      showError(error);
      try { update(await api("GET", `/v1/jobs/${encodeURIComponent(jobId)}`)); follow(); } catch (ignored) { /* shown above */ }
    }
  }

  const base = `/v1/jobs/${encodeURIComponent(jobId)}`;
  $("stop").addEventListener("click", () => command("POST", `${base}/stop`));
  $("retry").addEventListener("click", () => command("POST", `${base}/retry`));
  $("delete").addEventListener("click", () => { if (confirm("Delete this job's media and transcript?")) command("DELETE", base); });

  (async () => {
    try { job = await api("GET", base); } catch (error) { showError(error); $("status").textContent = error.status === 404 ? "NOT FOUND" : "?"; return; }
    render(job);
    follow();
  })();
})();
