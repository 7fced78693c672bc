// Helpers shared by the config tests: finding the one error a bad file must
// produce, and checking it names its place and says what is wrong.
#pragma once

#include <catch2/catch.hpp>

#include <filesystem>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "config/config.hpp"

namespace config_support {

// The config a text must load to; fails the test with every error otherwise.
inline std::shared_ptr<const sluice::config::Config> config_of(sluice::config::LoadResult result) {
  if (auto* errors = std::get_if<std::vector<sluice::config::ConfigError>>(&result)) {
    for (const auto& e : *errors) UNSCOPED_INFO(e.to_string());
    FAIL("expected the config to load");
  }
  return std::get<std::shared_ptr<const sluice::config::Config>>(result);
}

// The errors a text must produce; fails the test if it loads.
inline std::vector<sluice::config::ConfigError> errors_of(sluice::config::LoadResult result) {
  REQUIRE(std::holds_alternative<std::vector<sluice::config::ConfigError>>(result));
  return std::get<std::vector<sluice::config::ConfigError>>(result);
}

// The one error with this key; fails the test if there is not exactly one.
inline sluice::config::ConfigError error_for(const std::vector<sluice::config::ConfigError>& errors,
                                             const std::string& key) {
  std::vector<sluice::config::ConfigError> found;
  for (const auto& e : errors) {
    UNSCOPED_INFO(e.to_string());
    if (e.key == key) found.push_back(e);
  }
  REQUIRE(found.size() == 1);
  return found.front();
}

// Exactly one error in all, under `key`, with `fragment` in its message and a
// place in the file; returned for further checks.
inline sluice::config::ConfigError single_error(const std::vector<sluice::config::ConfigError>& errors,
                                                const std::string& key, const std::string& fragment) {
  CHECK(errors.size() == 1);
  const auto e = error_for(errors, key);
  CHECK_THAT(e.message, Catch::Contains(fragment));
  CHECK(e.line > 0);
  CHECK(e.column > 0);
  return e;
}

// The working directory changed for the scope: the shipped configs name
// their TLS files relative to the repository's root.
class InDirectory {
 public:
  explicit InDirectory(const std::filesystem::path& dir) : saved_(std::filesystem::current_path()) {
    std::filesystem::current_path(dir);
  }
  ~InDirectory() {
    std::error_code ec;
    std::filesystem::current_path(saved_, ec);
  }
  InDirectory(const InDirectory&) = delete;
  InDirectory& operator=(const InDirectory&) = delete;

 private:
  std::filesystem::path saved_;
};

}  // namespace config_support
