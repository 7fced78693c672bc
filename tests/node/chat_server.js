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
// never outlives the test that started it (ws_peer.js).
'use strict';

const { serve, WebSocket } = require('./ws_peer');

function broadcast(server, data, isBinary) {
  for (const peer of server.clients) {
    if (peer.readyState === WebSocket.OPEN) peer.send(data, { binary: isBinary });
  }
}

serve('chat_server', (ws, server) => {
  ws.on('message', (data, isBinary) => broadcast(server, data, isBinary));
  ws.on('error', () => ws.terminate());
  broadcast(server, JSON.stringify({ joined: server.clients.size }), false);
});
