// Alerts that reach a person: system notifications while the page is in the background, a repeating tone and
// a flashing title and favicon while an urgent page waits, and a mute switch for everything but urgent pages.
//
// Notifications show who sent what kind of message, never its text, unless the server allows it
// (`bleeper serve --web-notification-text`): a locked phone's screen is seen by anyone passing by.

const $ = (id) => document.getElementById(id);

const MUTE_KEY = "bleeper.mute"; // a setting, not patient data
const TONE_EVERY = 2000; // ms between the urgent tone's patterns
const FLASH_EVERY = 1000; // ms between the title's two states

// What the alerts did, for the tests and for anyone debugging a page that stayed silent.
export const probe = {
  permission: "default", // "default" | "granted" | "denied" | "unsupported"
  muted: false,
  toneOn: false,
  waiting: 0, // urgent messages waiting for an acknowledgement
  notifications: [], // {title, body, tag, requireInteraction, via}, as raised
  chimes: 0, // private-message sounds played
};

let handlers = { open: () => {}, acknowledge: () => {}, granted: () => {} };
let settings = { notificationText: false };
let signedIn = false;
let pending = null; // {action, id, from}: a notification's click that came before sign-in
let audio = null; // the AudioContext, made on a click (browsers keep it silent otherwise)
let toneTimer = null;
let flashTimer = null;
let waitingIds = [];
const pageNotifications = new Map(); // tag -> Notification, for browsers without a service worker
const original = { title: document.title, icon: null };

// -- setting up --------------------------------------------------------------------------------------------

// handlers: open(id, from) shows a message's conversation; acknowledge(id, from) answers an urgent one;
// granted() runs when notifications become allowed.
export function initAlerts(given) {
  handlers = { ...handlers, ...given };
  original.title = document.title;
  original.icon = favicon().href;
  setMuted(remembered() === "1");
  $("mute").addEventListener("click", () => setMuted(!probe.muted));
  $("alerts-enable").addEventListener("click", askPermission);
  // Any click or key also lets the sound start, should the sign-in click not have (a sign-in made again by the
  // offline screen, a browser stricter than most).
  for (const type of ["pointerdown", "keydown"]) document.addEventListener(type, unlockAudio, { capture: true });
  readClickFromAddress();
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.addEventListener("message", (event) => {
      const data = event.data || {};
      if (data.type === "bleeper-notification") clicked(data.action, Number(data.id), data.from || null);
    });
    navigator.serviceWorker.startMessages();
  }
  watchPermission();
}

// The server's page settings (GET /config.json).
export function configureAlerts(given) {
  settings = { ...settings, ...given };
}

// Called in the sign-in click: the one moment a browser lets a page start its audio.
export function unlockAudio() {
  const Context = window.AudioContext || window.webkitAudioContext;
  if (!Context) return;
  if (!audio) audio = new Context();
  if (audio.state === "suspended") audio.resume().catch(() => {});
}

export function alertsSignedIn() {
  signedIn = true;
  $("mute").hidden = false;
  renderPermission();
  if (pending) {
    // Opened from a notification while signed out: show it, but acknowledging waits for a look at the banner.
    handlers.open(pending.id, pending.from);
    pending = null;
  }
}

// -- permission ----------------------------------------------------------------------------------------------

async function watchPermission() {
  if (!("Notification" in window)) {
    probe.permission = "unsupported";
    renderPermission();
    return;
  }
  probe.permission = Notification.permission;
  try {
    // Follows changes made in the browser's site settings while the page is open.
    const status = await navigator.permissions.query({ name: "notifications" });
    const update = () => {
      probe.permission = status.state === "prompt" ? "default" : status.state;
      renderPermission();
      if (probe.permission === "granted") handlers.granted();
    };
    status.addEventListener("change", update);
    update();
  } catch {
    renderPermission(); // no Permissions API: Notification.permission is what there is
  }
}

// Asked only from the "Enable alerts" button, after sign-in: a prompt out of the blue is dismissed unread.
async function askPermission() {
  unlockAudio();
  try {
    probe.permission = await Notification.requestPermission();
  } catch (error) {
    console.warn("notification permission:", error);
  }
  renderPermission();
  if (probe.permission === "granted") handlers.granted();
}

function renderPermission() {
  const state = probe.permission;
  $("alerts-ask").hidden = !signedIn || state !== "default";
  $("alerts-blocked").hidden = !signedIn || (state !== "denied" && state !== "unsupported");
  $("alerts-blocked").textContent = state === "unsupported"
    ? "Alerts unavailable: this browser cannot show notifications, so pages will only show in this tab"
    : "Alerts blocked: pages will only show in this tab — allow notifications in the browser's site settings";
}

// -- mute ----------------------------------------------------------------------------------------------------

// Mute silences private messages only: urgent pages always sound and always notify.
function setMuted(muted) {
  probe.muted = muted;
  $("mute").setAttribute("aria-pressed", String(muted));
  try {
    localStorage.setItem(MUTE_KEY, muted ? "1" : "0");
  } catch {
    // storage turned off: muted for this page only
  }
}

function remembered() {
  try {
    return localStorage.getItem(MUTE_KEY);
  } catch {
    return null;
  }
}

// -- messages ------------------------------------------------------------------------------------------------

// Someone is looking at the page: the page itself is the alert.
const inFront = () => !document.hidden && document.hasFocus();

// A message the page has just shown. Urgent ones always notify (from the background); private ones unless
// muted. Group and everyone messages do not interrupt.
export function messageArrived(msg, mine) {
  if (mine) return;
  if (msg.urgent) {
    notify({ kind: "urgent", id: msg.id, from: msg.from, text: msg.text });
  } else if (msg.to.startsWith("@") && !probe.muted && !inFront()) {
    chime();
    notify({ kind: "message", id: msg.id, from: msg.from, text: msg.text });
  }
}

// ALERT: an urgent message still waits. Its notification comes again, replacing the first (same tag).
export function stillWaiting(id, from, text) {
  notify({ kind: "alert", id, from, text });
}

function describe({ kind, from, text }) {
  const body = settings.notificationText && text ? text : null;
  if (kind === "message") return { title: `Message from ${from}`, body: body || "Open Bleeper to read it" };
  if (kind === "alert") {
    return { title: `Urgent page from ${from}, still waiting`, body: body || "Open Bleeper to read and acknowledge it" };
  }
  return { title: `Urgent page from ${from}`, body: body || "Open Bleeper to read and acknowledge it" };
}

async function notify(message) {
  if (inFront() || probe.permission !== "granted") return;
  const urgent = message.kind !== "message";
  const { title, body } = describe(message);
  const options = {
    body,
    tag: `bleeper-${message.id}`, // one per message: a re-alert replaces it rather than piling up
    renotify: true, // and still sounds and vibrates again
    requireInteraction: urgent, // an urgent page stays on screen until someone acts on it
    icon: "/static/icons/icon-192.png",
    data: { id: message.id, from: message.from, kind: message.kind },
  };
  const registration = await workerRegistration();
  // An urgent page acknowledged (here or elsewhere) while this was under way must not come back on screen:
  // an ALERT the server sent just before it took the ACK arrives just before the ACK's answer.
  const settled = () => urgent && !waitingIds.includes(message.id);
  if (settled()) return;
  try {
    if (registration) {
      // Through the service worker, so the Acknowledge button works and a click reaches a page even if this
      // one has gone.
      const actions = urgent ? [{ action: "ack", title: "Acknowledge" }] : [];
      await registration.showNotification(title, { ...options, actions });
      probe.notifications.push({ title, body, tag: options.tag, requireInteraction: urgent, via: "service-worker" });
      if (settled()) {
        for (const shown of await registration.getNotifications({ tag: options.tag })) shown.close();
      }
      return;
    }
    pageNotification(title, options);
    probe.notifications.push({ title, body, tag: options.tag, requireInteraction: urgent, via: "page" });
  } catch (error) {
    console.warn("could not show a notification:", error);
  }
}

// The active service worker's registration, or null (none, or not ready within a few seconds).
async function workerRegistration() {
  if (!("serviceWorker" in navigator)) return null;
  const registration = await navigator.serviceWorker.getRegistration();
  if (!registration) return null;
  if (registration.active) return registration;
  const late = new Promise((resolve) => setTimeout(() => resolve(null), 3000));
  return Promise.race([navigator.serviceWorker.ready, late]);
}

// Without a service worker: a plain Notification (no action buttons there), whose click comes back here.
function pageNotification(title, options) {
  pageNotifications.get(options.tag)?.close();
  const notification = new Notification(title, options);
  notification.addEventListener("click", () => {
    notification.close();
    clicked("open", options.data.id, options.data.from);
  });
  pageNotifications.set(options.tag, notification);
}

// A notification's click, from the service worker or a page notification.
function clicked(action, id, from) {
  window.focus();
  if (!signedIn) {
    pending = { action, id, from };
    return;
  }
  if (action === "ack") handlers.acknowledge(id, from);
  else handlers.open(id, from);
}

// The service worker opened this page for a notification (/?urgent=<id> or /?open=<id>): remember it for
// after sign-in, and tidy the address so a reload does not repeat it.
function readClickFromAddress() {
  const query = new URLSearchParams(location.search);
  const id = Number(query.get("urgent") || query.get("open"));
  if (!id) return;
  pending = { action: "open", id, from: null };
  history.replaceState(null, "", "/");
}

// Notifications of urgent messages no longer waiting (acknowledged, recalled) go away.
async function closeSettled(ids) {
  const settled = waitingIds.filter((id) => !ids.includes(id));
  waitingIds = ids;
  if (!settled.length) return;
  const registration = await workerRegistration();
  for (const id of settled) {
    pageNotifications.get(`bleeper-${id}`)?.close();
    if (!registration) continue;
    for (const notification of await registration.getNotifications({ tag: `bleeper-${id}` })) notification.close();
  }
}

// -- the urgent tone, title and favicon ---------------------------------------------------------------------

// The urgent messages waiting, whenever they change. While any waits: a tone every 2 s, a flashing title and
// a badge on the favicon; when none is left, all three stop.
export function urgentWaiting(ids) {
  probe.waiting = ids.length;
  closeSettled(ids);
  if (!ids.length) {
    stopTone();
    clearInterval(flashTimer);
    flashTimer = null;
    document.title = original.title;
    favicon().href = original.icon;
    return;
  }
  startTone();
  document.title = `(${ids.length}) URGENT - ${original.title}`;
  favicon().href = badgedIcon(ids.length);
  if (!flashTimer) flashTimer = setInterval(flashTitle, FLASH_EVERY);
}

function flashTitle() {
  const urgentTitle = `(${probe.waiting}) URGENT - ${original.title}`;
  document.title = document.title === urgentTitle ? original.title : urgentTitle;
}

// Timers keep running in a background tab (throttled to once a second at most), and a page that makes sound
// is spared the heavier throttling, so a 2 s interval keeps its rhythm.
function startTone() {
  if (toneTimer) return;
  probe.toneOn = true;
  urgentPattern();
  toneTimer = setInterval(urgentPattern, TONE_EVERY);
}

function stopTone() {
  clearInterval(toneTimer);
  toneTimer = null;
  probe.toneOn = false;
}

// Three short high-low beeps, like a pager.
function urgentPattern() {
  beep([[0, 1046, 0.16], [0.22, 784, 0.16], [0.44, 1046, 0.16]], 0.25);
}

// One soft rising pair: someone wrote to you.
function chime() {
  probe.chimes += 1;
  beep([[0, 660, 0.12], [0.15, 880, 0.18]], 0.12);
}

// notes: [start offset s, frequency Hz, length s]. Each note fades in and out, so it does not click.
function beep(notes, volume) {
  if (!audio || audio.state !== "running") return;
  const now = audio.currentTime + 0.02;
  for (const [offset, frequency, length] of notes) {
    const start = now + offset;
    const oscillator = audio.createOscillator();
    const gain = audio.createGain();
    oscillator.type = "square";
    oscillator.frequency.value = frequency;
    gain.gain.setValueAtTime(0.0001, start);
    gain.gain.exponentialRampToValueAtTime(volume, start + 0.01);
    gain.gain.setValueAtTime(volume, start + length - 0.03);
    gain.gain.exponentialRampToValueAtTime(0.0001, start + length);
    oscillator.connect(gain).connect(audio.destination);
    oscillator.start(start);
    oscillator.stop(start + length);
  }
}

// The page's <link rel="icon">, made if the page has none.
function favicon() {
  let link = document.querySelector('link[rel~="icon"]');
  if (!link) {
    link = document.createElement("link");
    link.rel = "icon";
    link.href = "/static/icons/icon-32.png";
    document.head.append(link);
  }
  return link;
}

// The app's icon with the number waiting on a white disc, as a data: URL (the CSP allows data: images).
function badgedIcon(count) {
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 64;
  const context = canvas.getContext("2d");
  context.fillStyle = "#b00020";
  context.beginPath();
  if (context.roundRect) context.roundRect(2, 2, 60, 60, 12);
  else context.rect(2, 2, 60, 60);
  context.fill();
  context.fillStyle = "#ffffff";
  context.font = "bold 40px system-ui, sans-serif";
  context.textAlign = "center";
  context.textBaseline = "middle";
  context.fillText("B", 26, 34);
  context.beginPath();
  context.arc(46, 18, 17, 0, 2 * Math.PI);
  context.fillStyle = "#ffffff";
  context.fill();
  context.fillStyle = "#b00020";
  context.font = "bold 26px system-ui, sans-serif";
  context.fillText(count > 9 ? "9+" : String(count), 46, 19);
  return canvas.toDataURL("image/png");
}
