// One pane at a time on a phone (the conversation list, or one conversation), both side by side on a wider
// screen. style.css decides the width (700px); this module keeps the script in step with it, and gives the
// phone a way back: the back button, Escape, and the browser's own back (a history entry per conversation
// opened from the list, so Android's back gesture returns to the list instead of leaving the page).

const $ = (id) => document.getElementById(id);
const phone = window.matchMedia("(max-width: 699.98px)");
const VIEW = "bleeperView";

export const isPhone = () => phone.matches;

function setView(view) {
  $("chat").dataset.view = view;
}

// Whether the open conversation is on screen (on a phone showing the list, it is not: its messages stay unread).
export function conversationShown() {
  return !isPhone() || $("chat").dataset.view === "conversation";
}

export function showConversation() {
  if (!isPhone()) return;
  if ($("chat").dataset.view !== "conversation" && history.state?.[VIEW] !== "conversation") {
    history.pushState({ [VIEW]: "conversation" }, "");
  }
  setView("conversation");
}

// Back to the list; focus goes to the conversation just left, so a keyboard user carries on from there.
export function showList() {
  if (history.state?.[VIEW] === "conversation") {
    history.back(); // popstate below shows the list
    return;
  }
  listShown();
}

function listShown() {
  setView("list");
  const active = document.querySelector("#conversation-list .conversation-button.active");
  (active || $("conversation-list").querySelector("button"))?.focus();
  onList();
}

let onList = () => {};

// The back button names how many messages wait in other conversations: the reason to go back.
export function setUnreadElsewhere(count) {
  const badge = $("back-unread");
  badge.textContent = count ? String(count) : "";
  badge.hidden = !count;
  $("back").setAttribute("aria-label", count ? `Conversations, ${count} unread` : "Conversations");
}

// listShown: called when the phone shows the list again (the app re-renders its unread counts).
export function initLayout({ listShown: callback }) {
  onList = callback;
  setView("list");
  $("back").addEventListener("click", showList);
  window.addEventListener("popstate", () => {
    if (history.state?.[VIEW] !== "conversation" && $("chat").dataset.view === "conversation") listShown();
  });
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || event.defaultPrevented || !isPhone()) return;
    if ($("chat").hidden || $("chat").dataset.view !== "conversation") return;
    if (document.querySelector("dialog[open]")) return; // Escape closes the dialog first
    event.preventDefault();
    showList();
  });
  // Turning a tablet or narrowing a window into phone width shows the conversation that was open.
  phone.addEventListener("change", () => {
    if (isPhone() && !$("chat").hidden) setView("conversation");
    placeholder();
  });
  placeholder();
}

// The long hint does not fit beside Send on a phone, where it would end mid-word.
const HINT = $("text").placeholder;
function placeholder() {
  $("text").placeholder = isPhone() ? "Message" : HINT;
}
