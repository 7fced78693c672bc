// open_listen_socket: socket, SO_REUSEADDR/SO_REUSEPORT, bind, listen.
#include "net/listener.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace sluice::net {

namespace {
constexpr int kBacklog = 4096;
}

int open_listen_socket(const sockaddr* addr, socklen_t len, const std::string& text,
                       std::string& error) {
  int fd = ::socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = "socket " + text + ": " + std::strerror(errno);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    error = "setsockopt SO_REUSEPORT " + text + ": " + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  if (addr->sa_family == AF_INET6) {
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  }
  if (::bind(fd, addr, len) != 0) {
    error = "bind " + text + ": " + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  if (::listen(fd, kBacklog) != 0) {
    error = "listen " + text + ": " + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace sluice::net
