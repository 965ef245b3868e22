// diarist status pages: what both pages share. Plain JavaScript, no build step.
"use strict";

const diarist = (() => {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const TERMINAL = new Set(["COMPLETED", "FAILED", "STOPPED", "DELETED"]);

  // Calls the native API with the session cookie; changes carry the page's CSRF token.
  async function api(method, path) {
    const headers = {Accept: "application/json"};
    if (method !== "GET") headers["X-CSRF-Token"] = csrf;
    const response = await fetch(path, {method, headers, credentials: "same-origin"});
    if (response.status === 401) { location.assign("/ui/login?next=" + encodeURIComponent(location.pathname + location.search)); }
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      const error = new Error((body && body.detail) || `${method} ${path}: HTTP ${response.status}`);
      error.status = response.status;
      throw error;
    }
    return body;
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("data-")) node.setAttribute(key, value);
      else node[key] = value;
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function badge(status) { return el("span", {class: `status ${status}`, text: status}); }

  // A time, in the browser's zone; without the year when it is this year's.
  function when(iso) {
    if (!iso) return "—";
    const at = new Date(iso);
    const year = at.getFullYear() === new Date().getFullYear() ? undefined : "numeric";
    return at.toLocaleString(undefined, {year, month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit"});
  }

  function seconds(value) {
    if (value === null || value === undefined || Number.isNaN(value)) return "—";
    if (value < 60) return `${value.toFixed(value < 10 ? 2 : 1)} s`;
    const m = Math.floor(value / 60), s = Math.round(value % 60);
    if (m < 60) return `${m} min ${s} s`;
    return `${Math.floor(m / 60)} h ${m % 60} min`;
  }

  function clock(value) {
    const m = Math.floor(value / 60), s = Math.floor(value % 60);
    return `${m}:${String(s).padStart(2, "0")}`;
  }

  function bytes(n) {
    if (n === null || n === undefined) return "—";
    const units = ["B", "KB", "MB", "GB", "TB"];
    let i = 0, v = n;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return `${v.toFixed(i ? 1 : 0)} ${units[i]}`;
  }

  function between(from, to) {
    if (!from || !to) return null;
    return (new Date(to) - new Date(from)) / 1000;
  }

  // An EventSource that shows whether it is connected in `indicator`.
  function stream(url, indicator, handlers) {
    const source = new EventSource(url);
    const show = (on, text) => { if (indicator) { indicator.classList.toggle("on", on); indicator.textContent = text; } };
    show(false, "connecting");
    source.addEventListener("open", () => { show(true, "live"); if (handlers.open) handlers.open(); });
    source.addEventListener("error", () => show(false, source.readyState === EventSource.CLOSED ? "offline" : "reconnecting"));
    for (const [name, handler] of Object.entries(handlers)) {
      if (name !== "open") source.addEventListener(name, (event) => handler(JSON.parse(event.data)));
    }
    return {source, close() { source.close(); show(false, "ended"); }};
  }

  return {api, el, badge, when, seconds, clock, bytes, between, stream, TERMINAL, csrf};
})();
