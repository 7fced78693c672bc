// Helpers shared by the config tests: finding the one error a bad file must
// produce, and checking it names its place and says what is wrong.
#pragma once

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "config/config.hpp"

namespace config_support {

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

}  // namespace config_support
