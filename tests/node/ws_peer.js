// What the Node WebSocket peers (chat_server.js, echo_server.js) share: the
// command line, a `ws` server on loopback that never compresses, the
// "listening PORT" line the test side (wspeers.NodeScript) waits for, and
// shutdown on SIGTERM, SIGINT or the end of stdin, so a peer never outlives
// the test that started it. It adds no WebSocket policy of its own: what a
// peer does with a connection is the caller's.
'use strict';

const path = require('path');
const { WebSocketServer, WebSocket } = require(path.join(__dirname, 'node_modules', 'ws'));

// `node SCRIPT PORT` (PORT 0 picks a free one): listens and hands every
// connection to onConnection(ws, server). Returns the server.
function serve(name, onConnection) {
  const port = Number.parseInt(process.argv[2] || '0', 10);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write(`usage: node ${name}.js PORT\n`);
    process.exit(2);
  }

  const server = new WebSocketServer({
    host: '127.0.0.1',
    port,
    maxPayload: 64 * 1024 * 1024,
    perMessageDeflate: false,
  });

  server.on('connection', (ws) => onConnection(ws, server));

  server.on('listening', () => {
    process.stdout.write(`listening ${server.address().port}\n`);
  });

  server.on('error', (err) => {
    process.stderr.write(`${name}: ${err.message}\n`);
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
  return server;
}

module.exports = { serve, WebSocket };
