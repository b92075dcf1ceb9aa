// The alarm that cannot be missed (docs/console.md): a new or escalated critical/major incident
// rings (a looping <audio> element) until someone on this screen acknowledges it or it is accepted
// anywhere; a browser notification names the place and type; the tab title counts what is
// unacknowledged. Mute for N minutes and a test sound are always at hand.
import { $, t, label, fmtTime } from "./i18n.js";

const URGENT = new Set(["critical", "major"]);
const WAITING = new Set(["new", "dispatched", "reopened"]); // nobody has accepted it yet
const RING_AGAIN = new Set(["escalated", "renotified", "sla_missed"]);

export const alarm = {
  unacked: new Map(), // incident id -> incident
  muteUntil: 0,
  testing: false,
  notified: 0,
  baseTitle: "",
  describe: (inc) => inc.type,
  open: () => {},
};

export function isUrgent(inc) {
  return URGENT.has(inc.severity) || Boolean(inc.life_safety);
}

// Called for every incident change seen (list load or stream event).
export function consider(inc, kind) {
  const waiting = WAITING.has(inc.state);
  if (!waiting || !isUrgent(inc)) {
    alarm.unacked.delete(inc.id); // accepted (anywhere), handled, closed or not urgent
  } else if (kind === "load" || kind === "created" || RING_AGAIN.has(kind) || kind === "severity_changed") {
    const fresh = !alarm.unacked.has(inc.id);
    alarm.unacked.set(inc.id, inc);
    if (fresh || RING_AGAIN.has(kind)) notify(inc);
  } else if (alarm.unacked.has(inc.id)) {
    alarm.unacked.set(inc.id, inc);
  }
  update();
}

export function acknowledge() {
  alarm.unacked.clear();
  update();
}

export function forget(id) {
  alarm.unacked.delete(id);
  update();
}

export function reset() {
  alarm.unacked.clear();
  alarm.muteUntil = 0;
  update();
}

export function mute(minutes) {
  alarm.muteUntil = Date.now() + minutes * 60_000;
  update();
  setTimeout(update, minutes * 60_000 + 50);
}

export function unmute() {
  alarm.muteUntil = 0;
  update();
}

export function testSound() {
  alarm.testing = true;
  update();
  setTimeout(() => {
    alarm.testing = false;
    update();
  }, 2500);
}

// Browsers allow sound only after a user gesture: the sign-in tap (or any tap) plays and pauses it.
export function unlock() {
  const a = $("siren");
  a.muted = true;
  const p = a.play();
  const done = () => {
    a.pause();
    a.currentTime = 0;
    a.muted = false;
    update();
  };
  if (p && p.then) p.then(done, () => {});
  else done();
}

export async function askNotifications() {
  if (!("Notification" in window)) return;
  if (Notification.permission === "default") {
    try {
      await Notification.requestPermission();
    } catch (e) {
      /* older browsers: callback form only; the button below asks again */
    }
  }
  notifyButton();
}

export function notifyButton() {
  const b = $("notify-on");
  b.hidden = !("Notification" in window) || Notification.permission !== "default";
}

function notify(inc) {
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  try {
    const n = new Notification(`${label("sev", inc.severity)} · ${label("type", inc.type)}`, {
      body: alarm.describe(inc),
      tag: inc.id,
      requireInteraction: true,
      renotify: true,
    });
    n.onclick = () => {
      window.focus();
      alarm.open(inc.id);
      n.close();
    };
    alarm.notified += 1;
    document.body.dataset.notified = String(alarm.notified);
  } catch (e) {
    /* Android Chrome allows notifications only from a service worker: the sound and title remain */
  }
}

export function update() {
  const n = alarm.unacked.size;
  const muted = alarm.muteUntil > Date.now();
  document.body.dataset.alarms = String(n);
  document.title = n > 0 ? `(${n}) ${alarm.baseTitle}` : alarm.baseTitle;
  const bar = $("alarm-bar");
  bar.hidden = n === 0;
  $("alarm-text").textContent = n > 0 ? t("alarm_banner", { n }) : "";
  document.body.classList.toggle("alarm", n > 0);
  $("muted-until").textContent = muted ? t("muted_until", { time: fmtTime(alarm.muteUntil, false) }) : "";
  $("unmute").hidden = !muted;
  const a = $("siren");
  const ring = alarm.testing || (n > 0 && !muted);
  if (ring && a.paused) {
    const p = a.play();
    if (p && p.catch) p.catch(() => ($("sound-msg").textContent = t("sound_blocked")));
    // vibration is allowed only after the person touched the page (else the browser complains)
    const touched = !navigator.userActivation || navigator.userActivation.hasBeenActive;
    if (navigator.vibrate && touched) navigator.vibrate([400, 200, 400]);
  } else if (!ring && !a.paused) {
    a.pause();
    a.currentTime = 0;
  }
  if (ring && !a.paused) $("sound-msg").textContent = "";
  document.body.dataset.audio = ring ? "playing" : "paused";
}
