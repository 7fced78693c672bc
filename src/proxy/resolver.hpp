// Resolver: follows DNS for upstream servers written as names, on the main
// thread's loop (never a worker's), so that a pool follows, say, a Kubernetes
// headless service as its pods come and go.
//
// Every resolve_interval each name is looked up again with uv_getaddrinfo
// (libuv's threadpool: the loop never blocks), at most one lookup per name in
// flight. Answers are put in the loader's fixed order (sort_addresses). When
// a name's set changes, the change is logged and the upstream's new member
// list is handed to `on_change`, which gives it to every worker and to the
// health checker; a failed lookup keeps the last known addresses (warned
// once per streak of failures). Servers written as IP literals are never
// looked up.
//
// Reload: apply() starts over from the new generation's members, which the
// loader has just resolved (the newest answer there is), with fresh timers.
// A lookup still in flight from before is dropped when it answers: its Name
// was retired (epoch check), so an answer about an upstream that the reload
// dropped or changed never reaches anyone.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "proxy/generation.hpp"
#include "proxy/members.hpp"

namespace sluice::proxy {

class Resolver {
 public:
  // Upstream `index` of the generation last given to apply() has these
  // members now. Called on the loop, from a lookup's answer.
  using OnChange = std::function<void(std::size_t index, std::shared_ptr<const Members>)>;

  Resolver(uv_loop_t* loop, OnChange on_change) : loop_(loop), on_change_(std::move(on_change)) {}
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // At start and after each reload.
  void apply(std::shared_ptr<const Generation> gen);
  // The members of every upstream as they are now (index as in the
  // generation's upstreams): the load's, then what DNS changed.
  const MemberLists& members() const noexcept { return members_; }
  // Stops every timer; lookups in flight are dropped when they answer. The
  // loop holds nothing of this once those callbacks ran.
  void close();

 private:
  struct Name;
  static void on_tick(uv_timer_t* t) noexcept;
  static void on_answer(uv_getaddrinfo_t* req, int status, addrinfo* answer) noexcept;
  void answered(Name& n, int status, const addrinfo* answer);
  void publish(std::size_t upstream);
  void retire_all();

  uv_loop_t* loop_;
  OnChange on_change_;
  std::shared_ptr<const Generation> gen_;
  MemberLists members_;
  std::vector<Name*> names_;  // of gen_; each frees itself once retired and quiet
  std::uint64_t epoch_ = 0;   // one more per apply(): a Name of another epoch is stale
  bool closed_ = false;
};

}  // namespace sluice::proxy
