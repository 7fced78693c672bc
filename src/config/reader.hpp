// Typed reads from a parsed TOML tree that collect errors instead of stopping.
//
// Private to src/config: the loader asks for "an integer in 1..1000 at
// upstream[2].max_fails" and gets either the value or nullopt, in which case
// a ConfigError with the file, line, column and key path has been recorded.
// It knows the value grammars (durations, sizes) but nothing of Sluice's
// sections; it never throws for a bad value and never records a problem
// without a key path.
#pragma once

#include <toml++/toml.h>

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.hpp"

namespace sluice::config {

using Keys = std::initializer_list<std::string_view>;

// A key that is present in its table: the node and the path to name it by.
struct Field {
  const toml::node* node;
  std::string path;
};

std::string join(std::string_view prefix, std::string_view key);  // "limits" + "uri_bytes"
std::string indexed(std::string_view name, std::size_t i);        // "route" + 2 -> "route[2]"
std::string quoted(std::string_view text);

class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}

  void error(const toml::source_region& at, std::string key, std::string message);
  void error(const Field& f, std::string message) {
    error(f.node->source(), f.path, std::move(message));
  }
  // A problem that does not stop the load (an expired certificate): kept
  // apart from the errors, so ok() still holds.
  void warning(const Field& f, std::string message);
  bool ok() const { return errors_.empty(); }
  // The errors in file order (the walk follows sections, the reader wants lines).
  std::vector<ConfigError> take_errors();
  std::vector<ConfigError> take_warnings();

  // Reports every key of `table` that is not in `known`.
  void check_keys(const toml::table& table, std::string_view prefix, Keys known);
  std::optional<Field> field(const toml::table& table, std::string_view prefix,
                             std::string_view key);
  // As field(), but absence is reported, at the table that should hold the key.
  std::optional<Field> required(const toml::table& table, std::string_view prefix,
                                std::string_view key);
  // An optional [name] section of root, checked for unknown keys.
  const toml::table* section(const toml::table& root, std::string_view name, Keys known);
  // A required [[name]] array with at least one entry, all of them tables.
  std::vector<const toml::table*> table_array(const toml::table& root, std::string_view name);

  std::optional<std::string> as_string(const Field& f);
  std::optional<bool> as_bool(const Field& f);
  std::optional<std::int64_t> as_integer(const Field& f, std::int64_t min, std::int64_t max);
  // A duration string, greater than 0 (or 0 too, with `allow_zero`) and at most 24h.
  std::optional<Millis> as_duration(const Field& f, bool allow_zero = false);
  // An integer or a size string within min..max; `range` shows the bounds in messages.
  std::optional<std::uint64_t> as_size(const Field& f, std::uint64_t min, std::uint64_t max,
                                       const std::string& range);
  // A string that is one of `choices`, as its index there.
  std::optional<std::size_t> as_choice(const Field& f, Keys choices);

 private:
  std::string file_;
  std::vector<ConfigError> errors_;
  std::vector<ConfigError> warnings_;
};

// An array of strings, each checked by `check` (which reports and returns
// false when it refuses one). `out` is replaced only when every entry passed,
// so a half-read list never stands in for the one the operator wrote.
template <typename Check>
void read_string_list(Reader& in, const Field& f, const char* example,
                      std::vector<std::string>& out, Check check) {
  const toml::array* items = f.node->as_array();
  if (items == nullptr) {
    in.error(f, std::string("expected an array of strings such as [") + example + "]");
    return;
  }
  std::vector<std::string> read;
  bool all_good = true;
  for (std::size_t i = 0; i < items->size(); ++i) {
    const Field entry{items->get(i), indexed(f.path, i)};
    auto s = in.as_string(entry);
    if (s && check(entry, *s))
      read.push_back(std::move(*s));
    else
      all_good = false;
  }
  if (all_good) out = std::move(read);
}

}  // namespace sluice::config
