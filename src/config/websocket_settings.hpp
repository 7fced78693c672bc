// A route's WebSocket settings: the [route.websocket] table (or the inline
// `websocket = { ... }`) of the config file.
//
// Private to src/config. Reads one table through the Reader and reports every
// problem there with its key path; a refused value leaves its default in
// place. It checks the values only: it never looks at a request, and keeps
// the origins as written (the relay parses them again with the same
// ws::parse_origin_pattern that vetted them here).
#pragma once

#include "config/config.hpp"
#include "config/reader.hpp"

namespace sluice::config {

// `f` is a route's "websocket" key; the values read are stored into `out`.
void read_route_websocket(Reader& in, const Field& f, RouteWebSocket& out);

}  // namespace sluice::config
