// Catch2's runner for the unit tests; the tests live in *_test.cpp beside it.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
