// sluice: argv, config, signals, worker threads, exit codes.
//
// Exit codes: 0 clean exit (or --check: config valid), 1 runtime failure
// (cannot listen, a second signal cut the drain short), 2 invalid config or
// usage, 3 a worker's loop did not close cleanly (a handle or buffer leak).
#include <fcntl.h>
#include <sys/resource.h>
#include <signal.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "config/config.hpp"
#include "core/log.hpp"
#include "http/responses.hpp"
#include "net/listener.hpp"
#include "net/tls.hpp"
#include "proxy/admin.hpp"
#include "proxy/generation.hpp"
#include "proxy/health_check.hpp"
#include "proxy/metrics.hpp"
#include "proxy/resolver.hpp"
#include "proxy/worker.hpp"

namespace {

constexpr const char* kUsage =
    "Usage: sluice -c FILE            run the gateway on FILE\n"
    "       sluice --check -c FILE    validate FILE and exit (0 valid, 2 invalid)\n"
    "       sluice --version\n"
    "       sluice --help\n"
    "\n"
    "Options:\n"
    "  -c, --config FILE   configuration file (TOML); see README.md for every key\n"
    "  -t, --check         validate the configuration, print every problem, exit\n"
    "  -v, --version       print the version and exit\n"
    "  -h, --help          print this help and exit\n"
    "\n"
    "Signals: SIGUSR1 reopens the access log file (log rotation);\n"
    "         SIGHUP reloads FILE (an invalid file is logged and the running\n"
    "         configuration kept); SIGTERM/SIGINT drain (stop accepting after\n"
    "         server.drain_delay, finish in-flight requests, close WebSocket\n"
    "         sessions with 1001 spread over server.drain_timeout, exit 0); a\n"
    "         second SIGTERM/SIGINT exits at once with status 1.\n"
    "Exit codes: 0 ok, 1 runtime failure, 2 invalid configuration or usage,\n"
    "            3 unclean shutdown (leak detected).\n";

struct Args {
  std::string config;
  bool check = false;
  bool help = false;
  bool version = false;
};

bool parse_args(int argc, char** argv, Args& out) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-c" || a == "--config") {
      if (i + 1 >= argc) return false;
      out.config = argv[++i];
    } else if (a.rfind("--config=", 0) == 0) {
      out.config = a.substr(9);
    } else if (a == "-t" || a == "--check") {
      out.check = true;
    } else if (a == "-h" || a == "--help") {
      out.help = true;
    } else if (a == "-v" || a == "--version") {
      out.version = true;
    } else {
      return false;
    }
  }
  return true;
}

sluice::log::Level to_log_level(sluice::config::LogLevel l) {
  switch (l) {
    case sluice::config::LogLevel::Debug: return sluice::log::Level::Debug;
    case sluice::config::LogLevel::Info: return sluice::log::Level::Info;
    case sluice::config::LogLevel::Warn: return sluice::log::Level::Warn;
    case sluice::config::LogLevel::Error: return sluice::log::Level::Error;
  }
  return sluice::log::Level::Info;
}

// Opens one listening socket per worker for `l`; false (and nothing left
// open) on failure, with `error` set.
bool open_for_workers(const sluice::config::Listener& l, unsigned nworkers, std::vector<int>& fds,
                      std::string& error) {
  for (unsigned w = 0; w < nworkers; ++w) {
    int fd = sluice::net::open_listen_socket(reinterpret_cast<const sockaddr*>(&l.addr.storage),
                                             l.addr.length, l.addr.text, error);
    if (fd < 0) {
      for (int f : fds) ::close(f);
      fds.clear();
      return false;
    }
    fds.push_back(fd);
  }
  return true;
}

void warn_unverified(const sluice::config::Config& cfg) {
  for (const sluice::config::Upstream& u : cfg.upstreams) {
    if (u.tls.enabled && !u.tls.verify) {
      SLUICE_LOG(Warn, "msg=\"upstream TLS certificates are not verified\" upstream=%s",
                 u.name.c_str());
    }
  }
}

// The main thread's loop: signals, reloads, and the workers telling it they
// are done.
struct Supervisor {
  uv_loop_t* loop = nullptr;
  uv_signal_t sigint{}, sigterm{}, sighup{}, sigusr1{};
  int access_fd = -1;       // the workers write their access logs here
  std::string access_path;  // the file behind it ("" for stdout or off)
  // One per worker, on its control socket: readable when it is done.
  std::unique_ptr<uv_poll_t[]> worker_done;
  uv_timer_t drain_delay{};
  std::vector<std::unique_ptr<sluice::proxy::Worker>>* workers = nullptr;
  std::shared_ptr<const sluice::proxy::Generation> current;
  std::string config_path;
  unsigned finished = 0;
  unsigned total = 0;
  int signals_seen = 0;
  std::uint64_t reloads = 0;
  std::uint64_t reload_failures = 0;
  std::unique_ptr<sluice::proxy::AdminServer> admin;
  // Active health checks, on this loop: once per process, not per worker.
  std::unique_ptr<sluice::proxy::HealthChecker> health;
  // DNS re-resolution of upstream servers written as names, on this loop.
  // Its member lists are the current ones (metrics, health checks, the next
  // reload's health cells).
  std::unique_ptr<sluice::proxy::Resolver> resolver;

  // DNS changed upstream `index`'s members: every worker moves its pool in
  // place, and the health checks follow.
  void members_changed(std::size_t index, std::shared_ptr<const sluice::proxy::Members> members) {
    for (auto& w : *workers) w->update_members(current, index, members);
    health->apply(current, resolver->members());
  }

  std::string metrics() const {
    std::vector<const sluice::proxy::WorkerMetrics*> cells;
    for (const auto& w : *workers) cells.push_back(&w->metrics());
    sluice::proxy::ProcessFacts facts;
    facts.reloads = reloads;
    facts.reload_failures = reload_failures;
    facts.generation = current->number;
    facts.draining = signals_seen > 0;
    const sluice::config::Config& c = *current->config;
    const sluice::proxy::MemberLists& members = resolver->members();
    for (std::size_t i = 0; i < c.upstreams.size(); ++i) {
      facts.members.push_back({c.upstreams[i].name, members[i]->size()});
      for (const sluice::proxy::Member& m : *members[i]) {
        facts.servers.push_back({c.upstreams[i].name, m.addr.text, m.health->usable(),
                                 c.upstreams[i].health_check.enabled, m.health->successes.get(),
                                 m.health->failures.get()});
      }
    }
    return sluice::proxy::render_metrics(cells, facts);
  }
  std::string config_facts() const {
    const sluice::config::Config& c = *current->config;
    std::string path;
    for (char ch : c.source_path) {
      if (ch == '"' || ch == '\\') path += '\\';
      if (static_cast<unsigned char>(ch) < 0x20) continue;
      path += ch;
    }
    return "{\"path\":\"" + path + "\",\"sha256\":\"" + c.source_sha256 +
           "\",\"generation\":" + std::to_string(current->number) +
           ",\"reloads\":" + std::to_string(reloads) +
           ",\"reload_failures\":" + std::to_string(reload_failures) +
           ",\"draining\":" + (signals_seen > 0 ? "true" : "false") + "}\n";
  }
  // The admin endpoint as `cfg` has it: opened, moved or closed.
  bool apply_admin(const sluice::config::Config& cfg, std::string& error) {
    if (!cfg.admin.enabled) {
      if (admin) admin->close();
      return true;
    }
    if (admin && admin->listening() && admin->address() == cfg.admin.addr.text) return true;
    if (!admin) {
      admin = std::make_unique<sluice::proxy::AdminServer>(
          loop, sluice::proxy::AdminServer::Handlers{[this] { return metrics(); },
                                                     [this] { return signals_seen == 0; },
                                                     [this] { return config_facts(); }});
    }
    return admin->listen(cfg.admin.addr, error);
  }

  static void on_signal(uv_signal_t* h, int signum) {
    auto* self = static_cast<Supervisor*>(h->data);
    if (signum == SIGHUP) {
      if (self->signals_seen == 0) self->reload();
      return;
    }
    if (signum == SIGUSR1) {
      self->reopen_access_log();
      return;
    }
    if (++self->signals_seen > 1) {
      SLUICE_LOG(Warn, "msg=\"second signal: exiting now\" signal=%s", strsignal(signum));
      std::fflush(stdout);
      std::_Exit(1);
    }
    const auto delay = static_cast<std::uint64_t>(self->current->config->server.drain_delay.count());
    SLUICE_LOG(Info, "msg=\"draining\" signal=%s drain_delay_ms=%llu", strsignal(signum),
               static_cast<unsigned long long>(delay));
    uv_timer_start(&self->drain_delay, on_drain_delay, delay, 0);
  }
  static void on_drain_delay(uv_timer_t* t) {
    auto* self = static_cast<Supervisor*>(t->data);
    for (auto& w : *self->workers) w->stop();
  }
  static void on_worker_done(uv_poll_t* p, int, int) {
    auto* self = static_cast<Supervisor*>(p->data);
    const auto w = static_cast<std::size_t>(p - self->worker_done.get());
    if (!(*self->workers)[w]->finished()) return;
    uv_close(reinterpret_cast<uv_handle_t*>(p), nullptr);
    if (++self->finished < self->total) return;
    uv_close(reinterpret_cast<uv_handle_t*>(&self->sigint), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&self->sigterm), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&self->sighup), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&self->sigusr1), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&self->drain_delay), nullptr);
    if (self->admin) self->admin->close();
    self->health->close();
    self->resolver->close();
  }

  // SIGUSR1 (log rotation): the access log's path is opened anew and put in
  // place of the old file under the same descriptor number, in one dup3():
  // here, and in each worker's own descriptor table, which gets the new
  // file over its control socket.
  void reopen_access_log() {
    if (access_path.empty()) return;
    int fd = ::open(access_path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 || ::dup3(fd, access_fd, O_CLOEXEC) < 0) {
      SLUICE_LOG(Error, "msg=\"cannot reopen the access log\" path=%s error=\"%s\"",
                 access_path.c_str(), std::strerror(errno));
    } else {
      for (auto& w : *workers) {
        const int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (copy >= 0) w->reopen_access_log(copy);
      }
      SLUICE_LOG(Info, "msg=\"access log reopened\" path=%s", access_path.c_str());
    }
    if (fd >= 0) ::close(fd);
  }

  // SIGHUP: load and check the file again, here, off the data path. On any
  // problem the running configuration stays in force.
  void reload() {
    using namespace sluice;
    auto fail = [&](const std::string& why) {
      ++reload_failures;
      SLUICE_LOG(Error,
                 "msg=\"reload failed, keeping the running configuration\" config=%s "
                 "generation=%llu failures=%llu error=\"%s\"",
                 config_path.c_str(), static_cast<unsigned long long>(current->number),
                 static_cast<unsigned long long>(reload_failures), why.c_str());
    };
    config::LoadResult loaded = config::load_config(config_path);
    if (auto* errors = std::get_if<std::vector<config::ConfigError>>(&loaded)) {
      for (const config::ConfigError& e : *errors) {
        SLUICE_LOG(Error, "msg=\"config error\" error=\"%s\"", e.to_string().c_str());
      }
      fail(std::to_string(errors->size()) + " problem(s), see above");
      return;
    }
    auto cfg = std::get<std::shared_ptr<const config::Config>>(loaded);
    std::string error;
    // Health cells are shared from the members as they are now, DNS changes
    // included, so a member the resolver added keeps its verdict.
    auto gen = proxy::Generation::build(cfg, current.get(), error, &resolver->members());
    if (!gen) {
      fail(config_path + ": " + error);
      return;
    }
    // New addresses get their sockets now, one per worker, before anything
    // changes: a port that cannot be bound fails the whole reload.
    const config::Config& old = *current->config;
    std::vector<std::vector<int>> fds(total, std::vector<int>(cfg->listeners.size(), -1));
    auto give_up = [&] {  // nothing changed: the sockets opened so far close
      for (auto& per_worker : fds) {
        for (int fd : per_worker) {
          if (fd >= 0) ::close(fd);
        }
      }
      fail(error);
    };
    for (std::size_t i = 0; i < cfg->listeners.size(); ++i) {
      bool kept = false;
      for (const config::Listener& l : old.listeners) {
        kept = kept || config::same_address(l.addr, cfg->listeners[i].addr);
      }
      std::vector<int> opened;
      if (!kept && !open_for_workers(cfg->listeners[i], total, opened, error)) {
        give_up();
        return;
      }
      for (std::size_t w = 0; w < opened.size(); ++w) fds[w][i] = opened[w];
    }
    if (!apply_admin(*cfg, error)) {
      give_up();
      return;
    }
    if (cfg->server.workers != old.server.workers) {
      SLUICE_LOG(Warn, "msg=\"server.workers changes at the next restart, not on reload\"");
    }
    if (cfg->log.access != old.log.access || cfg->log.access_json != old.log.access_json) {
      SLUICE_LOG(Warn, "msg=\"log.access and log.format change at the next restart, not on reload\"");
    }
    log::set_level(to_log_level(cfg->log.level));
    warn_unverified(*cfg);
    current = gen;
    for (unsigned w = 0; w < total; ++w) {
      if (!(*workers)[w]->reload(gen, std::move(fds[w]))) {
        SLUICE_LOG(Error, "msg=\"worker missed the reload's listening sockets\" worker=%u", w);
      }
    }
    resolver->apply(gen);
    health->apply(gen, resolver->members());
    ++reloads;
    SLUICE_LOG(Info, "msg=reloaded config=%s generation=%llu reloads=%llu", config_path.c_str(),
               static_cast<unsigned long long>(gen->number),
               static_cast<unsigned long long>(reloads));
  }
};

}  // namespace

int main(int argc, char** argv) {
  using namespace sluice;
  Args args;
  if (!parse_args(argc, argv, args)) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  if (args.help) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (args.version) {
    std::printf("sluice %s\n", SLUICE_VERSION);
    return 0;
  }
  if (args.config.empty()) {
    std::fputs("sluice: no configuration file given (-c FILE)\n", stderr);
    std::fputs(kUsage, stderr);
    return 2;
  }

  config::LoadResult loaded = config::load_config(args.config);
  if (auto* errors = std::get_if<std::vector<config::ConfigError>>(&loaded)) {
    for (const config::ConfigError& e : *errors) std::fprintf(stderr, "%s\n", e.to_string().c_str());
    std::fprintf(stderr, "sluice: %s: %zu problem%s, nothing started\n", args.config.c_str(),
                 errors->size(), errors->size() == 1 ? "" : "s");
    return 2;
  }
  auto cfg = std::get<std::shared_ptr<const config::Config>>(loaded);
  // TLS contexts, one per TLS listener and TLS upstream, shared by every
  // worker. Built for --check too, so that a certificate OpenSSL refuses is
  // caught there.
  std::string error;
  auto gen = proxy::Generation::build(cfg, nullptr, error);
  if (!gen) {
    std::fprintf(stderr, "%s: %s\n", args.config.c_str(), error.c_str());
    return 2;
  }
  if (args.check) {
    std::printf("%s: configuration is valid\n", args.config.c_str());
    return 0;
  }

  log::set_level(to_log_level(cfg->log.level));
  ::signal(SIGPIPE, SIG_IGN);
  (void)http::error_response(500, true);  // build the response table before threads start

  int access_fd = -1;
  if (cfg->log.access == "stdout") {
    access_fd = STDOUT_FILENO;
  } else if (cfg->log.access != "off") {
    access_fd = ::open(cfg->log.access.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (access_fd < 0) {
      std::fprintf(stderr, "sluice: cannot open access log %s: %s\n", cfg->log.access.c_str(),
                   std::strerror(errno));
      return 1;
    }
  }

  // Every client and every upstream connection is a descriptor: take all
  // that the hard limit allows, as nginx's worker_rlimit_nofile would.
  rlimit nofile{};
  if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max == RLIM_INFINITY ? (rlim_t{1} << 20) : nofile.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &nofile);
    ::getrlimit(RLIMIT_NOFILE, &nofile);
  }

  unsigned nworkers = cfg->server.workers;
  if (nworkers == 0) nworkers = std::max(1u, std::thread::hardware_concurrency());

  warn_unverified(*cfg);
  std::vector<std::vector<int>> fds(nworkers);
  for (const config::Listener& l : cfg->listeners) {
    std::vector<int> opened;
    if (!open_for_workers(l, nworkers, opened, error)) {
      std::fprintf(stderr, "sluice: %s\n", error.c_str());
      return 1;  // the sockets opened so far close with the process
    }
    for (unsigned w = 0; w < nworkers; ++w) fds[w].push_back(opened[w]);
  }
  std::vector<std::unique_ptr<proxy::Worker>> workers;
  for (unsigned i = 0; i < nworkers; ++i) {
    workers.push_back(std::make_unique<proxy::Worker>(i, nworkers, gen, std::move(fds[i]), access_fd));
  }

  Supervisor sup;
  sup.loop = uv_default_loop();
  sup.workers = &workers;
  sup.total = nworkers;
  sup.current = gen;
  sup.config_path = args.config;
  sup.worker_done = std::make_unique<uv_poll_t[]>(nworkers);
  for (unsigned i = 0; i < nworkers; ++i) {
    if (workers[i]->control_fd() < 0) return 1;  // logged by the worker
    uv_poll_init(sup.loop, &sup.worker_done[i], workers[i]->control_fd());
    sup.worker_done[i].data = &sup;
    uv_poll_start(&sup.worker_done[i], UV_READABLE, Supervisor::on_worker_done);
  }
  uv_timer_init(sup.loop, &sup.drain_delay);
  sup.drain_delay.data = &sup;
  sup.access_fd = access_fd;
  if (access_fd > STDERR_FILENO) sup.access_path = cfg->log.access;
  for (uv_signal_t* s : {&sup.sigint, &sup.sigterm, &sup.sighup, &sup.sigusr1}) {
    uv_signal_init(sup.loop, s);
    s->data = &sup;
  }
  if (!sup.apply_admin(*cfg, error)) {
    std::fprintf(stderr, "sluice: %s\n", error.c_str());
    return 1;
  }
  sup.health = std::make_unique<proxy::HealthChecker>(sup.loop);
  sup.resolver = std::make_unique<proxy::Resolver>(
      sup.loop, [&sup](std::size_t index, std::shared_ptr<const proxy::Members> members) {
        sup.members_changed(index, std::move(members));
      });
  sup.resolver->apply(gen);
  sup.health->apply(gen, sup.resolver->members());
  uv_signal_start(&sup.sigint, Supervisor::on_signal, SIGINT);
  uv_signal_start(&sup.sigterm, Supervisor::on_signal, SIGTERM);
  uv_signal_start(&sup.sighup, Supervisor::on_signal, SIGHUP);
  uv_signal_start(&sup.sigusr1, Supervisor::on_signal, SIGUSR1);

  std::vector<std::thread> threads;
  for (auto& w : workers) {
    proxy::Worker* wp = w.get();
    threads.emplace_back([wp] { wp->run(); });
  }
  std::string addrs;
  for (const config::Listener& l : cfg->listeners) addrs += (addrs.empty() ? "" : ",") + l.addr.text;
  SLUICE_LOG(Info, "msg=ready version=%s workers=%u listen=%s config=%s nofile=%llu", SLUICE_VERSION,
             nworkers, addrs.c_str(), args.config.c_str(),
             static_cast<unsigned long long>(nofile.rlim_cur));

  uv_run(sup.loop, UV_RUN_DEFAULT);
  for (std::thread& t : threads) t.join();
  bool clean = uv_loop_close(sup.loop) == 0;
  for (auto& w : workers) clean = clean && w->clean();
  workers.clear();
  if (access_fd > STDERR_FILENO) ::close(access_fd);
  if (!clean) {
    SLUICE_LOG(Error, "msg=\"handle leak: unclean shutdown\"");
    return 3;
  }
  SLUICE_LOG(Info, "msg=stopped");
  return 0;
}
