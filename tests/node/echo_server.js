// A conforming RFC 6455 echo server for the conformance test
// (tests/integration/test_ws_conformance.py): Node's `ws`, echoing every
// message with the opcode it came with. Pings are answered by ws itself, a
// close is answered with the same code, and a protocol error is failed with
// the code ws picks: the point is an independent implementation to compare
// Sluice against, so this file adds no policy of its own.
//
// Usage: node echo_server.js PORT   (PORT 0 picks a free one)
// Prints "listening PORT" once it accepts; exits on SIGTERM, SIGINT or when
// stdin closes. Listens on loopback only; never compresses (no
// permessage-deflate). All of that is ws_peer.js.
'use strict';

const { serve } = require('./ws_peer');

serve('echo_server', (ws) => {
  ws.on('message', (data, isBinary) => {
    ws.send(data, { binary: isBinary });
  });
  // A protocol error is the expected outcome of half the cases: ws has
  // already failed the connection with the right code; without a listener
  // the 'error' event would end the process.
  ws.on('error', () => {});
});
