// Bleeper's service worker (served at /sw.js so that its scope is the whole site).
//
// It keeps the APP SHELL ONLY, so the page opens when the server cannot be reached and can say so. Nothing
// else is ever stored: not /ws, not /config.json, no message, no name. Patient data must not persist in a
// browser cache. It also shows notifications for Web Push messages (which carry no text) and handles clicks
// on every notification, the page's included.

// Every file the page needs to start: when a module is added under static/, add it here too (a test checks)
// and bump the version, which makes browsers install this worker again and delete the old caches.
const CACHE = "bleeper-shell-v1";
const SHELL = [
  "/",
  "/static/app.js",
  "/static/protocol.js",
  "/static/timeline.js",
  "/static/layout.js",
  "/static/roles.js",
  "/static/announce.js",
  "/static/alerts.js",
  "/static/install.js",
  "/static/style.css",
  "/manifest.webmanifest",
  "/static/icons/icon-32.png",
  "/static/icons/icon-192.png",
  "/static/icons/icon-512.png",
  "/static/icons/maskable-512.png",
];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

// Only our own old versions are deleted; then this version serves the pages already open too (it only ever
// answers from the network first, so an open page cannot get files older than those it has).
self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) if (name.startsWith("bleeper-") && name !== CACHE) await caches.delete(name);
    await self.clients.claim();
  })());
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin) return;
  if (request.mode === "navigate") {
    event.respondWith(fromNetwork(event, url.pathname === "/" && !url.search ? "/" : null, "/"));
  } else if ((SHELL.includes(url.pathname) || url.pathname.startsWith("/static/")) && !url.search) {
    // static/ holds the app shell only, so a file missing from the list is safe to keep as well.
    event.respondWith(fromNetwork(event, url.pathname, url.pathname));
  }
  // Anything else (/config.json, /ws, /healthz) is left to the browser: never answered from, or put in, a cache.
});

// Network first, so an online page always runs the server's current files; the stored copy (refreshed on
// each success) answers only when the network fails. store: the shell entry to refresh, or null.
async function fromNetwork(event, store, fallback) {
  try {
    const response = await fetch(event.request);
    if (store && response.ok && response.type === "basic") {
      const copy = response.clone();
      event.waitUntil(caches.open(CACHE).then((cache) => cache.put(store, copy))); // the worker lives until it is kept
    }
    return response;
  } catch (error) {
    const cached = await caches.match(fallback);
    if (cached) return cached;
    throw error;
  }
}

// -- notifications ------------------------------------------------------------------------------------

// The wording of alerts.js's notifications (a classic worker cannot import the page's modules). Never the text.
function describe(kind, from) {
  if (kind === "message") return { title: `Message from ${from}`, body: "Open Bleeper to read it" };
  const still = kind === "alert" ? ", still waiting" : "";
  return { title: `Urgent page from ${from}${still}`, body: "Open Bleeper to read and acknowledge it" };
}

// A push message: {"kind": "urgent"|"message"|"alert", "id": <n>, "from": "<name>"}, never the text.
self.addEventListener("push", (event) => {
  event.waitUntil(showPush(event.data));
});

async function showPush(data) {
  let info = {};
  try {
    info = data ? data.json() : {};
  } catch {
    // not JSON: still tell the person that something waits
  }
  const kind = ["urgent", "alert", "message"].includes(info.kind) ? info.kind : "urgent";
  const from = typeof info.from === "string" && info.from ? info.from : "Bleeper";
  const id = Number.isInteger(info.id) ? info.id : 0;
  // A page in front has it already, from its WebSocket, and is sounding it.
  const windows = await self.clients.matchAll({ type: "window" });
  if (windows.some((client) => client.focused && client.visibilityState === "visible")) return;
  const urgent = kind !== "message";
  const { title, body } = describe(kind, from);
  // The same tag as the page's notification for this message: one replaces the other instead of doubling it.
  await self.registration.showNotification(title, {
    body,
    tag: `bleeper-${id}`,
    renotify: true,
    requireInteraction: urgent,
    icon: "/static/icons/icon-192.png",
    data: { id, from, kind },
    actions: urgent ? [{ action: "ack", title: "Acknowledge" }] : [],
  });
}

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil(openFromNotification(event.notification, event.action));
});

// A click on a notification (action "ack": its Acknowledge button). An open page is told, and focused: it opens
// the conversation, or acknowledges. With no page open, a new one opens at /?urgent=<id> or /?open=<id>: after
// sign-in it opens the conversation and, for an urgent page, puts the focus on the banner's Acknowledge button.
// It does not acknowledge by itself: a fresh sign-in takes a while, and whoever acknowledges should see the
// page's text first. (Named at the top level so that the tests can run the same path.)
async function openFromNotification(notification, action) {
  const data = notification.data || {};
  const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  const page = windows.find((client) => client.focused) || windows.find((client) => client.visibilityState === "visible")
    || windows[0];
  if (page) {
    page.postMessage({ type: "bleeper-notification", action: action === "ack" ? "ack" : "open", id: data.id, from: data.from });
    try {
      await page.focus();
    } catch {
      // allowed only during a real click
    }
    return;
  }
  const urgent = data.kind === "urgent" || data.kind === "alert";
  await self.clients.openWindow(`/?${urgent ? "urgent" : "open"}=${Number(data.id) || 0}`);
}
