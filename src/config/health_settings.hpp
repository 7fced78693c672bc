// An upstream's active health check: the [upstream.health_check] table (or
// the inline `health_check = { ... }`) of the config file.
//
// Private to src/config. Reads one table through the Reader and reports every
// problem there with its key path; a refused value leaves its default in
// place. It checks values only: the probes themselves run in proxy/health.
#pragma once

#include "config/config.hpp"
#include "config/reader.hpp"

namespace sluice::config {

// `f` is an upstream's "health_check" key; the values read go into `out`,
// which is marked enabled.
void read_health_check(Reader& in, const Field& f, HealthCheck& out);

}  // namespace sluice::config
