// How one conversation's messages are laid out: day separators, runs of one sender's messages shown under one
// name, the "new messages" marker, times that say "5 min ago", and scrolling that never pulls the reader away
// from what they are reading. Everything received is inserted with textContent, never as HTML.
//
// The pure helpers (clock, relativeTime, dayLabel, startsGroup) take "now" as an argument so the tests can
// check them without waiting for the clock.

const MINUTE = 60_000;
const GROUP_GAP = 5 * MINUTE;   // one sender's messages closer together than this read as one group
const RELATIVE_FOR = 60 * MINUTE; // "5 min ago" for the last hour; after that the clock time is clearer
const NEAR_BOTTOM = 48;          // px: this close to the end still counts as reading the latest

const senderKey = (name) => name.normalize("NFKC").toLowerCase();

// HH:MM in local time: the server's clock (UTC) decides the order, people read their own.
export function clock(time) {
  const date = new Date(time);
  return [date.getHours(), date.getMinutes()].map((n) => String(n).padStart(2, "0")).join(":");
}

// "just now", "5 min ago" within the hour, HH:MM after it (the day separator above says which day).
export function relativeTime(time, now = Date.now()) {
  const elapsed = now - Date.parse(time);
  if (elapsed < MINUTE) return "just now"; // a clock a little ahead of ours reads as now, not "in 1 min"
  if (elapsed < RELATIVE_FOR) return `${Math.floor(elapsed / MINUTE)} min ago`;
  return clock(time);
}

// How long a page has waited, never rounded to a clock time: "just now", "3 min ago", "2 h 5 min ago". A page
// answered late must look late, so the urgent banner says this rather than relativeTime's HH:MM.
export function waited(time, now = Date.now()) {
  const minutes = Math.floor((now - Date.parse(time)) / MINUTE);
  if (minutes < 1) return "just now";
  if (minutes < 60) return `${minutes} min ago`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min ago`;
}

function startOfDay(date) {
  return new Date(date.getFullYear(), date.getMonth(), date.getDate());
}

// Local calendar day, so a separator falls at the reader's midnight.
export function dayKey(time) {
  const date = new Date(time);
  return `${date.getFullYear()}-${date.getMonth() + 1}-${date.getDate()}`;
}

// "Today", "Yesterday", else the date ("Monday 24 November"; the year only when it is not this year).
export function dayLabel(time, now = new Date()) {
  const date = new Date(time);
  // Rounded: a day with a daylight-saving change is 23 or 25 hours long.
  const days = Math.round((startOfDay(now) - startOfDay(date)) / (24 * 60 * MINUTE));
  if (days === 0) return "Today";
  if (days === 1) return "Yesterday";
  const options = { weekday: "long", day: "numeric", month: "long" };
  if (date.getFullYear() !== now.getFullYear()) options.year = "numeric";
  return date.toLocaleDateString(undefined, options);
}

// Whether msg starts a new group after prev: another sender, another day, a pause, or an urgent message
// (a page always shows who sent it, in full).
export function startsGroup(prev, msg) {
  if (!prev) return true;
  if (msg.urgent || prev.urgent) return true;
  if (senderKey(prev.from) !== senderKey(msg.from)) return true;
  if (dayKey(prev.time) !== dayKey(msg.time)) return true;
  return Date.parse(msg.time) - Date.parse(prev.time) > GROUP_GAP;
}

function span(className, text) {
  const element = document.createElement("span");
  element.className = className;
  element.textContent = text;
  return element;
}

export function timeElement(time) {
  const element = document.createElement("time");
  element.dateTime = time;
  element.dataset.relative = ""; // refreshTimes keeps it true
  element.title = new Date(time).toLocaleString();
  element.textContent = relativeTime(time);
  return element;
}

function separator(className, text) {
  const item = document.createElement("li");
  item.className = className;
  item.append(span("label", text));
  return item;
}

// One message. The DOM order (sender, text, time) is the reading order for screen readers; style.css puts
// the time beside the sender. A message that continues a group keeps its sender for screen readers only.
// The spaces between the parts keep "alice ward round at 9" readable as text (and in the tests).
export function messageItem(msg, { mine, continued, marks, roleTo }) {
  const item = document.createElement("li");
  item.className = "message" + (msg.urgent ? " urgent-message" : "") + (mine ? " mine" : "")
    + (continued ? " continued" : "");
  item.dataset.id = String(msg.id);
  if (msg.urgent) {
    const tag = document.createElement("strong");
    tag.className = "tag";
    tag.textContent = "URGENT";
    item.append(tag, " ");
  }
  item.append(span("from" + (continued ? " visually-hidden" : ""), msg.from), " ");
  if (roleTo) item.append(span("role-to", `to ${roleTo}`), " "); // a page to an on-call role: which one
  item.append(span("text", msg.text), " ", timeElement(msg.time));
  if (marks) item.append(" ", marks);
  return item;
}

// A message not yet confirmed by the server: the text stays visible, marked as waiting.
export function pendingItem(item, myName) {
  const element = document.createElement("li");
  element.className = "message mine pending" + (item.urgent ? " urgent-message" : "");
  element.append(span("from", myName), " ", span("text", item.text), " ",
    span("marks", "waiting for the connection"));
  return element;
}

// Every relative <time> shown says how long ago again: "just now" becomes "1 min ago" without a re-render.
export function refreshTimes(root, now = Date.now()) {
  for (const element of root.querySelectorAll("time[data-relative]")) {
    const text = relativeTime(element.dateTime, now);
    if (element.textContent !== text) element.textContent = text;
  }
}

// The message list of the open conversation, and its scrolling: it follows new messages only while the
// reader is at the end; scrolled up, they are counted on a "jump to latest" button instead.
export class Timeline {
  constructor(list, jump) {
    this.list = list;
    this.jump = jump;
    this.shownIds = new Set();
    this.shownPending = 0;
    this.unseen = 0;
    list.addEventListener("scroll", () => { if (this.atEnd()) this.hideJump(); });
    jump.addEventListener("click", () => {
      this.toEnd();
      this.list.focus(); // the button disappears: keep keyboard focus somewhere useful
    });
    setInterval(() => refreshTimes(document), 30_000);
  }

  atEnd() {
    const list = this.list;
    return list.scrollHeight - list.scrollTop - list.clientHeight < NEAR_BOTTOM;
  }

  toEnd() {
    this.list.scrollTop = this.list.scrollHeight;
    this.hideJump();
  }

  hideJump() {
    this.unseen = 0;
    this.jump.hidden = true;
  }

  // messages: the conversation's, oldest first; pending: its unsent ones; markerBefore: the id of the first
  // unread message when it was opened (or null); opening: a conversation was just opened, so scroll to the
  // marker (or the end) rather than keep the old position. isMine, marksFor and roleTo answer per message.
  render({ messages, pending, markerBefore, opening, isMine, marksFor, roleTo, myName }) {
    const list = this.list;
    const followed = opening || this.atEnd();
    const keep = list.scrollTop;
    const items = [];
    let prev = null;
    let marker = null;
    for (const msg of messages) {
      if (!prev || dayKey(prev.time) !== dayKey(msg.time)) items.push(separator("day-separator", dayLabel(msg.time)));
      if (msg.id === markerBefore) {
        marker = separator("new-marker", "New messages");
        items.push(marker);
      }
      const mine = isMine(msg);
      const continued = !startsGroup(prev, msg) && msg.id !== markerBefore;
      items.push(messageItem(msg, { mine, continued, marks: marksFor(msg), roleTo: roleTo(msg) }));
      prev = msg;
    }
    for (const item of pending) items.push(pendingItem(item, myName));
    list.replaceChildren(...items);

    const arrived = opening ? [] : messages.filter((msg) => !this.shownIds.has(msg.id));
    const wrote = pending.length > this.shownPending;
    this.shownIds = new Set(messages.map((msg) => msg.id));
    this.shownPending = pending.length;
    if (opening) {
      this.toEnd();
      if (marker) { // the first unread at the top, with a line of context, when it is above the last screenful
        const above = marker.getBoundingClientRect().top - list.getBoundingClientRect().top;
        if (above < 0) list.scrollTop += above - 8;
      }
      return;
    }
    const sentByMe = wrote || arrived.some(isMine);
    if (followed || sentByMe) { this.toEnd(); return; }
    list.scrollTop = keep; // reading further up: stay there, and count what came in below
    const others = arrived.filter((msg) => !isMine(msg)).length;
    if (others) {
      this.unseen += others;
      this.jump.querySelector(".count").textContent = this.unseen === 1 ? "1 new message" : `${this.unseen} new messages`;
      this.jump.hidden = false;
    }
  }
}
