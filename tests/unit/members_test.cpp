// Membership: the pure diff and member-list rebuild the resolver uses, and
// an UpstreamPool moving its members in place (new ones join, vanished ones
// drain and are freed once unused, a returning one gets its state back).
#include <catch2/catch.hpp>

#include <uv.h>

#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "config/config.hpp"
#include "config_support.hpp"
#include "net/transport.hpp"
#include "proxy/generation.hpp"
#include "proxy/members.hpp"
#include "proxy/upstream.hpp"

using sluice::config::SocketAddress;
using sluice::proxy::Member;
using sluice::proxy::Members;

namespace {

SocketAddress addr(const std::string& host_port) {
  auto r = sluice::config::resolve_address(host_port);
  REQUIRE(std::holds_alternative<SocketAddress>(r));
  return std::get<SocketAddress>(r);
}

std::vector<SocketAddress> addrs(std::initializer_list<const char*> list) {
  std::vector<SocketAddress> out;
  for (const char* a : list) out.push_back(addr(a));
  sluice::config::sort_addresses(out);
  return out;
}

std::shared_ptr<const sluice::config::Config> one_upstream(const std::string& servers) {
  return config_support::config_of(sluice::config::parse_config(
      "[[listener]]\naddress = \"127.0.0.1:8080\"\n"
      "[[route]]\nupstream = \"app\"\n"
      "[[upstream]]\nname = \"app\"\nservers = [" + servers + "]\n",
      "members_test.toml"));
}

}  // namespace

TEST_CASE("members: diff_addresses names what joined and what vanished", "[members]") {
  const auto before = addrs({"127.0.0.1:80", "127.0.0.2:80"});
  const auto after = addrs({"127.0.0.2:80", "127.0.0.3:80"});
  const auto change = sluice::proxy::diff_addresses(before, after);
  REQUIRE(change.added.size() == 1);
  CHECK(change.added[0].text == "127.0.0.3:80");
  REQUIRE(change.removed.size() == 1);
  CHECK(change.removed[0].text == "127.0.0.1:80");
  CHECK(sluice::proxy::diff_addresses(after, after).empty());
  CHECK(sluice::proxy::address_list(after) == "127.0.0.2:80,127.0.0.3:80");
  CHECK(sluice::proxy::address_list({}) == "-");
}

TEST_CASE("members: a fixed order whatever order the resolver answers in", "[members]") {
  auto a = addrs({"127.0.0.3:80", "[::1]:80", "127.0.0.1:80"});
  auto b = addrs({"[::1]:80", "127.0.0.1:80", "127.0.0.3:80"});
  REQUIRE(a.size() == 3);
  for (std::size_t i = 0; i < a.size(); ++i) CHECK(a[i].text == b[i].text);
  CHECK(a[0].text == "127.0.0.1:80");
  CHECK(a[2].text == "[::1]:80");
}

TEST_CASE("members: members_for keeps the health cell of every member that stays", "[members]") {
  const auto cfg = one_upstream("\"localhost:9000\", \"127.0.0.9:9000\"");
  const sluice::config::Upstream& u = cfg->upstreams[0];
  CHECK_FALSE(u.servers[0].literal);
  CHECK(u.servers[1].literal);
  CHECK(u.resolve_interval.count() == 30'000);
  const Members before = sluice::proxy::members_for(
      u, {addrs({"127.0.0.1:9000"}), addrs({"127.0.0.9:9000"})}, {});
  REQUIRE(before.size() == 2);
  before[0].health->up.store(false);  // ejected by the health checks
  const Members after = sluice::proxy::members_for(
      u, {addrs({"127.0.0.1:9000", "127.0.0.2:9000"}), addrs({"127.0.0.9:9000"})}, before);
  REQUIRE(after.size() == 3);
  CHECK(after[0].addr.text == "127.0.0.1:9000");
  CHECK(after[0].health == before[0].health);  // the verdict stays with the member
  CHECK(after[1].addr.text == "127.0.0.2:9000");
  CHECK(after[1].health->usable());            // a new member starts in rotation
  CHECK(after[1].name == "localhost:9000");
  CHECK(after[2].health == before[1].health);
}

TEST_CASE("members: same_servers compares servers as written, not what they resolved to",
          "[members]") {
  const auto a = one_upstream("\"localhost:9000\"");
  auto moved = std::make_shared<sluice::config::Config>(*a);
  moved->upstreams[0].servers[0].addrs = addrs({"127.0.0.7:9000"});
  CHECK(sluice::proxy::same_servers(a->upstreams[0], moved->upstreams[0]));
  const auto other = one_upstream("\"localhost:9001\"");
  CHECK_FALSE(sluice::proxy::same_servers(a->upstreams[0], other->upstreams[0]));
}

TEST_CASE("members: a pool moves its members in place; draining states live while used",
          "[members]") {
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  {
    sluice::net::IoContext io(&loop);
    const auto cfg = one_upstream("\"localhost:9000\"");
    const sluice::config::Upstream& u = cfg->upstreams[0];
    auto gen = std::make_shared<sluice::proxy::Generation>();
    gen->config = cfg;
    gen->members = {std::make_shared<const Members>(
        sluice::proxy::members_for(u, {addrs({"127.0.0.1:9000"})}, {}))};
    sluice::proxy::UpstreamPool pool(io, gen, 0);
    REQUIRE(pool.member_count() == 1);
    sluice::proxy::ServerState* first = pool.pick(0, nullptr);
    REQUIRE(first != nullptr);
    pool.hold(*first);  // a session on .1 (its exchange, or a WebSocket session)

    const Members two = sluice::proxy::members_for(
        u, {addrs({"127.0.0.1:9000", "127.0.0.2:9000"})}, *gen->members[0]);
    pool.set_members(two);
    CHECK(pool.member_count() == 2);
    CHECK(pool.draining_count() == 0);
    CHECK(pool.pick(0, nullptr) != pool.pick(0, nullptr));  // round robin over both

    const Members second_only = sluice::proxy::members_for(u, {addrs({"127.0.0.2:9000"})}, two);
    pool.set_members(second_only);
    CHECK(pool.member_count() == 1);
    CHECK(pool.draining_count() == 1);  // still held by the session
    CHECK(first->draining);
    CHECK(first->member.addr.text == "127.0.0.1:9000");  // untouched under the session
    for (int i = 0; i < 4; ++i) {
      sluice::proxy::ServerState* s = pool.pick(0, nullptr);
      REQUIRE(s != nullptr);
      CHECK(s->member.addr.text == "127.0.0.2:9000");  // never the draining one
    }

    // It comes back while still draining: the same state, in rotation again.
    pool.set_members(two);
    CHECK(pool.draining_count() == 0);
    CHECK_FALSE(first->draining);
    pool.set_members(second_only);
    CHECK(pool.draining_count() == 1);

    // Flapping does not grow anything: one state per address at most.
    for (int i = 0; i < 100; ++i) {
      pool.set_members(two);
      pool.set_members(second_only);
    }
    CHECK(pool.member_count() + pool.draining_count() == 2);

    pool.let_go(*first);  // the session ends: the draining state is freed
    CHECK(pool.draining_count() == 0);
    CHECK(pool.member_count() == 1);

    // Unused, a vanished member is freed at once.
    pool.set_members(two);
    pool.set_members(second_only);
    CHECK(pool.draining_count() == 0);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(&loop) == 0);
}
