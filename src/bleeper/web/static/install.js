// The installable app: the service worker (sw.js keeps the app shell, so the page opens without the server),
// the offline screen that waits for the server, and Web Push for accounts.

const $ = (id) => document.getElementById(id);

let settings = { notificationText: false, pushKey: null };
let failures = 0; // attempts in a row that found no server: each doubles the wait, up to a minute
let retryNow = null; // ends the current wait early (the offline screen's button)
let account = null; // {command}: signed in with a password (push subscriptions belong to accounts)
let subscribing = false;

// Register the service worker, then wait for the server (the offline screen shows meanwhile). Resolves with
// the server's page settings (GET /config.json).
export function startInstall() {
  registerWorker();
  $("offline-retry").addEventListener("click", () => retryNow?.());
  return untilReachable();
}

async function registerWorker() {
  if (!("serviceWorker" in navigator)) return;
  try {
    await navigator.serviceWorker.register("/sw.js", { scope: "/", updateViaCache: "none" });
  } catch (error) {
    console.info("no service worker (the page works without one, but not offline):", error.message);
  }
}

// -- the offline screen ----------------------------------------------------------------------------------

async function fetchSettings() {
  const response = await fetch("/config.json", { cache: "no-store" });
  if (!response.ok) throw new Error(`/config.json answered ${response.status}`);
  return response.json();
}

// Until the server answers: the offline screen in place of the sign-in form, retrying with a growing wait.
// failedAlready: the caller just failed to reach it, so wait before the first try.
async function untilReachable(failedAlready = false) {
  if (failedAlready) await offlinePause();
  for (;;) {
    try {
      settings = { ...settings, ...(await fetchSettings()) };
      showOffline(false);
      return settings;
    } catch (error) {
      console.info("the server cannot be reached:", error.message);
      await offlinePause();
    }
  }
}

async function offlinePause() {
  failures += 1;
  const seconds = Math.min(60, 5 * 2 ** (failures - 1));
  $("offline-text").textContent = `The Bleeper server cannot be reached. Retrying in ${seconds} s…`;
  showOffline(true);
  await new Promise((resolve) => {
    const timer = setTimeout(resolve, seconds * 1000);
    retryNow = () => {
      clearTimeout(timer);
      resolve();
    };
  });
  retryNow = null;
  $("offline-text").textContent = "The Bleeper server cannot be reached. Trying again now…";
}

function showOffline(offline) {
  if ($("offline").hidden === !offline) return; // as it is (and a page signed in meanwhile keeps its form hidden)
  $("offline").hidden = !offline;
  $("signin").hidden = offline;
}

// The WebSocket could not open at sign-in: wait on the offline screen, then sign in again with what was typed.
export async function signInWhenBack(signIn) {
  await untilReachable(true);
  signIn();
}

// -- after sign-in: Web Push ------------------------------------------------------------------------------

// command(line) sends a protocol command; password: whether this is an account.
export function installSignedIn({ password, command }) {
  failures = 0;
  account = password ? { command } : null;
  subscribePush();
}

// Notifications were just allowed: an account signed in already can subscribe now.
export function permissionGranted() {
  subscribePush();
}

// Accounts only, when the server has a push key and notifications are allowed: subscribe this browser and
// tell the server (PUSH ADD). Every failure (no push service, a server without PUSH) is quiet: the page and
// its WebSocket alert as before.
async function subscribePush() {
  if (!account || !settings.pushKey || subscribing || !("serviceWorker" in navigator) || !("PushManager" in window)) {
    return;
  }
  subscribing = true;
  try {
    const registration = await navigator.serviceWorker.ready;
    if (await registration.pushManager.permissionState({ userVisibleOnly: true }) !== "granted") return;
    const key = fromBase64Url(settings.pushKey);
    let subscription = await registration.pushManager.getSubscription();
    if (subscription && !sameBytes(subscription.options.applicationServerKey, key)) {
      await subscription.unsubscribe(); // made for another server key: useless now
      subscription = null;
    }
    subscription ||= await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
    const { endpoint, keys } = subscription.toJSON(); // the keys come base64url-encoded already
    const reply = await account.command(`PUSH ADD ${endpoint} ${keys.p256dh} ${keys.auth}`);
    if (reply.code < 200 || reply.code > 299) console.info(`push not registered: ${reply.code} ${reply.text}`);
  } catch (error) {
    console.info("push unavailable:", error.message);
  } finally {
    subscribing = false;
  }
}

function fromBase64Url(text) {
  const base64 = text.replaceAll("-", "+").replaceAll("_", "/").padEnd(Math.ceil(text.length / 4) * 4, "=");
  return Uint8Array.from(atob(base64), (char) => char.charCodeAt(0));
}

function sameBytes(buffer, bytes) {
  if (!buffer) return false;
  const other = new Uint8Array(buffer);
  return other.length === bytes.length && other.every((byte, i) => byte === bytes[i]);
}
