// The Bleeper web client. Everything received is inserted with textContent, never as HTML.
import { LineSocket, fields, parseMessage } from "./protocol.js";

const $ = (id) => document.getElementById(id);
const keyOf = (name) => name.normalize("NFKC").toLowerCase();
const EVERYONE = "*";

const state = {
  socket: null,
  me: null,            // {name, key, password|null}
  conversations: new Map(),
  active: EVERYONE,
  seen: new Set(),     // message ids shown, so SYNC and history never show one twice
  lastSeq: 0,          // accounts: everything up to here has arrived (SYNC asks from it after a reconnect)
  urgent: new Map(),   // id -> {from, text}
  sent: new Map(),     // my message id -> its marks element
  outbox: [],          // accounts: messages whose 250 was lost with the connection, resent with their ID
  people: new Map(),   // key -> {name, status, note}
  retry: 0,
  stopped: false,      // QUIT, kicked, or a failed sign-in: do not reconnect
  whoTimer: null,
};

// One command to the server; while disconnected it answers at once with code 0, as a lost connection does.
function command(line) {
  if (!state.socket) return Promise.resolve({ code: 0, text: "not connected", items: [] });
  return state.socket.command(line);
}

// -- conversations -----------------------------------------------------------------------------------

function conversation(key, label, target) {
  let conv = state.conversations.get(key);
  if (!conv) {
    conv = { key, label, target, messages: [], unread: 0, historyLoaded: false };
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

function renderConversations() {
  const list = $("conversation-list");
  list.replaceChildren();
  const order = [...state.conversations.values()].sort((a, b) =>
    a.key === EVERYONE ? -1 : b.key === EVERYONE ? 1 : a.label.localeCompare(b.label));
  for (const conv of order) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "conversation-button" + (conv.key === state.active ? " active" : "");
    button.dataset.key = conv.key;
    button.textContent = conv.label;
    if (conv.key === state.active) button.setAttribute("aria-current", "true");
    if (conv.unread) {
      const badge = document.createElement("span");
      badge.className = "unread";
      badge.textContent = String(conv.unread);
      badge.setAttribute("aria-label", `${conv.unread} unread`);
      button.append(" ", badge);
    }
    button.addEventListener("click", () => openConversation(conv.key));
    item.append(button);
    list.append(item);
  }
}

function openConversation(key) {
  state.active = key;
  const conv = state.conversations.get(key);
  conv.unread = 0;
  $("title").textContent = conv.label;
  $("urgent-toggle").disabled = key === EVERYONE;
  renderConversations();
  renderMessages();
  if (!conv.historyLoaded && key !== EVERYONE) loadHistory(conv);
  $("text").focus();
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
  if (!history && !mine && (conv.key !== state.active || document.hidden)) {
    conv.unread += 1;
    renderConversations();
  }
  if (conv.key === state.active) renderMessages();
  return conv;
}

function renderMessages() {
  const conv = state.conversations.get(state.active);
  const list = $("messages");
  list.replaceChildren();
  for (const msg of conv.messages) list.append(messageItem(msg));
  list.scrollTop = list.scrollHeight;
  markRead(conv);
}

function messageItem(msg) {
  const item = document.createElement("li");
  item.className = "message" + (msg.urgent ? " urgent-message" : "") + (keyOf(msg.from) === state.me.key ? " mine" : "");
  item.dataset.id = String(msg.id);
  const time = document.createElement("time");
  time.dateTime = msg.time;
  time.textContent = new Date(msg.time).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const from = document.createElement("span");
  from.className = "from";
  from.textContent = msg.from;
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = msg.text;
  item.append(time, " ", from, " ", text);
  if (msg.urgent) {
    const tag = document.createElement("strong");
    tag.className = "tag";
    tag.textContent = "URGENT";
    item.prepend(tag, " ");
  }
  if (keyOf(msg.from) === state.me.key && msg.to !== EVERYONE) {
    let marks = state.sent.get(msg.id);
    if (!marks) {
      marks = document.createElement("span");
      marks.className = "marks";
      marks.dataset.delivered = "";
      marks.dataset.read = "";
      state.sent.set(msg.id, marks);
    }
    item.append(" ", marks);
  }
  return item;
}

// Shown on screen is read: tell the sender (READ) for private, sub-group and urgent messages.
function markRead(conv) {
  if (document.hidden || !state.socket) return;
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
  const banner = $("urgent");
  const first = state.urgent.entries().next();
  if (first.done) { banner.hidden = true; return; }
  const [id, info] = first.value;
  const more = state.urgent.size > 1 ? ` (${state.urgent.size} waiting)` : "";
  $("urgent-text").textContent = `URGENT from ${info.from}: ${info.text}${more}`;
  $("ack").dataset.id = String(id);
  $("ack").setAttribute("aria-label", `Acknowledge urgent message ${id} from ${info.from}`);
  banner.hidden = false;
}

async function acknowledge() {
  const id = Number($("ack").dataset.id);
  const reply = await command(`ACK ${id}`);
  if (reply.code === 206 || reply.code === 404) {
    state.urgent.delete(id);
    renderUrgent();
  }
  notice(`${reply.code} ${reply.text}`);
}

// -- events -------------------------------------------------------------------------------------------

function onEvent({ name, rest }) {
  switch (name) {
    case "MSG":
    case "URGENT": {
      const msg = parseMessage(name, rest);
      if (msg.seq > state.lastSeq && state.me.password) state.lastSeq = msg.seq;
      addMessage(msg);
      if (msg.urgent) {
        state.urgent.set(msg.id, { from: msg.from, text: msg.text });
        renderUrgent();
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
      notice(`still waiting for your acknowledgement: message ${id} from ${from} (${waiting} waiting)`);
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
      break;
    case "CLOSING":
      notice(`the server is closing this connection: ${rest}`);
      if (rest.startsWith("kicked")) state.stopped = true;
      break;
    default:
      break;
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
  const item = { line: `${verb} ${text}`, to: conv.key === EVERYONE ? EVERYONE : conv.target, text, urgent };
  if (state.me.password) item.clientId = crypto.randomUUID().slice(0, 16);
  $("urgent-toggle").checked = false;
  await deliver(item);
}

async function deliver(item) {
  const line = item.clientId ? `ID ${item.clientId} ${item.line}` : item.line;
  const reply = await command(line);
  if (reply.code === 250) {
    const [id, time] = fields(reply.text, 2);
    const to = item.to === EVERYONE || item.to.startsWith("#") ? item.to : "@" + item.to;
    addMessage({ id: Number(id), time, from: state.me.name, to, text: item.text, urgent: item.urgent, seq: 0 });
    state.outbox = state.outbox.filter((other) => other !== item);
  } else if (reply.code === 0 && item.clientId) {
    if (!state.outbox.includes(item)) state.outbox.push(item);
    notice("not confirmed yet: it will be sent when the connection is back");
  } else {
    notice(`not sent: ${reply.code ? `${reply.code} ${reply.text}` : "the connection was lost"}`);
  }
}

async function slashCommand(text) {
  const reply = await command(text);
  const lines = [...reply.items, `${reply.code} ${reply.text}`];
  notice(lines.join("\n"));
  if (/^join\s/i.test(text) && reply.code === 203) {
    const group = fields(reply.text, 1)[0];
    conversation(keyOf(group), group, group);
    openConversation(keyOf(group));
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
  conversation(keyOf(shown), shown, shown);
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
  $("notice").textContent = text;
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

// Connect and identify: NAME, or LOGIN for an account. Returns the reply that decided it.
async function connect(name, password) {
  const socket = new LineSocket(socketUrl());
  socket.addEventListener("line-event", (e) => onEvent(e.detail));
  socket.addEventListener("state", (e) => { if (e.detail === "connecting") showState("connecting…", "connecting"); });
  await socket.open();
  const reply = await socket.command(password ? `LOGIN ${name} ${password}` : `NAME ${name}`);
  if (reply.code === 201 || reply.code === 202) {
    state.socket = socket;
    socket.addEventListener("close", onClose);
  } else {
    socket.close();
  }
  return reply;
}

async function signIn(event) {
  event.preventDefault();
  const name = $("name").value.trim();
  const password = $("password").value;
  $("signin-error").textContent = "";
  $("signin-button").disabled = true;
  try {
    const reply = await connect(name, password || null);
    if (reply.code === 201 || reply.code === 202) {
      state.me = { name: fields(reply.text, 1)[0], key: keyOf(name), password: password || null };
      started();
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
  } finally {
    $("signin-button").disabled = false;
  }
}

function started() {
  $("signin").hidden = true;
  $("chat").hidden = false;
  $("me").textContent = state.me.name;
  showState("connected", "online");
  conversation(EVERYONE, "Everyone", null);
  openConversation(EVERYONE);
  refreshPeople();
}

function onClose() {
  state.socket = null;
  showState("offline", "offline");
  if (state.stopped) return;
  const delay = Math.min(30, 2 ** state.retry);
  state.retry += 1;
  showState(`reconnecting in ${delay} s…`, "connecting");
  setTimeout(reconnect, delay * 1000);
}

async function reconnect() {
  try {
    const reply = await connect(state.me.name, state.me.password);
    if (reply.code !== 201 && reply.code !== 202) {
      state.stopped = reply.code === 430 || reply.code === 403;
      notice(`could not sign in again: ${reply.code} ${reply.text}`);
      if (!state.stopped) onClose();
      return;
    }
  } catch {
    onClose();
    return;
  }
  state.retry = 0;
  showState("connected", "online");
  if (state.me.password && state.lastSeq) {
    const reply = await command(`SYNC ${state.lastSeq}`); // what arrived while away; duplicates are dropped
    if (reply.code === 410) notice(`some messages are no longer kept: ${reply.text}`);
  }
  for (const item of [...state.outbox]) await deliver(item);
  refreshPeople();
  notice("reconnected; nothing was missed");
}

document.addEventListener("visibilitychange", () => {
  if (!document.hidden && state.me) {
    const conv = state.conversations.get(state.active);
    conv.unread = 0;
    renderConversations();
    markRead(conv);
  }
});

window.addEventListener("DOMContentLoaded", () => {
  $("signin-form").addEventListener("submit", signIn);
  $("composer").addEventListener("submit", send);
  $("join-form").addEventListener("submit", joinGroup);
  $("status-form").addEventListener("submit", setStatus);
  $("ack").addEventListener("click", acknowledge);
  document.addEventListener("keydown", (event) => {
    if (event.altKey && event.key.toLowerCase() === "a" && !$("urgent").hidden) { event.preventDefault(); acknowledge(); }
  });
});

window.bleeper = state; // for the curious, and for the tests' diagnostics
