// A broadcast chat upstream for the WebSocket integration tests: every
// message a client sends (text or binary) goes to every connected client,
// the sender included, in the order this server received it.
//
// Usage: node chat_server.js PORT   (PORT 0 picks a free port)
// Prints "listening PORT" on stdout once it accepts connections, so the test
// peer can wait for that line instead of polling the port. Each new client
// is announced to everyone as {"joined": N} (N = clients connected now), so
// clients can wait until the whole room is present before they talk.
// Listens on 127.0.0.1 only; exits on SIGTERM or when stdin closes, so it
// never outlives the test that started it.
'use strict';

const path = require('path');
const { WebSocketServer, WebSocket } = require(path.join(__dirname, 'node_modules', 'ws'));

const port = Number.parseInt(process.argv[2] || '0', 10);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write('usage: node chat_server.js PORT\n');
  process.exit(2);
}

const server = new WebSocketServer({
  host: '127.0.0.1',
  port,
  maxPayload: 64 * 1024 * 1024,
  perMessageDeflate: false,
});

function broadcast(data, isBinary) {
  for (const peer of server.clients) {
    if (peer.readyState === WebSocket.OPEN) peer.send(data, { binary: isBinary });
  }
}

server.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => broadcast(data, isBinary));
  ws.on('error', () => ws.terminate());
  broadcast(JSON.stringify({ joined: server.clients.size }), false);
});

server.on('listening', () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});

server.on('error', (err) => {
  process.stderr.write(`chat_server: ${err.message}\n`);
  process.exit(1);
});

function shutdown() {
  for (const peer of server.clients) peer.terminate();
  server.close(() => process.exit(0));
  // A client that ignores the close must not keep the process alive.
  setTimeout(() => process.exit(0), 2000).unref();
}

process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
process.stdin.on('end', shutdown);
process.stdin.resume();
