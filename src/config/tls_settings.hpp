// The TLS parts of the config file: a listener's [listener.tls] table and an
// upstream's `tls` table, with the certificate, key and CA files they name.
//
// Private to src/config. Each function reads one table through the Reader
// and reports every problem there, including files that are missing, hold no
// PEM certificate or key, or hold a key that belongs to another certificate.
// An expired certificate is a warning, never an error. These functions keep
// nothing that OpenSSL parsed: the runtime loads the files again itself.
#pragma once

#include <optional>

#include "config/config.hpp"
#include "config/reader.hpp"

namespace sluice::config {

// `f` is a listener's "tls" key. nullopt when it is not a table (reported);
// otherwise the settings read, with the defaults where a value was refused.
std::optional<ListenerTls> read_listener_tls(Reader& in, const Field& f);

// `f` is an upstream's "tls" key; the values read are stored into `out`.
void read_upstream_tls(Reader& in, const Field& f, UpstreamTls& out);

}  // namespace sluice::config
