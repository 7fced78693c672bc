// ws_load's two classes: Client, one WebSocket connection in a closed loop
// (connect, handshake, send one masked message, check its echo byte for
// byte, repeat), and Loader, the one libuv loop that opens the connections,
// runs the stages and counts. See ws_load.cpp for what the tool does.
// A Client never holds more than one message in flight and never frees its
// own memory: the Loader owns every Client and outlives the loop.
#pragma once

#include <openssl/rand.h>
#include <uv.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ws_bench.hpp"

namespace bench::load {

inline constexpr std::size_t kPatternSlack = 4093;  // payload windows start anywhere in here
inline constexpr std::size_t kMaxResponseHead = 16 * 1024;
inline constexpr std::size_t kReadBlock = 256 * 1024;
inline constexpr double kDrainSeconds = 10;
inline constexpr double kCheckSeconds = 30;

struct Options {
  std::string address = "127.0.0.1";
  int port = 0;
  std::string path = "/";
  std::string origin;
  int connections = 64;
  std::size_t size = 64;
  bool text = false;
  bool idle = false;
  double duration = 10;
  double warmup = 0;
  double hold = 120;
  int concurrency = 256;
  int sources = 1;
  double connect_timeout = 30;
};

// Log-linear latency histogram: 64 sub-buckets per power of two (1.6%).
class Histogram {
 public:
  void add(std::uint64_t v) {
    ++counts_[index(v)];
    ++total_;
    max_ = std::max(max_, v);
  }
  void clear() { *this = Histogram{}; }
  std::uint64_t total() const { return total_; }
  std::uint64_t max() const { return max_; }
  // The p-th percentile (0..100), as the middle of its bucket.
  double percentile(double p) const {
    if (total_ == 0) return 0;
    const auto want = static_cast<std::uint64_t>(std::ceil(p / 100.0 * static_cast<double>(total_)));
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen >= std::max<std::uint64_t>(want, 1))
        return std::min(static_cast<double>(max_), (lower(i) + lower(i + 1)) / 2.0);
    }
    return static_cast<double>(max_);
  }

 private:
  static constexpr int kSubBits = 6;
  static constexpr std::size_t kSub = std::size_t{1} << kSubBits;
  static constexpr std::size_t kBuckets = 50 * kSub;
  static std::size_t index(std::uint64_t v) {
    if (v < kSub) return static_cast<std::size_t>(v);
    const int shift = 63 - __builtin_clzll(v) - kSubBits;
    const std::size_t i = (static_cast<std::size_t>(shift) + 1) * kSub + static_cast<std::size_t>((v >> shift) - kSub);
    return std::min(i, kBuckets - 1);
  }
  static double lower(std::size_t i) {
    const std::size_t group = i / kSub, sub = i % kSub;
    if (group == 0) return static_cast<double>(sub);
    return std::ldexp(static_cast<double>(kSub + sub), static_cast<int>(group) - 1);
  }
  std::array<std::uint64_t, kBuckets> counts_{};
  std::uint64_t total_ = 0;
  std::uint64_t max_ = 0;
};

// xorshift64*: mask keys and payloads need to vary, not to be secret.
class Rng {
 public:
  Rng() {
    if (RAND_bytes(reinterpret_cast<unsigned char*>(&s_), sizeof s_) != 1 || s_ == 0) s_ = 0x9E3779B97F4A7C15ull;
  }
  std::uint64_t next() {
    s_ ^= s_ >> 12;
    s_ ^= s_ << 25;
    s_ ^= s_ >> 27;
    return s_ * 2685821657736338717ull;
  }

 private:
  std::uint64_t s_ = 0;
};

struct Counters {
  std::uint64_t opened = 0;
  std::uint64_t connect_errors = 0;
  std::uint64_t handshake_errors = 0;
  std::uint64_t payload_errors = 0;     // wrong length, opcode or content
  std::uint64_t protocol_errors = 0;    // bad framing from the server
  std::uint64_t unexpected_closes = 0;  // close frame or EOF not asked for
  std::uint64_t close_errors = 0;       // close reply missing or not 1000
  std::uint64_t unfinished = 0;         // echo still missing when time ran out
  std::uint64_t messages = 0;           // in the measured window
  std::uint64_t all_messages = 0;       // every good echo, warm-up and drain too
  std::uint64_t check_ok = 0;
  std::uint64_t errors() const {
    return connect_errors + handshake_errors + payload_errors + protocol_errors + unexpected_closes + close_errors +
           unfinished;
  }
};

class Loader;

struct WriteReq {
  uv_write_t req{};
  std::vector<std::uint8_t> bytes;
};

class Client {
 public:
  Client(Loader* loader, std::uint32_t id) : loader_(loader), id_(id) { tcp_.data = this; }
  void connect();
  void send_message();
  void start_close();
  void abort();
  bool open() const { return phase_ == Phase::Open; }
  bool awaiting() const { return awaiting_; }
  bool handle_live() const { return started_ && !closed_; }

 private:
  enum class Phase : std::uint8_t {
    Connecting,  // TCP connect under way
    Handshake,   // request sent; response_ collects the head
    Open,        // frames flow; at most one message in flight
    Closing,     // our close frame sent; waiting for the server's
    Done,        // uv_close called
  };

  static void on_connect(uv_connect_t* req, int status) noexcept;
  static void on_alloc(uv_handle_t* h, std::size_t suggested, uv_buf_t* buf) noexcept;
  static void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) noexcept;
  static void on_message_written(uv_write_t* req, int status) noexcept;
  static void on_control_written(uv_write_t* req, int status) noexcept;
  static void on_closed(uv_handle_t* h) noexcept;

  void handle_response(const std::uint8_t* p, std::size_t n);
  void handle_frames(const std::uint8_t* p, std::size_t n);
  bool begin_frame();
  void end_frame();
  void message_done();
  void send_control(std::uint8_t opcode, const std::uint8_t* payload, std::size_t n);
  void fail(std::uint64_t Counters::*kind, const char* what);

  Loader* loader_;
  std::uint32_t id_;
  uv_tcp_t tcp_{};
  uv_connect_t connect_req_{};
  uv_write_t message_req_{};
  Phase phase_ = Phase::Connecting;
  bool started_ = false;
  bool closed_ = false;
  bool write_pending_ = false;     // message_req_ still owns send_buf_
  bool send_after_write_ = false;  // the next message waits for that write
  std::string key_;
  std::string response_;
  std::vector<std::uint8_t> send_buf_;
  bench::HeadReader head_reader_;
  bool in_payload_ = false;
  FrameHead frame_{};
  std::uint64_t payload_done_ = 0;
  bool in_message_ = false;
  bool awaiting_ = false;  // a message is out and its echo not complete
  bool msg_bad_ = false;
  std::uint64_t msg_len_ = 0;
  std::uint64_t seq_ = 0;
  std::uint64_t sent_at_ = 0;
  std::uint8_t control_[125] = {};
};

class Loader {
 public:
  explicit Loader(Options opt);
  int run();

  enum class Stage : std::uint8_t {
    Connecting,  // opening connections, at most `concurrency` attempts in flight
    Warmup,      // load: every client in its closed loop; nothing counted
    Measure,     // load: completions counted, latencies recorded
    Drain,       // load: no new message; each client closes after its last echo
    Idle,        // idle: every connection open and silent, waiting for a command
    Checking,    // idle: one message on every connection
    Closing,     // close handshakes under way, or aborting
  };

  const Options& options() const { return opt_; }
  Stage stage() const { return stage_; }
  uv_loop_t* loop() { return &loop_; }
  std::uint8_t* read_block() { return read_block_.get(); }
  Rng& rng() { return rng_; }
  Counters& counters() { return counters_; }
  const std::uint8_t* expected(std::uint32_t id, std::uint64_t seq) const {
    return pattern_.data() + (id * 2654435761ull + seq * 97) % kPatternSlack;
  }
  std::uint8_t opcode() const { return opt_.text ? bench::kText : bench::kBinary; }
  void report(const char* what);

  void on_opened();
  void on_failed();
  void on_echo(bool ok, std::uint64_t rtt_ns);
  void on_lost();
  void on_handle_closed();

 private:
  static void on_timer(uv_timer_t* t) noexcept;
  static void on_signal(uv_signal_t* h, int signum) noexcept;
  static void on_stdin_alloc(uv_handle_t* h, std::size_t suggested, uv_buf_t* buf) noexcept;
  static void on_stdin_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) noexcept;

  void connect_more();
  void all_attempted();
  void enter(Stage s, double seconds);
  void timer_fired();
  void command(std::string_view line);
  void check_done();
  void begin_closing(bool abort_all);
  void maybe_finish();
  void print_result();

  Options opt_;
  uv_loop_t loop_{};
  uv_timer_t timer_{};
  uv_signal_t sigint_{}, sigterm_{};
  uv_pipe_t stdin_{};
  bool stdin_open_ = false;
  bool finished_ = false;
  bool fatal_ = false;
  bool close_after_check_ = false;
  Stage stage_ = Stage::Connecting;
  std::vector<std::unique_ptr<Client>> clients_;
  int next_ = 0;
  int attempts_in_flight_ = 0;
  int live_handles_ = 0;
  int pending_checks_ = 0;
  std::uint64_t window_start_ = 0, window_end_ = 0, warmup_messages_ = 0;
  std::vector<std::uint8_t> pattern_;
  std::string stdin_line_;
  char stdin_buf_[256] = {};
  std::unique_ptr<std::uint8_t[]> read_block_{new std::uint8_t[kReadBlock]};
  int reports_ = 0;
  Histogram latency_;
  Counters counters_;
  Rng rng_;

  friend class Client;
};

}  // namespace bench::load
