// Listening sockets: one per worker per address, SO_REUSEPORT set before
// bind, so the kernel spreads new connections over the workers' loops.
// Sockets are opened by the main thread (a failure is reported before any
// worker starts) and each is handed to exactly one worker (uv_tcp_open).
#pragma once

#include <sys/socket.h>

#include <string>

namespace sluice::net {

// Returns the listening fd, or -1 with `error` set ("bind 127.0.0.1:80: Permission denied").
int open_listen_socket(const sockaddr* addr, socklen_t len, const std::string& text,
                       std::string& error);

}  // namespace sluice::net
