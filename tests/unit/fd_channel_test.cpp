// Tests for src/net/fd_channel: descriptors sent over a real Unix socket
// pair, and a thread that takes a descriptor table of its own.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "net/fd_channel.hpp"

namespace {

using sluice::net::kMaxFdsPerMessage;
using sluice::net::own_descriptor_table;
using sluice::net::recv_with_fds;
using sluice::net::send_with_fds;

bool is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

struct Pair {
  int fd[2] = {-1, -1};
  Pair() { REQUIRE(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fd) == 0); }
  ~Pair() {
    for (int f : fd) ::close(f);
  }
  Pair(const Pair&) = delete;
  Pair& operator=(const Pair&) = delete;
};

struct Pipe {
  int fd[2] = {-1, -1};
  Pipe() { REQUIRE(::pipe2(fd, O_CLOEXEC) == 0); }
  ~Pipe() {
    for (int f : fd) {
      if (f >= 0) ::close(f);
    }
  }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
};

}  // namespace

TEST_CASE("fd_channel: a descriptor crosses with its message and reaches the same file") {
  Pair pair;
  Pipe pipe;
  const std::uint64_t sent = 0x1122334455667788u;
  REQUIRE(send_with_fds(pair.fd[0], &sent, sizeof sent, &pipe.fd[1], 1) == 0);

  std::uint64_t got = 0;
  std::vector<int> fds;
  bool lost = false;
  REQUIRE(recv_with_fds(pair.fd[1], &got, sizeof got, fds, lost) == static_cast<long>(sizeof got));
  CHECK(got == sent);
  CHECK_FALSE(lost);
  REQUIRE(fds.size() == 1);
  CHECK(fds[0] != pipe.fd[1]);  // a number of its own, for the same pipe
  CHECK((::fcntl(fds[0], F_GETFD) & FD_CLOEXEC) != 0);
  ::close(pipe.fd[1]);  // the sender's copy goes; the received one keeps the pipe open
  pipe.fd[1] = -1;
  REQUIRE(::write(fds[0], "x", 1) == 1);
  char c = 0;
  CHECK(::read(pipe.fd[0], &c, 1) == 1);
  CHECK(c == 'x');
  ::close(fds[0]);
}

TEST_CASE("fd_channel: messages keep their order and their own descriptors") {
  Pair pair;
  Pipe a, b;
  const std::uint64_t one = 1, two = 2, three = 3;
  const int both[2] = {a.fd[1], b.fd[1]};
  REQUIRE(send_with_fds(pair.fd[0], &one, sizeof one, both, 2) == 0);
  REQUIRE(send_with_fds(pair.fd[0], &two, sizeof two, nullptr, 0) == 0);
  REQUIRE(send_with_fds(pair.fd[0], &three, sizeof three, &b.fd[1], 1) == 0);

  std::vector<std::size_t> counts;
  std::vector<std::uint64_t> seqs;
  for (int i = 0; i < 3; ++i) {
    std::uint64_t m = 0;
    std::vector<int> fds;
    bool lost = false;
    REQUIRE(recv_with_fds(pair.fd[1], &m, sizeof m, fds, lost) == static_cast<long>(sizeof m));
    seqs.push_back(m);
    counts.push_back(fds.size());
    for (int fd : fds) ::close(fd);
  }
  CHECK(seqs == std::vector<std::uint64_t>{1, 2, 3});
  CHECK(counts == std::vector<std::size_t>{2, 0, 1});

  std::uint64_t m = 0;
  std::vector<int> fds;
  bool lost = false;
  CHECK(recv_with_fds(pair.fd[1], &m, sizeof m, fds, lost) == -EAGAIN);
  CHECK(fds.empty());
}

TEST_CASE("fd_channel: more descriptors than one message carries are refused, nothing sent") {
  Pair pair;
  std::vector<int> many(kMaxFdsPerMessage + 1, STDERR_FILENO);
  const char byte = 'm';
  CHECK(send_with_fds(pair.fd[0], &byte, 1, many.data(), many.size()) == -EINVAL);
  char got = 0;
  std::vector<int> fds;
  bool lost = false;
  CHECK(recv_with_fds(pair.fd[1], &got, 1, fds, lost) == -EAGAIN);
}

TEST_CASE("fd_channel: a thread's own table drops what it shared and keeps what it was told") {
  Pipe kept, dropped;
  bool owned = false;
  int err = 0;
  bool kept_open = false, dropped_open = true, stderr_open = false;
  std::thread t([&] {
    owned = own_descriptor_table({kept.fd[1]});
    err = owned ? 0 : errno;
    kept_open = is_open(kept.fd[1]);
    dropped_open = is_open(dropped.fd[0]) || is_open(dropped.fd[1]) || is_open(kept.fd[0]);
    stderr_open = is_open(STDERR_FILENO);
    // Closing here closes this thread's copy only.
    ::close(kept.fd[1]);
  });
  t.join();
  if (!owned) {
    // A kernel (or seccomp profile) without unshare: the table is still
    // shared and nothing was closed.
    WARN("unshare(CLONE_FILES) refused: " << std::strerror(err));
    CHECK((err == EPERM || err == ENOSYS || err == EINVAL));
    CHECK(kept_open);
    CHECK(dropped_open);
    kept.fd[1] = -1;  // closed by the thread, in the shared table
    return;
  }
  CHECK(kept_open);
  CHECK_FALSE(dropped_open);
  CHECK(stderr_open);
  // The test's own table is untouched: all four ends are still open here.
  CHECK(is_open(kept.fd[0]));
  CHECK(is_open(kept.fd[1]));
  CHECK(is_open(dropped.fd[0]));
  CHECK(is_open(dropped.fd[1]));
  REQUIRE(::write(kept.fd[1], "k", 1) == 1);
  char c = 0;
  CHECK(::read(kept.fd[0], &c, 1) == 1);
}
