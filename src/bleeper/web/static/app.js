// The Bleeper web client. Everything received is inserted with textContent, never as HTML.
import { LineSocket, fields, parseMessage } from "./protocol.js";
import { Timeline, clock, timeElement, waited } from "./timeline.js";
import { createRoles } from "./roles.js";
import * as layout from "./layout.js";
import { announceMessage } from "./announce.js";
import * as alerts from "./alerts.js";
import { installSignedIn, permissionGranted, signInWhenBack, startInstall } from "./install.js";

const $ = (id) => document.getElementById(id);
const keyOf = (name) => name.normalize("NFKC").toLowerCase();
const EVERYONE = "*";
let timeline = null; // the open conversation's messages (timeline.js), made once the page has loaded
let roles = null;    // the on-call panel (roles.js)

const state = {
  socket: null,
  me: null,            // {name, key, password|null}
  conversations: new Map(),
  active: EVERYONE,
  seen: new Set(),     // message ids shown, so SYNC and history never show one twice
  // Accounts number every message they are sent (MSG <seq>). A crashed server may send one again (its
  // "delivered" mark is written about once a second), and SYNC may overlap what arrived: each number counts once.
  lastSeq: 0,          // everything up to here has arrived (SYNC asks from it after a reconnect)
  ahead: new Set(),    // numbers that arrived beyond a gap, waiting for the gap to fill
  repeats: 0,          // messages dropped because their number had been seen (for diagnostics and tests)
  added: 0,            // messages received and shown, to count those that arrive during a reconnect
  urgent: new Map(),   // id -> {from, text, time}
  urgentTimer: null,   // refreshes the banner's "N min ago"
  sent: new Map(),     // my message id -> its marks element
  // Messages not yet confirmed, in order: written while offline, or (accounts) whose 250 was lost with the
  // connection. Shown as pending in their conversation and sent once the connection is back.
  outbox: [],
  reconnecting: false, // identified again, but groups, catch-up and the outbox are not done yet
  flushing: false,     // the outbox is being sent
  people: new Map(),   // key -> {name, status, note}
  retry: 0,
  stopped: false,      // QUIT, kicked, or a failed sign-in: do not reconnect
  whoTimer: null,
};

// One command to the server; while disconnected it answers at once with code 0, as a lost connection does,
// marked unsent because it never left.
function command(line) {
  if (!state.socket) return Promise.resolve({ code: 0, text: "not connected", items: [], unsent: true });
  return state.socket.command(line);
}

// -- conversations -----------------------------------------------------------------------------------

function conversation(key, label, target) {
  let conv = state.conversations.get(key);
  if (!conv) {
    // unread holds message ids, so a message read elsewhere (acknowledged from the banner) leaves the count.
    conv = { key, label, target, messages: [], unread: new Set(), historyLoaded: false, left: false };
    state.conversations.set(key, conv);
    renderConversations();
  }
  return conv;
}

// Which conversation a message belongs to, seen from me.
function conversationFor(from, to) {
  if (to === EVERYONE) return conversation(EVERYONE, "Everyone", null);
  if (to.startsWith("#")) return conversation(keyOf(to), to, to);
  const names = to.slice(1).split(",");
  const others = [...new Set([...names, from].filter((n) => keyOf(n) !== state.me.key))];
  if (names.length === 1) {
    const other = keyOf(from) === state.me.key ? names[0] : from;
    return conversation("@" + keyOf(other), other, other);
  }
  others.sort((a, b) => keyOf(a).localeCompare(keyOf(b)));
  return conversation("@" + others.map(keyOf).join(","), others.join(", "), others.join(","));
}

// The list of conversations: name, unread count, and (phones read the list first) the latest message.
function renderConversations() {
  const list = $("conversation-list");
  list.replaceChildren();
  const order = [...state.conversations.values()].sort((a, b) =>
    a.key === EVERYONE ? -1 : b.key === EVERYONE ? 1 : a.label.localeCompare(b.label));
  let elsewhere = 0;
  for (const conv of order) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "conversation-button" + (conv.key === state.active ? " active" : "");
    button.dataset.key = conv.key;
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = conv.label;
    button.append(label);
    if (conv.key === state.active) button.setAttribute("aria-current", "true");
    if (conv.unread.size) {
      if (conv.key !== state.active || !layout.conversationShown()) elsewhere += conv.unread.size;
      // The badge shows the number; screen readers hear "3 unread" from the hidden words beside it.
      const badge = document.createElement("span");
      badge.className = "unread";
      badge.textContent = String(conv.unread.size);
      badge.setAttribute("aria-hidden", "true");
      const words = document.createElement("span");
      words.className = "visually-hidden";
      words.textContent = `, ${conv.unread.size} unread`;
      button.append(" ", badge, words);
    }
    const last = conv.messages.at(-1);
    if (last) {
      // A description, not part of the name: "bob" stays "bob, 1 unread" to a screen reader's list of buttons.
      const preview = document.createElement("span");
      preview.className = "preview";
      preview.id = `preview-${list.children.length}`;
      const who = keyOf(last.from) === state.me.key ? "you" : last.from;
      const words = document.createElement("span");
      words.className = "preview-text";
      words.textContent = `${who}: ${last.text}`;
      preview.append(words, " ", timeElement(last.time));
      preview.setAttribute("aria-hidden", "true");
      button.setAttribute("aria-describedby", preview.id);
      button.append(" ", preview);
    }
    button.addEventListener("click", () => openConversation(conv.key));
    item.append(button);
    list.append(item);
  }
  layout.setUnreadElsewhere(elsewhere);
}

// Open a conversation; reveal: show it (on a phone, in place of the list) and put the cursor in the message box.
function openConversation(key, { reveal = true } = {}) {
  const previous = state.conversations.get(state.active);
  if (previous && previous.key !== key) previous.markerBefore = null;
  state.active = key;
  const conv = state.conversations.get(key);
  // "New messages" goes above the first unread, and stays there while the conversation is open.
  if (conv.unread.size) conv.markerBefore = Math.min(...conv.unread);
  if (reveal) layout.showConversation();
  if (layout.conversationShown()) conv.unread.clear();
  $("title").textContent = conv.label;
  $("urgent-toggle").disabled = key === EVERYONE;
  renderConversations();
  renderMessages({ opening: true });
  if (!conv.historyLoaded && key !== EVERYONE) loadHistory(conv);
  if (!reveal) return;
  // On a phone the on-screen keyboard would cover half the conversation: focus its title instead.
  if (layout.isPhone()) $("title").focus();
  else $("text").focus();
}

async function loadHistory(conv) {
  conv.historyLoaded = true;
  const reply = await command(`HISTORY ${conv.target} 50`);
  if (reply.code !== 216) return;
  for (const item of reply.items) {
    const [id, time, from, to, text] = fields(item, 4);
    addMessage({ id: Number(id), time, from, to, text, urgent: false, seq: 0 }, { history: true });
  }
}

function addMessage(msg, { history = false } = {}) {
  if (state.seen.has(msg.id)) return null;
  state.seen.add(msg.id);
  const conv = conversationFor(msg.from, msg.to);
  conv.messages.push(msg);
  conv.messages.sort((a, b) => a.id - b.id);
  const mine = keyOf(msg.from) === state.me.key;
  const here = conv.key === state.active && layout.conversationShown();
  if (!history && !mine && (!here || document.hidden)) conv.unread.add(msg.id);
  if (!history && !mine && !msg.urgent) { // urgent ones are said by the banner, an alert
    announceMessage({ from: msg.from, text: msg.text, where: conv.label, here: here && !document.hidden });
  }
  renderConversations(); // the latest message shows under the conversation's name
  if (conv.key === state.active) renderMessages();
  return conv;
}

function renderMessages({ opening = false } = {}) {
  const conv = state.conversations.get(state.active);
  timeline.render({
    messages: conv.messages,
    pending: state.outbox.filter((item) => item.convKey === conv.key),
    markerBefore: conv.markerBefore ?? null,
    opening,
    isMine: (msg) => keyOf(msg.from) === state.me.key,
    marksFor,
    roleTo,
    myName: state.me.name,
  });
  markRead(conv);
}

// The receipt marks of my private, sub-group and urgent messages: one element per message, kept across
// re-renders, which DELIVERED and READ events update (updateMarks).
function marksFor(msg) {
  if (keyOf(msg.from) !== state.me.key || msg.to === EVERYONE) return null;
  let marks = state.sent.get(msg.id);
  if (!marks) {
    marks = document.createElement("span");
    marks.className = "marks";
    marks.dataset.delivered = "";
    marks.dataset.read = "";
    state.sent.set(msg.id, marks);
  }
  return marks;
}

// A message to an on-call role ("@cardio-oncall") is filed under its sender; say which role it paged. It is
// one sent to "@<name>" where the name is not mine, by someone else.
function roleTo(msg) {
  if (!msg.to.startsWith("@") || msg.to.includes(",") || keyOf(msg.from) === state.me.key) return null;
  return keyOf(msg.to.slice(1)) === state.me.key ? null : msg.to;
}

// Shown on screen is read: tell the sender (READ) for private, sub-group and urgent messages.
function markRead(conv) {
  if (document.hidden || !state.socket || !layout.conversationShown()) return;
  for (const msg of conv.messages) {
    if (msg.readSent || keyOf(msg.from) === state.me.key || msg.to === EVERYONE || msg.to.startsWith("#") && !msg.urgent) continue;
    msg.readSent = true;
    command(`READ ${msg.id}`);
  }
}

function updateMarks(id, kind, name) {
  const marks = state.sent.get(id);
  if (!marks) return;
  const names = new Set(marks.dataset[kind] ? marks.dataset[kind].split(",") : []);
  names.add(name);
  marks.dataset[kind] = [...names].join(",");
  const read = marks.dataset.read;
  const delivered = marks.dataset.delivered;
  marks.textContent = read ? `✓✓ read by ${read.replaceAll(",", ", ")}` : `✓ delivered to ${delivered.replaceAll(",", ", ")}`;
  marks.classList.toggle("read", Boolean(read));
}

// -- urgent messages ------------------------------------------------------------------------------------

function renderUrgent() {
  alerts.urgentWaiting([...state.urgent.keys()]); // the tone, title and favicon follow what waits
  const banner = $("urgent");
  const first = state.urgent.entries().next();
  if (first.done) {
    banner.hidden = true;
    clearInterval(state.urgentTimer);
    state.urgentTimer = null;
    return;
  }
  const [id, info] = first.value;
  const more = state.urgent.size > 1 ? ` (${state.urgent.size} waiting)` : "";
  const sent = `sent ${clock(info.time)} (${waited(info.time)})`;
  $("urgent-text").textContent = `URGENT from ${info.from}, ${sent}: ${info.text}${more}`;
  if (!state.urgentTimer) state.urgentTimer = setInterval(renderUrgent, 30_000); // keeps "N min ago" true
  $("ack").dataset.id = String(id);
  $("ack").setAttribute("aria-label", `Acknowledge urgent message ${id} from ${info.from}`);
  banner.hidden = false;
}

async function acknowledge(id = Number($("ack").dataset.id)) {
  const reply = await command(`ACK ${id}`);
  if (reply.code === 206 || reply.code === 404) {
    state.urgent.delete(id);
    renderUrgent();
  }
  if (reply.code === 206) readFromBanner(id);
  notice(`${reply.code} ${reply.text}`);
}

// A notification was clicked (alerts.js): show its message's conversation (or, not here, its sender's), and
// while an urgent page waits put the focus on the banner's Acknowledge button.
function openFromAlert(id, from) {
  const conv = [...state.conversations.values()].find((c) => c.messages.some((m) => m.id === id));
  if (conv) openConversation(conv.key);
  else if (from) openConversation(conversation("@" + keyOf(from), from, from).key);
  if (state.urgent.size) $("ack").focus();
}

// A notification's Acknowledge button: answered as from the banner.
async function acknowledgeFromAlert(id, from) {
  openFromAlert(id, from);
  await acknowledge(id);
}

// Acknowledging a page means it was read, wherever its conversation is: it leaves the unread count, and its
// sender is told (READ), once.
function readFromBanner(id) {
  for (const conv of state.conversations.values()) {
    const msg = conv.messages.find((m) => m.id === id);
    if (!msg) continue;
    conv.unread.delete(id);
    renderConversations();
    if (!msg.readSent) {
      msg.readSent = true;
      command(`READ ${id}`);
    }
    return;
  }
}

// -- events -------------------------------------------------------------------------------------------

function onEvent({ name, rest }) {
  switch (name) {
    case "MSG":
    case "URGENT": {
      const msg = parseMessage(name, rest);
      if (!firstTime(msg.seq)) {
        state.repeats += 1; // sent again (after a crash, or by an overlapping SYNC): already handled
        break;
      }
      if (addMessage(msg)) {
        state.added += 1;
        alerts.messageArrived(msg, keyOf(msg.from) === state.me.key); // a notification and a sound, if need be
      }
      if (msg.urgent) {
        state.urgent.set(msg.id, { from: msg.from, text: msg.text, time: msg.time });
        renderUrgent();
        roles.giveWay(); // a modal panel would keep the banner's Acknowledge out of reach
      }
      break;
    }
    case "DELIVERED":
    case "READ": {
      const [id, who] = fields(rest, 1);
      updateMarks(Number(id), name === "READ" ? "read" : "delivered", who);
      break;
    }
    case "ACKED": {
      const [id, who] = fields(rest, 1);
      state.urgent.delete(Number(id));
      renderUrgent();
      notice(`urgent message ${id} acknowledged by ${who}`);
      break;
    }
    case "ALERT": {
      const [id, from, waiting] = fields(rest, 2);
      // An ALERT the server sent just before it took this page's ACK (or another's) arrives after it: the
      // page no longer waits on that message, so it must not notify, flash or say "still waiting" again.
      if (!state.urgent.has(Number(id))) break;
      notice(`still waiting for your acknowledgement: message ${id} from ${from} (${waiting} waiting)`);
      alerts.stillWaiting(Number(id), from, state.urgent.get(Number(id))?.text);
      $("urgent").classList.remove("flash");
      void $("urgent").offsetWidth;
      $("urgent").classList.add("flash");
      break;
    }
    case "ESCALATION":
      notice(`urgent message ${rest.replace(" ", ": ")}`);
      break;
    case "RECALLED": {
      const [id, who] = fields(rest, 1);
      for (const conv of state.conversations.values()) {
        for (const msg of conv.messages) if (msg.id === Number(id)) msg.text = `[recalled by ${who}]`;
      }
      state.urgent.delete(Number(id));
      renderUrgent();
      renderMessages();
      break;
    }
    case "RENAMED": {
      const [from, to] = fields(rest, 1);
      notice(`${from} is now ${to}`);
      refreshPeople();
      break;
    }
    case "ONLINE":
    case "OFFLINE":
    case "PRESENCE":
    case "STATUS":
      refreshPeople();
      if (name === "STATUS") notice(`${rest.replace(" dnd", " does not want to be disturbed")}`);
      break;
    case "ANNOUNCE": {
      const [from, text] = fields(rest, 1);
      notice(`announcement from ${from}: ${text}`);
      break;
    }
    case "ONCALL":
      notice(`on call: ${rest}`);
      roles.handedOver(rest);
      break;
    case "CLOSING":
      notice(`the server is closing this connection: ${rest}`);
      if (rest.startsWith("kicked")) state.stopped = true;
      break;
    default:
      break;
  }
}

// Accounts: whether this message number is new. A guest's numbers count the messages of one connection and
// start again with each, so they are not tracked.
function firstTime(seq) {
  if (!state.me.password) return true;
  if (seq <= state.lastSeq || state.ahead.has(seq)) return false;
  state.ahead.add(seq);
  skipTo(state.lastSeq);
  return true;
}

// Everything up to seq has arrived (or is gone for good): move lastSeq there, and on over what arrived ahead.
function skipTo(seq) {
  state.lastSeq = Math.max(state.lastSeq, seq);
  for (const number of state.ahead) if (number <= state.lastSeq) state.ahead.delete(number);
  while (state.ahead.has(state.lastSeq + 1)) {
    state.ahead.delete(state.lastSeq + 1);
    state.lastSeq += 1;
  }
}

function refreshPeople() {
  clearTimeout(state.whoTimer);
  state.whoTimer = setTimeout(async () => {
    const reply = await command("WHO");
    if (reply.code !== 212) return;
    state.people.clear();
    for (const item of reply.items) {
      const [name, attrs] = fields(item, 1);
      const status = /(?:^| )status=(\S+)/.exec(attrs);
      const note = /(?:^| )note=(.*)$/.exec(attrs);
      state.people.set(keyOf(name), { name, status: status ? status[1] : "available", note: note ? note[1] : "" });
    }
    renderPeople();
  }, 100);
}

function renderPeople() {
  const list = $("people");
  list.replaceChildren();
  for (const person of [...state.people.values()].sort((a, b) => a.name.localeCompare(b.name))) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = `person status-${person.status}`;
    button.textContent = person.name;
    const status = document.createElement("span");
    status.className = "status";
    status.textContent = person.status + (person.note ? `: ${person.note}` : "");
    button.append(" ", status);
    button.setAttribute("aria-label", `${person.name}, ${status.textContent}; write privately`);
    if (keyOf(person.name) !== state.me.key) {
      button.addEventListener("click", () => {
        conversation("@" + keyOf(person.name), person.name, person.name);
        openConversation("@" + keyOf(person.name));
      });
    } else {
      button.disabled = true;
    }
    item.append(button);
    list.append(item);
  }
}

// -- sending ------------------------------------------------------------------------------------------

async function send(event) {
  event.preventDefault();
  const input = $("text");
  const text = input.value.trim();
  if (!text) return;
  input.value = "";
  if (text.startsWith("/")) { await slashCommand(text.slice(1)); return; }
  const conv = state.conversations.get(state.active);
  const urgent = $("urgent-toggle").checked && conv.key !== EVERYONE;
  const verb = urgent ? `URGENT ${conv.target}` : conv.key === EVERYONE ? "SAY" : `TELL ${conv.target}`;
  const to = conv.key === EVERYONE ? EVERYONE : conv.target;
  const item = { line: `${verb} ${text}`, to, convKey: conv.key, text, urgent };
  // An account's message carries an ID of the client's choosing: if its 250 is lost with the connection, it is
  // sent again with the same ID, and the server stores it once.
  if (state.me.password) item.clientId = crypto.randomUUID().slice(0, 16);
  $("urgent-toggle").checked = false;
  if (!state.socket) {
    queue(item);
    notice("not connected: it will be sent when the connection is back");
  } else if (state.outbox.length || state.reconnecting) {
    queue(item); // behind the messages still waiting, so they arrive in the order written
    if (!state.reconnecting && !state.flushing) showNotes(await sendQueued());
  } else {
    showNotes([await deliver(item)]);
  }
}

function showNotes(notes) {
  const said = notes.filter(Boolean);
  if (said.length) notice(said.join("\n"));
}

// Send one message; once the server has stored it (250) it replaces any pending copy on screen. Returns what
// the user should be told, or "" when all went well.
async function deliver(item) {
  const line = item.clientId ? `ID ${item.clientId} ${item.line}` : item.line;
  const reply = await command(line);
  if (reply.code === 250) {
    const [id, time] = fields(reply.text, 2);
    const to = item.to === EVERYONE || item.to.startsWith("#") ? item.to : "@" + item.to;
    unqueue(item);
    addMessage({ id: Number(id), time, from: state.me.name, to, text: item.text, urgent: item.urgent, seq: 0 });
    return "";
  }
  if (reply.code === 0 && (reply.unsent || item.clientId)) {
    // Never sent, so it cannot arrive twice; or an account's, whose ID makes sending it again safe.
    queue(item);
    return reply.unsent
      ? "not connected: it will be sent when the connection is back"
      : "not confirmed yet: it will be sent when the connection is back";
  }
  unqueue(item);
  giveBack(item.text);
  if (reply.code === 0) {
    // A guest's message went out but its 250 did not come back: sending it again might show it twice.
    return `the connection was lost before “${item.text}” was confirmed: it may or may not have been sent. `
      + "It is back in the message box: send it again if it did not arrive.";
  }
  return `not sent: ${reply.code} ${reply.text} (it is back in the message box)`;
}

function queue(item) {
  if (!state.outbox.includes(item)) state.outbox.push(item);
  if (item.convKey === state.active) renderMessages();
}

function unqueue(item) {
  if (!state.outbox.includes(item)) return;
  state.outbox = state.outbox.filter((other) => other !== item);
  if (item.convKey === state.active) renderMessages();
}

// Text that was not sent goes back where it was typed, unless something new is being typed there.
function giveBack(text) {
  const input = $("text");
  if (!input.value.trim()) input.value = text;
}

// The waiting messages, oldest first, until none is left or the connection goes again. Returns the notes
// about those that failed.
async function sendQueued() {
  state.flushing = true;
  const notes = [];
  try {
    while (state.socket && state.outbox.length) {
      const item = state.outbox[0];
      notes.push(await deliver(item));
      if (state.outbox[0] === item) break; // still waiting: the connection went again
    }
  } finally {
    state.flushing = false;
  }
  return notes.filter(Boolean);
}

async function slashCommand(text) {
  const reply = await command(text);
  if (reply.code === 0) giveBack("/" + text); // not carried out, or not known to be: keep what was typed
  const lines = [...reply.items, `${reply.code} ${reply.text}`];
  notice(lines.join("\n"));
  if (/^join\s/i.test(text) && reply.code === 203) {
    const group = fields(reply.text, 1)[0];
    conversation(keyOf(group), group, group).left = false;
    openConversation(keyOf(group));
  }
  if (/^(leave|part)\s/i.test(text) && reply.code === 204) {
    const conv = state.conversations.get(keyOf(fields(reply.text, 1)[0]));
    if (conv) conv.left = true; // its messages stay on screen, but it is not joined again after a reconnect
  }
}

async function joinGroup(event) {
  event.preventDefault();
  let group = $("join-name").value.trim();
  if (!group) return;
  if (!group.startsWith("#")) group = "#" + group;
  const reply = await command(`JOIN ${group}`);
  if (reply.code !== 203) { notice(`${reply.code} ${reply.text}`); return; }
  $("join-name").value = "";
  const shown = fields(reply.text, 1)[0];
  conversation(keyOf(shown), shown, shown).left = false;
  openConversation(keyOf(shown));
}

async function setStatus(event) {
  event.preventDefault();
  const note = $("status-note").value.trim();
  const reply = await command(`STATUS ${$("status").value}${note ? " " + note : ""}`);
  notice(`${reply.code} ${reply.text}`);
}

// -- connection -----------------------------------------------------------------------------------------

function notice(text) {
  const line = $("notice");
  line.textContent = text;
  // A long reply (/help) scrolls inside the line: then it takes keyboard focus too, so it can be scrolled.
  line.tabIndex = line.scrollHeight > line.clientHeight ? 0 : -1;
}

function showState(text, kind) {
  const element = $("connection");
  element.textContent = text;
  element.className = `connection ${kind}`;
}

function socketUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws`;
}

const identified = (reply) => reply.code === 201 || reply.code === 202;

// Connect and identify: NAME, or LOGIN for an account. Returns the reply that decided it.
async function connect(name, password) {
  const socket = new LineSocket(socketUrl());
  socket.addEventListener("line-event", (e) => onEvent(e.detail));
  socket.addEventListener("state", (e) => { if (e.detail === "connecting") showState("connecting…", "connecting"); });
  await socket.open();
  const reply = await socket.command(password ? `LOGIN ${name} ${password}` : `NAME ${name}`);
  if (identified(reply)) {
    state.socket = socket;
    socket.addEventListener("close", onClose);
  } else {
    socket.close();
  }
  return reply;
}

async function signIn(event) {
  event.preventDefault();
  alerts.unlockAudio(); // the click is the moment a browser lets the page start its sound
  const name = $("name").value.trim();
  const password = $("password").value || null;
  $("signin-error").textContent = "";
  $("signin-button").disabled = true;
  // Known before LOGIN is sent: the messages that waited for an account arrive ahead of its 202.
  state.me = { name, key: keyOf(name), password };
  conversation(EVERYONE, "Everyone", null);
  try {
    const reply = await connect(name, password);
    if (identified(reply)) {
      state.me.name = fields(reply.text, 1)[0];
      // "202 <name> logged in at <upto>; ...": where this account's numbers stand, so that a reconnect asks
      // for what is new rather than for everything other devices already had.
      const at = / logged in at (\d+);/.exec(reply.text);
      if (at) skipTo(Number(at[1]));
      started();
      if (/, [1-9]\d* more/.test(reply.text)) await catchUp(); // more waited than one LOGIN sends
      return;
    }
    if (reply.code === 409) {
      const suggestion = fields(reply.text, 1)[0];
      $("signin-error").textContent = `“${name}” is taken. Try “${suggestion}”, or sign in with its password.`;
      $("name").value = suggestion;
    } else if (reply.code === 403) {
      $("signin-error").textContent = "This server needs an account: enter your account name and password.";
    } else {
      $("signin-error").textContent = reply.text || "Could not sign in.";
    }
    $("name").focus();
  } catch (error) {
    $("signin-error").textContent = `Cannot reach the server (${error.message}). Check the address and try again.`;
    // Not even greeted: the offline screen waits for the server, then signs in with what was typed.
    if (error.code === 0) signInWhenBack(() => $("signin-form").requestSubmit());
  } finally {
    $("signin-button").disabled = false;
  }
  state.me = null;
  showState("offline", "offline"); // refused or unreachable: nothing is connected
}

function started() {
  $("signin").hidden = true;
  $("chat").hidden = false;
  $("me").textContent = state.me.name;
  showState("connected", "online");
  conversation(EVERYONE, "Everyone", null);
  openConversation(EVERYONE, { reveal: !layout.isPhone() }); // a phone starts on the list of conversations
  refreshPeople();
  roles.refresh();
  alerts.alertsSignedIn();
  installSignedIn({ password: state.me.password, command });
}

function onClose() {
  state.socket = null;
  state.reconnecting = false;
  showState("offline", "offline");
  if (state.stopped) return;
  const delay = Math.min(30, 2 ** state.retry);
  state.retry += 1;
  showState(`reconnecting in ${delay} s…`, "connecting");
  setTimeout(reconnect, delay * 1000);
}

// Identify again, then put back what the server forgot: groups, missed messages (accounts), unsent messages.
async function reconnect() {
  const before = state.added;
  let reply;
  try {
    reply = await connect(state.me.name, state.me.password);
  } catch {
    onClose();
    return;
  }
  if (!identified(reply)) {
    state.stopped = reply.code === 430 || reply.code === 403;
    notice(`could not sign in again: ${reply.code} ${reply.text}`);
    if (state.stopped) showState("offline", "offline");
    else onClose();
    return;
  }
  const socket = state.socket;
  state.reconnecting = true; // messages written from now on wait behind the outbox
  state.retry = 0;
  showState("connected", "online");
  const notes = await rejoinGroups();
  const caughtUp = state.me.password ? await catchUp() : null;
  state.reconnecting = false;
  notes.push(...await sendQueued());
  if (state.socket !== socket) return; // it went again meanwhile: onClose is already retrying
  refreshPeople();
  roles.refresh(); // a role handed over while the connection was down sent its ONCALL event to nobody
  notice([reconnectedNotice(state.added - before, caughtUp), ...notes].join("\n"));
}

// A guest's groups belong to its connection, so a new one is in none: join again every group the page shows.
// (LOGIN rejoins an account's groups, and JOIN then answers "already joined".) Returns notes on failures.
async function rejoinGroups() {
  const notes = [];
  for (const conv of state.conversations.values()) {
    if (!conv.key.startsWith("#") || conv.left) continue;
    const reply = await command(`JOIN ${conv.target}`);
    if (reply.code !== 203) {
      notes.push(`could not rejoin ${conv.label}: ${reply.code ? `${reply.code} ${reply.text}` : "the connection was lost"}`);
    }
  }
  return notes;
}

// Accounts: ask for every message numbered after lastSeq, in batches, until the server says none remain.
// Returns {gone} when some were removed before they could be delivered (410), {failed} when it could not ask.
async function catchUp() {
  const result = {};
  let since = state.lastSeq;
  for (;;) {
    const reply = await command(`SYNC ${since}`);
    if (reply.code === 410 && !result.gone) {
      // "410 <first> gap: ...": those are gone for good, so stop waiting for them and ask for the rest.
      result.gone = reply.text;
      skipTo(Number(fields(reply.text, 1)[0]) - 1);
      since = state.lastSeq;
      continue;
    }
    if (reply.code !== 215) {
      result.failed = reply.code ? `${reply.code} ${reply.text}` : "the connection was lost";
      return result;
    }
    // "215 <upto> sent <n>; <m> more"
    const [upto] = fields(reply.text, 1);
    const more = /; (\d+) more/.exec(reply.text);
    if (!more || Number(more[1]) === 0 || Number(upto) <= since) return result;
    since = Number(upto);
  }
}

// Say what is known about the time away, and no more: "nothing was missed" only when SYNC proved it.
function reconnectedNotice(added, caughtUp) {
  if (!state.me.password) {
    return `reconnected as ${state.me.name}. Messages sent while you were away are not kept for guests: `
      + "sign in with an account to receive them.";
  }
  const shown = added === 1
    ? "1 message sent while you were away is shown"
    : `${added} messages sent while you were away are shown`;
  if (caughtUp.gone) return `reconnected; some messages are no longer kept: ${caughtUp.gone}${added ? `; ${shown}` : ""}`;
  if (caughtUp.failed) {
    return `reconnected, but could not ask for the messages sent while you were away (${caughtUp.failed})`
      + (added ? `; ${shown}` : "");
  }
  return added ? `reconnected; ${shown}` : "reconnected; nothing was missed";
}

document.addEventListener("visibilitychange", () => {
  if (!document.hidden && state.me && layout.conversationShown()) {
    const conv = state.conversations.get(state.active);
    if (conv.unread.size) { // what arrived while the page was hidden is new: mark where it starts
      conv.markerBefore = Math.min(...conv.unread);
      conv.unread.clear();
      renderMessages({ opening: true });
    }
    renderConversations();
    markRead(conv);
  }
});

window.addEventListener("DOMContentLoaded", () => {
  timeline = new Timeline($("messages"), $("jump"));
  roles = createRoles({ command, me: () => state.me, people: () => [...state.people.values()].map((p) => p.name) });
  layout.initLayout({ listShown: () => renderConversations() });
  $("signin-form").addEventListener("submit", signIn);
  $("composer").addEventListener("submit", send);
  $("join-form").addEventListener("submit", joinGroup);
  $("status-form").addEventListener("submit", setStatus);
  $("ack").addEventListener("click", () => acknowledge());
  alerts.initAlerts({ open: openFromAlert, acknowledge: acknowledgeFromAlert, granted: permissionGranted });
  startInstall().then(alerts.configureAlerts); // the offline screen shows until the server answers
  document.addEventListener("keydown", (event) => {
    if (event.altKey && event.key.toLowerCase() === "a" && !$("urgent").hidden) { event.preventDefault(); acknowledge(); }
  });
});

window.bleeper = state; // for the curious, and for the tests' diagnostics
state.alerts = alerts.probe; // what the alerts did: notifications raised, the tone on or off
