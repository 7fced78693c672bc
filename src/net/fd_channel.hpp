// Descriptors between threads that do not share a descriptor table.
//
// A worker thread runs with a descriptor table of its own: in a process
// whose threads share one table, the kernel takes and drops a reference on
// the file behind a socket around every socket call; with a table of its
// own a thread is spared that, as a single-threaded process is. A number
// from another thread's table then means nothing there, so descriptors
// cross between threads the way they cross between processes: over a Unix
// socket (SCM_RIGHTS), which installs each one in the receiver's table under
// a number of its own.
#pragma once

#include <cstddef>
#include <vector>

namespace sluice::net {

// The most descriptors one message can carry (the kernel's SCM_MAX_FD).
inline constexpr std::size_t kMaxFdsPerMessage = 253;

// Sends one message: `len` bytes and n <= kMaxFdsPerMessage descriptors.
// The sender keeps its own descriptors. 0, or -errno (nothing was sent).
int send_with_fds(int sock, const void* data, std::size_t len, const int* fds, std::size_t n) noexcept;

// Receives one message without waiting: up to `len` bytes into data, and its
// descriptors (close-on-exec) appended to `fds`, which the caller then owns.
// Returns the bytes, 0 at end of stream, or -errno (-EAGAIN: none waiting).
// `lost` is set when descriptors were sent with it that the receiver could
// not take (its table is full): those are gone.
long recv_with_fds(int sock, void* data, std::size_t len, std::vector<int>& fds, bool& lost) noexcept;

// Gives the calling thread a descriptor table of its own holding only 0, 1,
// 2 and `keep`: every other descriptor it had in common with the process is
// closed in its copy, so nothing the other threads open or close later is
// held open by it. False, with errno, when the kernel refuses (a seccomp
// profile without unshare): the table is then still shared and untouched.
bool own_descriptor_table(std::vector<int> keep) noexcept;

}  // namespace sluice::net
