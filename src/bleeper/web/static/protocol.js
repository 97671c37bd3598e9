// The Bleeper line protocol over a WebSocket: one text frame per line (docs/protocol.md).
// Every non-blank line sent gets exactly one reply, in order (PONG excepted), so replies are matched to
// commands by counting; events (lines starting with a letter) are handed to listeners as they come.

export function parseLine(line) {
  const reply = /^(\d{3})([ -])(.*)$/.exec(line);
  if (reply) return { kind: "reply", code: Number(reply[1]), more: reply[2] === "-", text: reply[3] };
  const space = line.indexOf(" ");
  const name = space < 0 ? line : line.slice(0, space);
  return { kind: "event", name, rest: space < 0 ? "" : line.slice(space + 1) };
}

// Split off the first n space-separated fields; the remainder (which may hold spaces) comes last.
export function fields(text, n) {
  const out = [];
  let rest = text;
  for (let i = 0; i < n; i++) {
    const space = rest.indexOf(" ");
    if (space < 0) { out.push(rest); rest = ""; continue; }
    out.push(rest.slice(0, space));
    rest = rest.slice(space + 1);
  }
  out.push(rest);
  return out;
}

// MSG/URGENT <seq> <id> <utc-time> <from> <to> <text>
export function parseMessage(name, rest) {
  const [seq, id, time, from, to, text] = fields(rest, 5);
  return { urgent: name === "URGENT", seq: Number(seq), id: Number(id), time, from, to, text };
}

export class LineSocket extends EventTarget {
  constructor(url) {
    super();
    this.url = url;
    this.ws = null;
    this.waiting = [];   // {resolve, items} per command sent, in order
    this.state = "offline";
  }

  open() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      this.ws = ws;
      this.setState("connecting");
      let greeted = false;
      // The greeting (220, or 421 when full) is the reply to connecting. A refusal's error carries its code:
      // 0 when the connection closed without one (no server there, or one stopping).
      const refused = (r) => Object.assign(new Error(r.text), { code: r.code });
      this.waiting = [{ resolve: (r) => { greeted = true; r.code === 220 ? resolve(r) : reject(refused(r)); }, items: [] }];
      ws.onmessage = (frame) => this.receive(String(frame.data));
      ws.onclose = (e) => {
        const pending = this.waiting;
        this.waiting = [];
        for (const w of pending) w.resolve({ code: 0, text: "connection closed", items: w.items });
        if (!greeted) reject(new Error("could not connect"));
        this.setState("offline");
        this.dispatchEvent(new CustomEvent("close", { detail: { code: e.code, reason: e.reason } }));
      };
      ws.onopen = () => this.setState("online");
    });
  }

  setState(state) {
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: state }));
  }

  receive(line) {
    const parsed = parseLine(line);
    if (parsed.kind === "event") {
      if (parsed.name === "PING") this.sendRaw(`PONG ${parsed.rest}`.trim());
      this.dispatchEvent(new CustomEvent("line-event", { detail: parsed }));
      return;
    }
    const head = this.waiting[0];
    if (!head) return; // a reply nobody waits for (never expected)
    if (parsed.more) { head.items.push(parsed.text); return; }
    this.waiting.shift();
    head.resolve({ code: parsed.code, text: parsed.text, items: head.items });
  }

  sendRaw(line) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(line);
  }

  // Send one command; resolves with {code, text, items} (code 0 when the connection went first). A command
  // that never left (no open connection) also carries unsent: true, so the caller knows it cannot have run.
  command(line) {
    return new Promise((resolve) => {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
        resolve({ code: 0, text: "not connected", items: [], unsent: true });
        return;
      }
      this.waiting.push({ resolve, items: [] });
      this.ws.send(line);
    });
  }

  close() {
    if (this.ws) this.ws.close(1000);
  }
}
