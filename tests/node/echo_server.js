// A conforming RFC 6455 echo server for the conformance test
// (tests/integration/test_ws_conformance.py): Node's `ws`, echoing every
// message with the opcode it came with. Pings are answered by ws itself, a
// close is answered with the same code, and a protocol error is failed with
// the code ws picks: the point is an independent implementation to compare
// Sluice against, so this file adds no policy of its own.
//
// Usage: node echo_server.js PORT   (PORT 0 picks a free one)
// Prints "listening PORT" once it accepts; exits on SIGTERM or SIGINT.
// Listens on loopback only; never compresses (no permessage-deflate).
'use strict';

const { WebSocketServer } = require('ws');

const port = Number.parseInt(process.argv[2] || '0', 10);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write('usage: node echo_server.js PORT\n');
  process.exit(2);
}

const server = new WebSocketServer({
  host: '127.0.0.1',
  port,
  perMessageDeflate: false,
  maxPayload: 64 * 1024 * 1024,
});

server.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    ws.send(data, { binary: isBinary });
  });
  // A protocol error is the expected outcome of half the cases: ws has
  // already failed the connection with the right code; without a listener
  // the 'error' event would end the process.
  ws.on('error', () => {});
});

server.on('listening', () => {
  process.stdout.write('listening ' + server.address().port + '\n');
});

server.on('error', (err) => {
  process.stderr.write('echo_server: ' + err.message + '\n');
  process.exit(1);
});

const stop = () => {
  for (const ws of server.clients) ws.terminate();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
