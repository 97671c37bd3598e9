// What a screen reader hears about new messages. The message list is rebuilt on every change, so it cannot be
// a live region itself (it would read the whole conversation again); instead one polite region says what is
// new. A burst (a reconnect's catch-up) is said once, as a count, rather than as a queue of sentences.
// Urgent messages are not said here: the red banner is an alert, which interrupts.

const QUIET = 400;  // ms: messages arriving within this of the first are said together
const SPELLED = 3;  // up to this many are read out in full

let waiting = [];
let timer = null;

// from, text: the message; where: its conversation's name; here: it is the conversation on screen.
export function announceMessage({ from, text, where, here }) {
  waiting.push(here ? `${from}: ${text}` : `New message in ${where} from ${from}: ${text}`);
  if (!timer) timer = setTimeout(speak, QUIET); // from the first of a burst: a steady flow is still said
}

function speak() {
  timer = null;
  const region = document.getElementById("announcer");
  const said = waiting.length <= SPELLED ? waiting.join(". ") : `${waiting.length} new messages`;
  waiting = [];
  region.textContent = said;
}
