// Descriptors between threads; see fd_channel.hpp.
#include "net/fd_channel.hpp"

#include <sched.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace sluice::net {

namespace {

// Room for the most descriptors one message carries.
union ControlBuffer {
  char buf[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)];
  cmsghdr align;
};

// Closes [first, last] in the calling thread's table.
void close_span(unsigned first, unsigned last) noexcept {
  if (first > last) return;
  if (::close_range(first, last, 0) == 0) return;
  // Kernels before 5.9 have no close_range: one call per number, up to the
  // highest a descriptor can have.
  rlimit lim{};
  unsigned top = last;
  if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur > 0) {
    top = std::min<unsigned>(last, static_cast<unsigned>(lim.rlim_cur - 1));
  }
  for (unsigned fd = first; fd <= top && fd >= first; ++fd) ::close(static_cast<int>(fd));
}

}  // namespace

int send_with_fds(int sock, const void* data, std::size_t len, const int* fds, std::size_t n) noexcept {
  if (n > kMaxFdsPerMessage) return -EINVAL;
  iovec iov{const_cast<void*>(data), len};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  ControlBuffer control;
  if (n > 0) {
    std::memset(&control, 0, sizeof control);
    msg.msg_control = control.buf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * n);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * n);
    std::memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
  }
  for (;;) {
    if (::sendmsg(sock, &msg, MSG_NOSIGNAL) >= 0) return 0;
    if (errno != EINTR) return -errno;
  }
}

long recv_with_fds(int sock, void* data, std::size_t len, std::vector<int>& fds, bool& lost) noexcept {
  iovec iov{data, len};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  ControlBuffer control;
  msg.msg_control = control.buf;
  msg.msg_controllen = sizeof control.buf;
  long got;
  do {
    got = ::recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  } while (got < 0 && errno == EINTR);
  if (got < 0) return -errno;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < n; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      fds.push_back(fd);
    }
  }
  if ((msg.msg_flags & MSG_CTRUNC) != 0) lost = true;
  return got;
}

bool own_descriptor_table(std::vector<int> keep) noexcept {
  if (::unshare(CLONE_FILES) != 0) return false;
  keep.insert(keep.end(), {0, 1, 2});
  std::sort(keep.begin(), keep.end());
  unsigned next = 0;  // the lowest number not yet closed or kept
  for (int k : keep) {
    if (k < 0 || static_cast<unsigned>(k) < next) continue;
    if (static_cast<unsigned>(k) > next) close_span(next, static_cast<unsigned>(k) - 1);
    next = static_cast<unsigned>(k) + 1;
  }
  close_span(next, ~0U);
  return true;
}

}  // namespace sluice::net
