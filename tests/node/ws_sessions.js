// Many WebSocket sessions that keep talking, for the reload-under-load test
// (tests/integration/test_reload_load.py): Node's `ws` as the client.
//
// Usage: node ws_sessions.js URL COUNT INTERVAL_MS ORIGIN
//
// Opens COUNT sessions to URL (at most 50 handshakes in flight), then prints
// "open N" (N sessions open; fewer means some failed, and the summary says
// why). From then on each session sends "<session>:<seq>" every INTERVAL_MS
// (the sessions staggered over the interval) and checks that the echoes come
// back in order and intact. A line "stop" on stdin ends the run: sending
// stops, outstanding echoes get up to 10 s, every session is closed with
// 1000, and one line "summary {json}" is printed before exiting. Any close
// or error before "stop" is counted as a dropped session, with its code.
// The process ends by itself after 300 s whatever happens.
'use strict';

const WebSocket = require('ws');

const [url, countText, intervalText, origin] = process.argv.slice(2);
const count = Number(countText);
const interval = Number(intervalText);
if (!url || !(count > 0) || !(interval > 0) || !origin) {
  console.error('usage: node ws_sessions.js URL COUNT INTERVAL_MS ORIGIN');
  process.exit(2);
}

const summary = {
  opened: 0,
  open_failures: [],
  dropped: [],      // {session, code, reason} closed or failed before "stop"
  sent: 0,
  echoed: 0,
  mismatches: [],   // {session, expected, got}
  unanswered: 0,    // sent but not echoed by the end
  clean_closes: 0,  // closed 1000 after "stop"
};
const sessions = [];
let stopping = false;

function openOne(index) {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { origin, perMessageDeflate: false });
    const s = { index, ws, seq: 0, expected: [], timer: null, open: false };
    ws.on('open', () => {
      s.open = true;
      summary.opened += 1;
      sessions.push(s);
      resolve();
    });
    ws.on('message', (data) => {
      const want = s.expected.shift();
      const got = data.toString();
      if (got !== want) summary.mismatches.push({ session: index, expected: want, got });
      else summary.echoed += 1;
    });
    ws.on('close', (code, reason) => {
      clearInterval(s.timer);
      if (!s.open) return;
      s.open = false;
      if (stopping && code === 1000) summary.clean_closes += 1;
      else summary.dropped.push({ session: index, code, reason: reason.toString() });
    });
    ws.on('error', (err) => {
      if (!s.open) {
        summary.open_failures.push({ session: index, error: String(err.message || err) });
        resolve();
      }
    });
  });
}

async function openAll() {
  let next = 0;
  const lane = async () => {
    while (next < count) await openOne(next++);
  };
  await Promise.all(Array.from({ length: Math.min(50, count) }, lane));
}

function startTalking() {
  sessions.forEach((s, i) => {
    setTimeout(() => {
      if (stopping || !s.open) return;
      s.timer = setInterval(() => {
        if (stopping || !s.open) return;
        const text = `${s.index}:${s.seq++}`;
        s.expected.push(text);
        summary.sent += 1;
        s.ws.send(text);
      }, interval);
    }, (i * interval) / sessions.length);
  });
}

function finish() {
  summary.unanswered = sessions.reduce((n, s) => n + s.expected.length, 0);
  process.stdout.write(`summary ${JSON.stringify(summary)}\n`, () => process.exit(0));
}

async function stop() {
  if (stopping) return;
  stopping = true;
  sessions.forEach((s) => clearInterval(s.timer));
  const deadline = Date.now() + 10000;
  while (Date.now() < deadline && sessions.some((s) => s.open && s.expected.length > 0)) {
    await new Promise((r) => setTimeout(r, 20));
  }
  const closed = sessions.filter((s) => s.open).map((s) => new Promise((resolve) => {
    s.ws.once('close', resolve);
    s.ws.close(1000, 'done');
  }));
  await Promise.race([Promise.all(closed), new Promise((r) => setTimeout(r, 10000))]);
  finish();
}

setTimeout(() => {
  console.error('ws_sessions: 300 s limit reached');
  finish();
}, 300000).unref();

process.stdin.setEncoding('utf8');
let input = '';
process.stdin.on('data', (chunk) => {
  input += chunk;
  if (input.includes('stop\n')) stop();
});
process.stdin.on('end', () => stop());

openAll().then(() => {
  console.log(`open ${summary.opened}`);
  startTalking();
});
