// sluice: argv, config, signals, worker threads, exit codes.
//
// Exit codes: 0 clean exit (or --check: config valid), 1 runtime failure
// (cannot listen, a second signal cut the drain short), 2 invalid config or
// usage, 3 a worker's loop did not close cleanly (a handle or buffer leak).
#include <fcntl.h>
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
    "Signals: SIGTERM/SIGINT drain (stop accepting, finish in-flight requests,\n"
    "         exit 0); a second SIGTERM/SIGINT exits at once with status 1.\n"
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

// The main thread's loop: signals, and the workers telling it they are done.
struct Supervisor {
  uv_loop_t* loop = nullptr;
  uv_signal_t sigint{}, sigterm{}, sighup{};
  uv_async_t worker_done{};
  std::vector<std::unique_ptr<sluice::proxy::Worker>>* workers = nullptr;
  std::atomic<unsigned> finished{0};
  unsigned total = 0;
  int signals_seen = 0;

  static void on_signal(uv_signal_t* h, int signum) {
    auto* self = static_cast<Supervisor*>(h->data);
    if (signum == SIGHUP) {
      SLUICE_LOG(Warn, "msg=\"SIGHUP ignored: configuration reload is not supported yet\"");
      return;
    }
    if (++self->signals_seen > 1) {
      SLUICE_LOG(Warn, "msg=\"second signal: exiting now\" signal=%s", strsignal(signum));
      std::fflush(stdout);
      std::_Exit(1);
    }
    SLUICE_LOG(Info, "msg=\"draining\" signal=%s", strsignal(signum));
    for (auto& w : *self->workers) w->stop();
  }
  static void on_worker_done(uv_async_t* a) {
    auto* self = static_cast<Supervisor*>(a->data);
    if (self->finished.load() < self->total) return;
    uv_close(reinterpret_cast<uv_handle_t*>(&self->sigint), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&self->sigterm), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&self->sighup), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&self->worker_done), nullptr);
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
  // TLS contexts, one per TLS listener, shared by every worker. Built for
  // --check too, so that a certificate OpenSSL refuses is caught there.
  std::vector<std::unique_ptr<net::TlsServerContext>> server_contexts;
  std::vector<std::unique_ptr<net::TlsClientContext>> client_contexts;
  proxy::TlsContexts tls;
  for (std::size_t i = 0; i < cfg->listeners.size(); ++i) {
    const config::Listener& l = cfg->listeners[i];
    if (!l.tls) {
      tls.listeners.push_back(nullptr);
      continue;
    }
    std::string error;
    auto ctx = net::TlsServerContext::build(*l.tls, error);
    if (!ctx) {
      std::fprintf(stderr, "%s: listener[%zu].tls: %s\n", args.config.c_str(), i, error.c_str());
      return 2;
    }
    tls.listeners.push_back(ctx.get());
    server_contexts.push_back(std::move(ctx));
  }
  for (std::size_t i = 0; i < cfg->upstreams.size(); ++i) {
    const config::Upstream& u = cfg->upstreams[i];
    if (!u.tls.enabled) {
      tls.upstreams.push_back(nullptr);
      continue;
    }
    std::string error;
    auto ctx = net::TlsClientContext::build(u.tls, error);
    if (!ctx) {
      std::fprintf(stderr, "%s: upstream[%zu].tls: %s\n", args.config.c_str(), i, error.c_str());
      return 2;
    }
    if (!u.tls.verify && !args.check) {
      SLUICE_LOG(Warn, "msg=\"upstream TLS certificates are not verified\" upstream=%s",
                 u.name.c_str());
    }
    tls.upstreams.push_back(ctx.get());
    client_contexts.push_back(std::move(ctx));
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

  unsigned nworkers = cfg->server.workers;
  if (nworkers == 0) nworkers = std::max(1u, std::thread::hardware_concurrency());

  std::vector<std::unique_ptr<proxy::Worker>> workers;
  for (unsigned i = 0; i < nworkers; ++i) {
    std::vector<int> fds;
    for (const config::Listener& l : cfg->listeners) {
      std::string error;
      int fd = net::open_listen_socket(reinterpret_cast<const sockaddr*>(&l.addr.storage),
                                       l.addr.length, l.addr.text, error);
      if (fd < 0) {
        std::fprintf(stderr, "sluice: %s\n", error.c_str());
        for (int f : fds) ::close(f);
        return 1;
      }
      fds.push_back(fd);
    }
    workers.push_back(
        std::make_unique<proxy::Worker>(i, nworkers, cfg, std::move(fds), tls, access_fd));
  }

  Supervisor sup;
  sup.loop = uv_default_loop();
  sup.workers = &workers;
  sup.total = nworkers;
  uv_async_init(sup.loop, &sup.worker_done, Supervisor::on_worker_done);
  sup.worker_done.data = &sup;
  for (uv_signal_t* s : {&sup.sigint, &sup.sigterm, &sup.sighup}) {
    uv_signal_init(sup.loop, s);
    s->data = &sup;
  }
  uv_signal_start(&sup.sigint, Supervisor::on_signal, SIGINT);
  uv_signal_start(&sup.sigterm, Supervisor::on_signal, SIGTERM);
  uv_signal_start(&sup.sighup, Supervisor::on_signal, SIGHUP);

  std::vector<std::thread> threads;
  for (auto& w : workers) {
    proxy::Worker* wp = w.get();
    threads.emplace_back([wp, &sup] {
      wp->run();
      sup.finished.fetch_add(1);
      uv_async_send(&sup.worker_done);
    });
  }
  std::string addrs;
  for (const config::Listener& l : cfg->listeners) addrs += (addrs.empty() ? "" : ",") + l.addr.text;
  SLUICE_LOG(Info, "msg=ready version=%s workers=%u listen=%s config=%s", SLUICE_VERSION, nworkers,
             addrs.c_str(), args.config.c_str());

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
