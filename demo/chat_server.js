// The demo chat server that `make run` starts behind Sluice: the classic
// broadcast chat. Every message a client sends (text or binary) goes to every
// connected client, the sender included, in the order it arrived here; when a
// client joins or leaves, everyone gets a line about it as
// {"system": "...", "clients": N}. It keeps no history and adds no policy of
// its own: the origin check and the size limits the demo shows are Sluice's
// (this server accepts messages up to 16 MiB, well above the route's 1 MiB).
//
//   node demo/chat_server.js [--host 127.0.0.1] [--port 9001]
//
// Prints "chat: listening on ws://HOST:PORT/" on stderr once it accepts
// connections. SIGTERM or SIGINT closes every client with 1001 and exits.
// Node's `ws` comes from demo/node_modules (scripts/install-deps.sh).
'use strict';

const path = require('path');
const { WebSocketServer, WebSocket } = require(path.join(__dirname, 'node_modules', 'ws'));

function parseArgs(argv) {
  const opts = { host: '127.0.0.1', port: 9001 };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (flag === '--host' && value) opts.host = value;
    else if (flag === '--port' && /^[0-9]+$/.test(value || '')) opts.port = Number(value);
    else {
      process.stderr.write('usage: node demo/chat_server.js [--host ADDR] [--port PORT]\n');
      process.exit(2);
    }
  }
  if (opts.port < 1 || opts.port > 65535) {
    process.stderr.write('chat: --port must be in 1..65535\n');
    process.exit(2);
  }
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const server = new WebSocketServer({
  host: opts.host,
  port: opts.port,
  maxPayload: 16 * 1024 * 1024,
  perMessageDeflate: false,
});

function broadcast(data, isBinary) {
  for (const peer of server.clients) {
    if (peer.readyState === WebSocket.OPEN) peer.send(data, { binary: isBinary });
  }
}

function announce(text) {
  broadcast(JSON.stringify({ system: text, clients: server.clients.size }), false);
}

server.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => broadcast(data, isBinary));
  // A broken connection is dropped; 'close' follows and tells the others.
  ws.on('error', () => ws.terminate());
  ws.on('close', () => announce('someone left'));
  announce('someone joined');
});

server.on('listening', () => {
  process.stderr.write(`chat: listening on ws://${opts.host}:${server.address().port}/\n`);
});

server.on('error', (err) => {
  process.stderr.write(`chat: cannot listen on ${opts.host}:${opts.port}: ${err.message}\n`);
  process.exit(1);
});

function shutdown() {
  for (const peer of server.clients) peer.close(1001, 'chat server stopping');
  server.close(() => {
    process.stderr.write('chat: stopped\n');
    process.exit(0);
  });
  // A client that never answers the close must not keep the process alive.
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
