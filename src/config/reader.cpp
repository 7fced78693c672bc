// Typed reads from a parsed TOML tree that collect errors instead of stopping.
//
// Every failed read records exactly one ConfigError at the value's position
// (or, for a missing key, at the table that lacks it) and returns nullopt, so
// the caller keeps its default and carries on. Never throws for bad input.
#include "config/reader.hpp"

#include <algorithm>
#include <limits>

namespace sluice::config {
namespace {

constexpr Millis kMaxDuration = std::chrono::hours(24);
constexpr std::int64_t kInt64Max = std::numeric_limits<std::int64_t>::max();

// True when `text` failed to parse only because its number is too large: the
// same unit after a small number parses. Lets the message for
// "99999999999999999999h" say "too large" rather than "malformed".
template <typename Parse>
bool too_large(std::string_view text, Parse parse) {
  const auto digits = std::min(text.find_first_not_of("0123456789"), text.size());
  return digits > 0 && parse("1" + std::string(text.substr(digits))).has_value();
}

}  // namespace

std::string join(std::string_view prefix, std::string_view key) {
  if (prefix.empty()) return std::string(key);
  std::string out(prefix);
  out += '.';
  out += key;
  return out;
}

std::string indexed(std::string_view name, std::size_t i) {
  return std::string(name) + "[" + std::to_string(i) + "]";
}

std::string quoted(std::string_view text) { return "\"" + std::string(text) + "\""; }

void Reader::error(const toml::source_region& at, std::string key, std::string message) {
  errors_.push_back(ConfigError{file_, static_cast<std::uint32_t>(at.begin.line),
                                static_cast<std::uint32_t>(at.begin.column), std::move(key),
                                std::move(message)});
}

void Reader::warning(const Field& f, std::string message) {
  const auto& at = f.node->source().begin;
  warnings_.push_back(ConfigError{file_, static_cast<std::uint32_t>(at.line),
                                  static_cast<std::uint32_t>(at.column), f.path,
                                  std::move(message)});
}

namespace {

std::vector<ConfigError> in_file_order(std::vector<ConfigError> list) {
  std::stable_sort(list.begin(), list.end(), [](const ConfigError& a, const ConfigError& b) {
    return std::pair{a.line, a.column} < std::pair{b.line, b.column};
  });
  return list;
}

}  // namespace

std::vector<ConfigError> Reader::take_errors() { return in_file_order(std::move(errors_)); }

std::vector<ConfigError> Reader::take_warnings() { return in_file_order(std::move(warnings_)); }

void Reader::check_keys(const toml::table& table, std::string_view prefix, Keys known) {
  for (const auto& entry : table) {
    const toml::key& key = entry.first;
    if (std::find(known.begin(), known.end(), key.str()) == known.end())
      error(key.source(), join(prefix, key.str()), "unknown key");
  }
}

std::optional<Field> Reader::field(const toml::table& table, std::string_view prefix,
                                   std::string_view key) {
  const toml::node* node = table.get(key);
  if (node == nullptr) return std::nullopt;
  return Field{node, join(prefix, key)};
}

std::optional<Field> Reader::required(const toml::table& table, std::string_view prefix,
                                      std::string_view key) {
  auto f = field(table, prefix, key);
  if (!f) error(table.source(), join(prefix, key), "missing required key");
  return f;
}

const toml::table* Reader::section(const toml::table& root, std::string_view name, Keys known) {
  const toml::node* node = root.get(name);
  if (node == nullptr) return nullptr;
  const toml::table* table = node->as_table();
  if (table == nullptr) {
    error(node->source(), std::string(name), "expected a table ([" + std::string(name) + "])");
    return nullptr;
  }
  check_keys(*table, name, known);
  return table;
}

std::vector<const toml::table*> Reader::table_array(const toml::table& root,
                                                    std::string_view name) {
  std::vector<const toml::table*> out;
  const std::string what = "at least one [[" + std::string(name) + "]] is required";
  const toml::node* node = root.get(name);
  if (node == nullptr) {
    // An empty document's root has no position; its first line is the place to look.
    toml::source_region at = root.source();
    if (at.begin.line == 0) at.begin = {1, 1};
    error(at, std::string(name), what);
    return out;
  }
  const toml::array* array = node->as_array();
  if (array == nullptr || (!array->empty() && !array->is_array_of_tables())) {
    error(node->source(), std::string(name),
          "expected an array of tables ([[" + std::string(name) + "]])");
    return out;
  }
  if (array->empty()) error(node->source(), std::string(name), what);
  for (std::size_t i = 0; i < array->size(); ++i) out.push_back(array->get(i)->as_table());
  return out;
}

std::optional<std::string> Reader::as_string(const Field& f) {
  if (const auto* s = f.node->as_string()) return s->get();
  error(f, "expected a string");
  return std::nullopt;
}

std::optional<bool> Reader::as_bool(const Field& f) {
  if (const auto* b = f.node->as_boolean()) return b->get();
  error(f, "expected a boolean");
  return std::nullopt;
}

std::optional<std::int64_t> Reader::as_integer(const Field& f, std::int64_t min, std::int64_t max) {
  const auto* i = f.node->as_integer();
  if (i == nullptr) {
    error(f, "expected an integer");
    return std::nullopt;
  }
  const std::int64_t v = i->get();
  if (v < min || v > max) {
    error(f, max == kInt64Max ? "must be at least " + std::to_string(min)
                              : "must be in " + std::to_string(min) + ".." + std::to_string(max));
    return std::nullopt;
  }
  return v;
}

std::optional<Millis> Reader::as_duration(const Field& f, bool allow_zero) {
  const auto* s = f.node->as_string();
  if (s == nullptr) {
    error(f, "expected a string such as \"10s\" (units ms, s, m, h)");
    return std::nullopt;
  }
  const auto d = parse_duration(s->get());
  if (!d && !too_large(s->get(), parse_duration)) {
    error(f, "invalid duration " + quoted(s->get()) +
                 ": expected a whole number and a unit (ms, s, m or h)");
    return std::nullopt;
  }
  if (!d || d->count() < (allow_zero ? 0 : 1) || *d > kMaxDuration) {
    error(f, allow_zero ? "must be at most 24h" : "must be greater than 0 and at most 24h");
    return std::nullopt;
  }
  return d;
}

std::optional<std::uint64_t> Reader::as_size(const Field& f, std::uint64_t min, std::uint64_t max,
                                             const std::string& range) {
  std::uint64_t bytes = 0;
  if (const auto* i = f.node->as_integer()) {
    if (i->get() < 0) {
      error(f, "must not be negative");
      return std::nullopt;
    }
    bytes = static_cast<std::uint64_t>(i->get());
  } else if (const auto* s = f.node->as_string()) {
    const auto parsed = parse_size(s->get());
    if (!parsed) {
      error(f, too_large(s->get(), parse_size)
                   ? "size " + quoted(s->get()) + " does not fit in 64 bits"
                   : "invalid size " + quoted(s->get()) +
                         ": expected digits and an optional unit (B, KiB, MiB, GiB, KB, MB, GB)");
      return std::nullopt;
    }
    bytes = *parsed;
  } else {
    error(f, "expected an integer or a string such as \"16KiB\"");
    return std::nullopt;
  }
  if (bytes < min || bytes > max) {
    error(f, "must be in " + range);
    return std::nullopt;
  }
  return bytes;
}

std::optional<std::size_t> Reader::as_choice(const Field& f, Keys choices) {
  const auto s = as_string(f);
  if (!s) return std::nullopt;
  const auto it = std::find(choices.begin(), choices.end(), *s);
  if (it != choices.end()) return static_cast<std::size_t>(it - choices.begin());
  std::string list;
  for (std::string_view c : choices) list += (list.empty() ? "" : ", ") + std::string(c);
  error(f, "must be one of " + list);
  return std::nullopt;
}

}  // namespace sluice::config
