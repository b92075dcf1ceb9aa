// The live stream (GET /api/v1/stream, Server-Sent Events read with fetch so the session cookie
// and Last-Event-ID travel as headers), reconnecting with backoff. The connection state is always
// on screen: live, reconnecting, or offline since HH:MM.
import { $, fmtTime, t } from "./i18n.js";

const conn = { state: "signed-out", lostAt: 0, lastEventId: null, ctl: null, running: false, timer: null, wake: null };

export function connection() {
  return conn;
}

function show() {
  const c = $("conn");
  c.dataset.conn = conn.state;
  const text = {
    live: t("live"),
    reconnecting: t("reconnecting"),
    offline: t("offline_since", { time: fmtTime(conn.lostAt, false) }),
    "signed-out": t("signed_out"),
  }[conn.state];
  c.textContent = text;
  document.body.dataset.live = conn.state === "live" ? "1" : "0";
}

function setState(s, onChange) {
  if (s !== "live" && conn.state === "live") conn.lostAt = Date.now();
  if (s === "reconnecting" && conn.lostAt && Date.now() - conn.lostAt > 10_000) s = "offline";
  const changed = s !== conn.state;
  conn.state = s;
  show();
  if (changed) onChange(s);
}

window.addEventListener("online", () => conn.wake && conn.wake());

export function refreshLabel() {
  show();
}

export function stop() {
  conn.running = false;
  if (conn.ctl) conn.ctl.abort();
  clearInterval(conn.timer);
  conn.state = "signed-out";
  conn.lastEventId = null;
  show();
}

// handlers: {event(ev), state(s), unauthorized()}
export async function start(handlers) {
  conn.running = true;
  conn.lostAt = Date.now();
  let backoff = 500;
  clearInterval(conn.timer);
  conn.timer = setInterval(() => conn.state !== "live" && conn.running && setState("reconnecting", handlers.state), 1000);
  while (conn.running) {
    const ctl = new AbortController();
    conn.ctl = ctl;
    try {
      const headers = { Accept: "text/event-stream" };
      if (conn.lastEventId) headers["Last-Event-ID"] = conn.lastEventId;
      const r = await fetch("/api/v1/stream", { headers, signal: ctl.signal, cache: "no-store", credentials: "same-origin" });
      if (r.status === 401) {
        conn.running = false;
        handlers.unauthorized();
        return;
      }
      if (!r.ok || !r.body) throw new Error(`stream ${r.status}`);
      backoff = 500;
      await read(r.body.getReader(), handlers);
    } catch (e) {
      if (!conn.running) return;
    }
    if (!conn.running) return;
    setState("reconnecting", handlers.state);
    // wait for the backoff, or less: the device's network coming back wakes the retry at once
    await new Promise((res) => {
      const timer = setTimeout(res, backoff);
      conn.wake = () => {
        clearTimeout(timer);
        res();
      };
    });
    conn.wake = null;
    backoff = Math.min(backoff * 2, 10_000);
  }
}

async function read(reader, handlers) {
  const dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.search(/\r?\n\r?\n/)) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + (buf[i] === "\r" ? 4 : 2));
      const ev = { event: "message", data: "", id: null };
      for (const line of block.split(/\r?\n/)) {
        if (!line || line.startsWith(":")) continue;
        const k = line.indexOf(":");
        const field = k < 0 ? line : line.slice(0, k);
        const val = k < 0 ? "" : line.slice(k + 1).replace(/^ /, "");
        if (field === "data") ev.data += (ev.data ? "\n" : "") + val;
        else if (field === "event") ev.event = val;
        else if (field === "id") ev.id = val;
      }
      if (ev.id) conn.lastEventId = ev.id;
      if (ev.event === "hello") setState("live", handlers.state);
      if (ev.data) {
        try {
          handlers.event(ev.event, JSON.parse(ev.data));
        } catch (e) {
          /* a frame the page does not understand is skipped */
        }
      }
    }
  }
}
