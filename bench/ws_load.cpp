// ws_load: the WebSocket bench's client, a closed-loop load generator.
//
//   ws_load --port PORT [--address 127.0.0.1] [--path /] [--origin URL]
//           [--connections N] [--size BYTES] [--text] [--mode load|idle]
//           [--duration S] [--warmup S] [--hold S] [--concurrency K]
//           [--sources K] [--connect-timeout S]
//
// load: opens N WebSocket connections, then each one sends a masked message
// of --size bytes (one frame, FIN, binary or --text, a fresh mask key per
// frame) and waits for its echo before sending the next. After --warmup
// seconds the counters start; after --duration more, no new message is sent,
// each connection closes (1000) once its last echo is in, and one `result`
// line goes to stdout: messages/s, MB/s (10^6 bytes of echoed payload per
// second), latency percentiles (send to last echo byte), and errors by kind.
// idle: opens N connections and prints `ready opened=N failed=F`, then keeps
// them silent and obeys stdin, one command per line: `check` sends one
// message on every connection and prints `checked ok=K errors=E`; `close`
// (or end of input, or --hold seconds) closes them all and prints `result`.
//
// Every echo is checked: length, opcode and every payload byte against what
// was sent (the payload differs per connection and message). A wrong echo,
// an unmasked-rule or framing violation, a failed handshake (status, Upgrade,
// Connection, Sec-WebSocket-Accept), a close or EOF not asked for, all count
// as errors. Exit 0: finished with no error; 3: finished with errors; 1: could
// not open the connections; 2: usage. Loopback only; bounded in time.
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "ws_load.hpp"

namespace bench::load {

// ---- Loader

Loader::Loader(Options opt) : opt_(std::move(opt)) {
  pattern_.resize(opt_.size + kPatternSlack);
  for (auto& b : pattern_) {
    const std::uint64_t r = rng_.next();
    b = opt_.text ? static_cast<std::uint8_t>('a' + r % 26) : static_cast<std::uint8_t>(r >> 56);
  }
}

void Loader::report(const char* what) {
  if (++reports_ <= 5) std::fprintf(stderr, "ws_load: %s\n", what);
  if (reports_ == 5) std::fprintf(stderr, "ws_load: (further messages of this run suppressed)\n");
}

int Loader::run() {
  uv_loop_init(&loop_);
  uv_timer_init(&loop_, &timer_);
  timer_.data = this;
  uv_signal_init(&loop_, &sigint_);
  uv_signal_init(&loop_, &sigterm_);
  sigint_.data = sigterm_.data = this;
  uv_signal_start(&sigint_, on_signal, SIGINT);
  uv_signal_start(&sigterm_, on_signal, SIGTERM);
  clients_.reserve(static_cast<std::size_t>(opt_.connections));
  enter(Stage::Connecting, opt_.connect_timeout);
  connect_more();
  uv_run(&loop_, UV_RUN_DEFAULT);
  uv_loop_close(&loop_);
  print_result();
  if (fatal_) return 1;
  return counters_.errors() == 0 ? 0 : 3;
}

void Loader::connect_more() {
  while (stage_ == Stage::Connecting && next_ < opt_.connections && attempts_in_flight_ < opt_.concurrency) {
    clients_.push_back(std::make_unique<Client>(this, static_cast<std::uint32_t>(next_)));
    ++next_;
    ++attempts_in_flight_;
    clients_.back()->connect();
  }
}

void Loader::on_opened() {
  ++counters_.opened;
  --attempts_in_flight_;
  connect_more();
  if (next_ == opt_.connections && attempts_in_flight_ == 0) all_attempted();
}

void Loader::on_failed() {
  if (stage_ != Stage::Connecting) return;
  --attempts_in_flight_;
  connect_more();
  if (next_ == opt_.connections && attempts_in_flight_ == 0) all_attempted();
}

void Loader::all_attempted() {
  const std::uint64_t failed = counters_.connect_errors + counters_.handshake_errors;
  if (opt_.idle) {
    std::printf("ready opened=%" PRIu64 " failed=%" PRIu64 "\n", counters_.opened, failed);
    std::fflush(stdout);
    enter(Stage::Idle, opt_.hold);
    if (uv_guess_handle(0) == UV_NAMED_PIPE && uv_pipe_init(&loop_, &stdin_, 0) == 0) {
      stdin_.data = this;
      if (uv_pipe_open(&stdin_, 0) == 0 && uv_read_start(reinterpret_cast<uv_stream_t*>(&stdin_), on_stdin_alloc,
                                                          on_stdin_read) == 0) {
        stdin_open_ = true;
      } else {
        uv_close(reinterpret_cast<uv_handle_t*>(&stdin_), nullptr);
      }
    }
    return;
  }
  if (failed > 0) {
    std::fprintf(stderr, "ws_load: opened %" PRIu64 " of %d connections; giving up\n", counters_.opened,
                 opt_.connections);
    fatal_ = true;
    begin_closing(true);
    return;
  }
  enter(opt_.warmup > 0 ? Stage::Warmup : Stage::Measure, opt_.warmup > 0 ? opt_.warmup : opt_.duration);
  for (auto& c : clients_) c->send_message();
}

// Moves to stage s; the timer ends it after `seconds`.
void Loader::enter(Stage s, double seconds) {
  stage_ = s;
  if (s == Stage::Measure) {
    counters_.messages = 0;
    latency_.clear();
    window_start_ = uv_hrtime();
  }
  uv_timer_stop(&timer_);
  uv_timer_start(&timer_, on_timer, static_cast<std::uint64_t>(seconds * 1000), 0);
}

void Loader::on_timer(uv_timer_t* t) noexcept { static_cast<Loader*>(t->data)->timer_fired(); }

void Loader::timer_fired() {
  switch (stage_) {
    case Stage::Connecting:
      std::fprintf(stderr, "ws_load: %" PRIu64 " of %d connections open after %.0f s; giving up\n",
                   counters_.opened, opt_.connections, opt_.connect_timeout);
      fatal_ = true;
      begin_closing(true);
      break;
    case Stage::Warmup:
      warmup_messages_ = counters_.all_messages;
      enter(Stage::Measure, opt_.duration);
      break;
    case Stage::Measure:
      window_end_ = uv_hrtime();
      enter(Stage::Drain, kDrainSeconds);
      for (auto& c : clients_)
        if (c->open() && !c->awaiting()) c->start_close();
      maybe_finish();
      break;
    case Stage::Idle:
      begin_closing(false);
      break;
    case Stage::Checking:
      std::printf("checked ok=%" PRIu64 " errors=%d (timed out)\n", counters_.check_ok, pending_checks_);
      std::fflush(stdout);
      counters_.unfinished += static_cast<std::uint64_t>(pending_checks_);
      pending_checks_ = 0;
      enter(Stage::Idle, opt_.hold);
      if (close_after_check_) begin_closing(false);
      break;
    case Stage::Drain:
    case Stage::Closing: {
      std::uint64_t late = 0;
      for (auto& c : clients_) {
        if (c->awaiting()) ++counters_.unfinished, ++late;
        else if (c->handle_live()) ++counters_.close_errors, ++late;
      }
      if (late > 0) report("time ran out before every echo and close handshake ended");
      stage_ = Stage::Closing;
      begin_closing(true);
      break;
    }
  }
}

void Loader::on_echo(bool ok, std::uint64_t rtt_ns) {
  if (!ok) ++counters_.payload_errors;
  else ++counters_.all_messages;
  if (stage_ == Stage::Measure && ok) {
    ++counters_.messages;
    latency_.add(rtt_ns);
  }
  if (stage_ == Stage::Checking) {
    if (ok) ++counters_.check_ok;
    if (--pending_checks_ == 0) check_done();
  }
}

// A client with a message out went away (already counted by its kind).
void Loader::on_lost() {
  if (stage_ == Stage::Checking && --pending_checks_ == 0) check_done();
}

void Loader::check_done() {
  std::printf("checked ok=%" PRIu64 " errors=%" PRIu64 "\n", counters_.check_ok, counters_.errors());
  std::fflush(stdout);
  enter(Stage::Idle, opt_.hold);
  if (close_after_check_) begin_closing(false);
}

void Loader::command(std::string_view line) {
  if (line == "check" && stage_ == Stage::Idle) {
    counters_.check_ok = 0;
    pending_checks_ = 0;
    enter(Stage::Checking, kCheckSeconds);
    for (auto& c : clients_)
      if (c->open()) ++pending_checks_;
    if (pending_checks_ == 0) {
      check_done();
      return;
    }
    for (auto& c : clients_)
      if (c->open()) c->send_message();
  } else if (line == "close") {
    if (stage_ == Stage::Checking) close_after_check_ = true;  // commands run in order
    else begin_closing(false);
  } else if (!line.empty()) {
    std::fprintf(stderr, "ws_load: unknown command '%.*s' (check, close)\n", static_cast<int>(line.size()),
                 line.data());
  }
}

void Loader::on_stdin_alloc(uv_handle_t* h, std::size_t, uv_buf_t* buf) noexcept {
  auto* l = static_cast<Loader*>(h->data);
  *buf = uv_buf_init(l->stdin_buf_, sizeof l->stdin_buf_);
}

void Loader::on_stdin_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) noexcept {
  auto* l = static_cast<Loader*>(s->data);
  if (nread < 0) {  // end of input: the same as `close`
    l->stdin_open_ = false;
    uv_close(reinterpret_cast<uv_handle_t*>(&l->stdin_), nullptr);
    l->command("close");
    return;
  }
  l->stdin_line_.append(buf->base, static_cast<std::size_t>(nread));
  std::size_t nl;
  while ((nl = l->stdin_line_.find('\n')) != std::string::npos) {
    const std::string line = l->stdin_line_.substr(0, nl);
    l->stdin_line_.erase(0, nl + 1);
    l->command(bench::trim(line));
  }
}

void Loader::on_signal(uv_signal_t* h, int) noexcept {
  auto* l = static_cast<Loader*>(h->data);
  std::fprintf(stderr, "ws_load: interrupted\n");
  l->fatal_ = true;
  l->begin_closing(true);
}

// Close handshakes with every open client (abort_all: just close the sockets).
void Loader::begin_closing(bool abort_all) {
  const bool first = stage_ != Stage::Closing;
  stage_ = Stage::Closing;
  if (abort_all) uv_timer_stop(&timer_);
  else if (first) enter(Stage::Closing, kDrainSeconds);
  for (auto& c : clients_) {
    if (abort_all) c->abort();
    else c->start_close();
  }
  if (stdin_open_ && abort_all) {
    stdin_open_ = false;
    uv_close(reinterpret_cast<uv_handle_t*>(&stdin_), nullptr);
  }
  maybe_finish();
}

void Loader::on_handle_closed() {
  --live_handles_;
  maybe_finish();
}

void Loader::maybe_finish() {
  if (finished_ || live_handles_ > 0) return;
  if (stage_ != Stage::Closing && stage_ != Stage::Drain) return;
  finished_ = true;
  if (window_end_ == 0) window_end_ = uv_hrtime();
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&sigint_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&sigterm_), nullptr);
  if (stdin_open_) {
    stdin_open_ = false;
    uv_close(reinterpret_cast<uv_handle_t*>(&stdin_), nullptr);
  }
}

void Loader::print_result() {
  const Counters& k = counters_;
  const double seconds = window_start_ ? static_cast<double>(window_end_ - window_start_) / 1e9 : 0;
  const double rate = seconds > 0 ? static_cast<double>(k.messages) / seconds : 0;
  std::printf("result mode=%s connections=%d size=%zu seconds=%.3f messages=%" PRIu64
              " msgs_per_s=%.1f mb_per_s=%.3f p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f"
              " errors=%" PRIu64 " opened=%" PRIu64 " connect_errors=%" PRIu64 " handshake_errors=%" PRIu64
              " payload_errors=%" PRIu64 " protocol_errors=%" PRIu64 " unexpected_closes=%" PRIu64
              " close_errors=%" PRIu64 " unfinished=%" PRIu64 " all_messages=%" PRIu64 " warmup_messages=%" PRIu64
              "\n",
              opt_.idle ? "idle" : "load", opt_.connections, opt_.size, seconds, k.messages, rate,
              rate * static_cast<double>(opt_.size) / 1e6, latency_.percentile(50) / 1e3,
              latency_.percentile(90) / 1e3, latency_.percentile(99) / 1e3, latency_.percentile(99.9) / 1e3,
              static_cast<double>(latency_.max()) / 1e3, k.errors(), k.opened, k.connect_errors, k.handshake_errors,
              k.payload_errors, k.protocol_errors, k.unexpected_closes, k.close_errors, k.unfinished,
              k.all_messages, warmup_messages_);
  std::fflush(stdout);
}

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "ws_load: %s\nusage: ws_load --port PORT [--address 127.0.0.1] [--path /] [--origin URL]\n"
               "  [--connections N] [--size BYTES] [--text] [--mode load|idle] [--duration S] [--warmup S]\n"
               "  [--hold S] [--concurrency K] [--sources K] [--connect-timeout S]\n",
               why);
  std::exit(2);
}

}  // namespace bench::load


int main(int argc, char** argv) {
  using namespace bench::load;
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--text") {
      o.text = true;
      continue;
    }
    if (i + 1 >= argc) usage("missing value");
    const char* v = argv[++i];
    if (a == "--port") o.port = std::atoi(v);
    else if (a == "--address") o.address = v;
    else if (a == "--path") o.path = v;
    else if (a == "--origin") o.origin = v;
    else if (a == "--connections") o.connections = std::atoi(v);
    else if (a == "--size") o.size = static_cast<std::size_t>(std::strtoull(v, nullptr, 10));
    else if (a == "--mode") {
      if (std::string_view(v) != "load" && std::string_view(v) != "idle") usage("--mode is load or idle");
      o.idle = std::string_view(v) == "idle";
    } else if (a == "--duration") o.duration = std::atof(v);
    else if (a == "--warmup") o.warmup = std::atof(v);
    else if (a == "--hold") o.hold = std::atof(v);
    else if (a == "--concurrency") o.concurrency = std::atoi(v);
    else if (a == "--sources") o.sources = std::atoi(v);
    else if (a == "--connect-timeout") o.connect_timeout = std::atof(v);
    else usage("unknown option");
  }
  if (o.port <= 0 || o.port > 65535) usage("--port must be in 1..65535");
  if (o.connections < 1 || o.connections > 100000) usage("--connections must be in 1..100000");
  if (o.size < 1 || o.size > (64u << 20)) usage("--size must be in 1..67108864");
  if (o.duration <= 0 || o.duration > 3600 || o.warmup < 0 || o.warmup > 600) usage("--duration in (0, 3600], --warmup in [0, 600]");
  if (o.hold <= 0 || o.hold > 3600) usage("--hold must be in (0, 3600]");
  if (o.concurrency < 1 || o.sources < 1 || o.sources > 254) usage("--concurrency >= 1, --sources in 1..254");
  if (o.connect_timeout <= 0 || o.connect_timeout > 600) usage("--connect-timeout in (0, 600]");
  if (o.path.empty() || o.path[0] != '/') usage("--path must start with /");
  if (!bench::is_loopback_v4(o.address)) usage("--address must be a loopback address (127.0.0.0/8)");
  Loader loader(std::move(o));
  return loader.run();
}
