// The chat page of the demo: one WebSocket to /chat on the host that served
// the page (wss:// under https, ws:// under http), through Sluice to the
// broadcast chat server. It shows the connection's state as the browser
// reports it, every message received, and the close code, reason and
// wasClean exactly as the close event gives them. Plain DOM, no framework.
//
// Messages are JSON {"name", "text"}; the server sends everything to
// everyone, so our own messages come back too (marked "mine").
// The browser test (tests/node/chat_demo_browser.js) reads the same DOM a
// person sees: #state, the #log items (data-kind, data-event) and #close
// (data-code, data-reason, data-clean).
'use strict';

const STATES = ['connecting', 'open', 'closing', 'closed'];  // WebSocket.readyState
const CLOSE_NAMES = {
  1000: 'normal closure',
  1001: 'going away',
  1002: 'protocol error',
  1003: 'unsupported data',
  1005: 'no status code',
  1006: 'abnormal closure: no close frame (refused, or the connection broke)',
  1007: 'invalid payload data',
  1008: 'policy violation',
  1009: 'message too big',
  1011: 'server error',
  1014: 'bad gateway',
};
const BIG_BYTES = 2 * 1024 * 1024;   // twice the route's 1 MiB limit
const SHOWN_CHARS = 200;             // longer texts are cut in the log

const el = (id) => document.getElementById(id);
const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/chat';
let ws = null;

function addLine(kind, parts, extra = {}) {
  const li = document.createElement('li');
  li.className = kind;
  li.dataset.kind = kind;
  for (const [key, value] of Object.entries(extra)) li.dataset[key] = value;
  for (const part of parts) {
    // Text nodes only: whatever peers send is never parsed as HTML.
    li.append(typeof part === 'string' ? document.createTextNode(part) : part);
  }
  const log = el('log');
  log.append(li);
  log.scrollTop = log.scrollHeight;
}

function bold(text) {
  const b = document.createElement('b');
  b.textContent = text;
  return b;
}

function event(name, text, bad = false) {
  addLine(bad ? 'event bad' : 'event', [text], { event: name });
}

function cut(text) {
  if (text.length <= SHOWN_CHARS) return text;
  return text.slice(0, SHOWN_CHARS) + `… (${text.length} characters)`;
}

// The state badge and buttons follow ws.readyState. The browser changes it
// to "closing" without an event (when a close frame arrives, or when we call
// close()), so render() also runs on a short timer while a socket exists.
function render() {
  const state = ws ? STATES[ws.readyState] : 'closed';
  const badge = el('state');
  badge.textContent = state;
  badge.className = state;
  el('connect').disabled = state !== 'closed';
  el('disconnect').disabled = state !== 'open';
  el('send').disabled = state !== 'open';
  el('send-big').disabled = state !== 'open';
  const queued = ws && state === 'open' ? ws.bufferedAmount : 0;
  el('buffered').textContent = queued ? `sending… ${queued} bytes queued` : '';
}
setInterval(() => { if (ws) render(); }, 200);

function showClose(ev) {
  const name = CLOSE_NAMES[ev.code] || 'see RFC 6455 section 7.4';
  const reason = ev.reason ? `"${ev.reason}"` : '(no reason)';
  const box = el('close');
  box.textContent = `closed: code ${ev.code} (${name}), reason ${reason}, wasClean ${ev.wasClean}`;
  box.className = ev.code === 1000 ? '' : 'bad';
  box.dataset.code = String(ev.code);
  box.dataset.reason = ev.reason;
  box.dataset.clean = String(ev.wasClean);
}

function connect() {
  if (ws && ws.readyState !== WebSocket.CLOSED) return;
  el('close').textContent = '';
  for (const key of ['code', 'reason', 'clean']) delete el('close').dataset[key];
  event('connecting', `connecting to ${url}`);
  const sock = new WebSocket(url);
  ws = sock;
  sock.onopen = () => { event('open', 'open'); render(); };
  sock.onmessage = (ev) => { receive(ev.data); render(); };
  // The error event carries no detail (browsers hide it on purpose); the
  // close event that follows has the code.
  sock.onerror = () => { event('error', 'error event (details are in the close event)', true); render(); };
  sock.onclose = (ev) => {
    event('close', `closed with ${ev.code}`, ev.code !== 1000);
    showClose(ev);
    render();
  };
  render();
}

function receive(data) {
  if (typeof data !== 'string') {
    addLine('chat', [`(binary message, ${data.size} bytes)`]);
    return;
  }
  let msg = null;
  try { msg = JSON.parse(data); } catch (e) { /* shown as it came */ }
  if (msg && typeof msg.system === 'string') {
    addLine('system', [`${msg.system} (${msg.clients} connected)`]);
  } else if (msg && typeof msg.name === 'string' && typeof msg.text === 'string') {
    const mine = msg.name === el('name').value;
    addLine(mine ? 'chat mine' : 'chat', [bold(msg.name + ': '), cut(msg.text)], { from: msg.name });
  } else {
    addLine('chat', [cut(data)]);
  }
}

function send(text) {
  if (!ws || ws.readyState !== WebSocket.OPEN) return;
  ws.send(JSON.stringify({ name: el('name').value, text }));
  render();
}

el('send-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const text = el('text').value;
  if (text === '') return;
  send(text);
  el('text').value = '';
  el('text').focus();
});

el('send-big').addEventListener('click', () => {
  event('big', `sending one message of ${BIG_BYTES} bytes (the route allows 1 MiB)`);
  send('x'.repeat(BIG_BYTES));
});
el('connect').addEventListener('click', connect);
el('disconnect').addEventListener('click', () => {
  if (ws) ws.close(1000, 'bye');
  render();
});

el('url').textContent = url;
el('origin').textContent = location.origin;
el('name').value = 'guest-' + Math.floor(1000 + Math.random() * 9000);
connect();
