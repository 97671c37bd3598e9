// The on-call panel: who holds which role, and this person's backup. These decide where a page goes (an
// URGENT to @role reaches its holders; one not acknowledged in time goes on to the holder's backup), so the
// panel shows what the server says (ONCALL, BACKUP) and asks again after every change instead of guessing.
// Everything received is inserted with textContent.
import { fields } from "./protocol.js";

const $ = (id) => document.getElementById(id);
const keyOf = (name) => name.normalize("NFKC").toLowerCase();

// "@cardio-oncall holders=alice,bob" -> {role, holders}
export function parseRole(item) {
  const [role, attrs] = fields(item, 1);
  const holders = /(?:^| )holders=(\S*)/.exec(attrs);
  return { role, holders: holders && holders[1] ? holders[1].split(",") : [] };
}

// command(line) -> Promise<{code, text, items}>; me() -> {name, key} of the signed-in person (or null);
// people() -> names online, offered when handing over.
export function createRoles({ command, me, people }) {
  const dialog = $("roles");
  let opener = null;
  let roles = [];

  function say(reply) {
    // The server's own words: they say exactly what happened ("you hold @x with bob", "2 urgent message(s)
    // to @x wait for you: ..."). Only failures are marked, so they are not read as done.
    $("roles-reply").textContent = reply.code >= 200 && reply.code < 300
      ? reply.text
      : `Not done: ${reply.text || "not connected"}${reply.code ? ` (${reply.code})` : ""}`;
  }

  function held() {
    const self = me();
    return self ? roles.filter((r) => r.holders.some((h) => keyOf(h) === self.key)) : [];
  }

  function roleItem({ role, holders }) {
    const item = document.createElement("li");
    item.className = "role";
    const name = document.createElement("span");
    name.className = "role-name";
    name.textContent = role;
    const who = document.createElement("span");
    who.className = "holders";
    who.textContent = holders.length ? `held by ${holders.join(", ")}` : "held by nobody";
    item.append(name, " ", who);
    const mine = held().some((r) => r.role === role);
    const actions = document.createElement("div");
    actions.className = "role-actions";
    if (mine) {
      const form = document.createElement("form");
      form.className = "inline-form handover";
      const input = document.createElement("input");
      input.name = "to";
      input.required = true;
      input.maxLength = 32;
      input.placeholder = "name";
      input.autocomplete = "off";
      input.setAttribute("list", "people-names");
      input.setAttribute("aria-label", `Hand ${role} over to`);
      const give = button("Hand over", `Hand over ${role}`);
      give.type = "submit";
      form.append(input, give);
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        const to = input.value.trim();
        if (to) act(`ONCALL HANDOVER ${role} ${to}`);
      });
      const leave = button("Leave", `Leave ${role}`);
      leave.addEventListener("click", () => act(`ONCALL LEAVE ${role}`));
      actions.append(form, leave);
    } else {
      const take = button("Take", `Take ${role}`);
      take.addEventListener("click", () => act(`ONCALL TAKE ${role}`));
      actions.append(take);
    }
    item.append(actions);
    return item;
  }

  // The visible word first in the accessible name, then what it acts on: "Leave @cardio-oncall".
  function button(text, label) {
    const element = document.createElement("button");
    element.type = "button";
    element.textContent = text;
    element.setAttribute("aria-label", label);
    return element;
  }

  // The list is rebuilt after every answer (opening the panel asks again): what someone is typing in a
  // handover field, and where the cursor is, must survive that.
  function render() {
    const list = $("roles-list");
    const typed = new Map();
    let focused = null;
    for (const input of list.querySelectorAll(".handover input")) {
      const role = input.getAttribute("aria-label");
      typed.set(role, input.value);
      if (input === document.activeElement) focused = { role, start: input.selectionStart, end: input.selectionEnd };
    }
    list.replaceChildren(...roles.map(roleItem));
    for (const input of list.querySelectorAll(".handover input")) {
      const role = input.getAttribute("aria-label");
      if (typed.has(role)) input.value = typed.get(role);
      if (focused && focused.role === role) {
        input.focus();
        input.setSelectionRange(focused.start, focused.end);
      }
    }
    $("roles-empty").hidden = roles.length > 0;
    const mine = held().map((r) => r.role);
    $("roles-summary").textContent = mine.length ? `You hold ${mine.join(", ")}` : "You hold no on-call role";
    const names = $("people-names");
    names.replaceChildren(...people().map((name) => {
      const option = document.createElement("option");
      option.value = name;
      return option;
    }));
  }

  function showBackup(reply) {
    if (reply.code !== 207) return;
    const backup = /^your backup is (\S+?):?(?: |$)/.exec(reply.text);
    $("backup-text").textContent = backup
      ? `Your backup is ${backup[1]}: urgent messages you do not acknowledge in time go on to them.`
      : "You have no backup: an urgent message you do not acknowledge keeps alerting you.";
    $("backup-clear").disabled = !backup;
    $("backup-summary").textContent = backup ? `Backup: ${backup[1]}` : "No backup";
  }

  async function refresh() {
    const [list, backup] = await Promise.all([command("ONCALL"), command("BACKUP")]);
    if (list.code === 209) {
      roles = list.items.map(parseRole).sort((a, b) => keyOf(a.role).localeCompare(keyOf(b.role)));
      render();
    }
    showBackup(backup);
  }

  async function act(line) {
    const reply = await command(line);
    say(reply);
    await refresh();
    return reply;
  }

  function open(event) {
    opener = event && event.currentTarget instanceof HTMLElement ? event.currentTarget : document.activeElement;
    $("roles-reply").textContent = "";
    if (!dialog.open) dialog.showModal(); // modal: focus stays inside, Escape closes it
    refresh();
  }

  dialog.addEventListener("close", () => { if (opener && opener.isConnected) opener.focus(); });
  $("roles-close").addEventListener("click", () => dialog.close());
  $("roles-open").addEventListener("click", open);
  $("take-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    let role = $("take-role").value.trim();
    if (!role) return;
    if (!role.startsWith("@")) role = "@" + role;
    const reply = await act(`ONCALL TAKE ${role}`);
    if (reply.code === 209) $("take-role").value = "";
  });
  $("backup-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = $("backup-name").value.trim();
    if (!name) return;
    const reply = await act(`BACKUP ${name}`);
    if (reply.code === 207) $("backup-name").value = "";
  });
  $("backup-clear").addEventListener("click", () => act("BACKUP none"));

  // ONCALL <@role> from <name>: a role was handed to this person.
  function handedOver(rest) {
    const [role, , from] = fields(rest, 2);
    $("roles-reply").textContent = `${from} handed ${role} over to you`;
    refresh();
  }

  // An urgent message arrived: close the panel (it is modal) so the banner can be acknowledged at once.
  function giveWay() {
    if (dialog.open) dialog.close();
  }

  return { refresh, open, handedOver, giveWay };
}
