// Package testsrv starts real database servers for tests: PostgreSQL
// (postgres.go) and Redis (redis.go). Each server is found on the machine, or
// installed from Debian's packages when missing (the tests run as root in
// CI and on developer machines), started on a free loopback port with its
// files in a temporary directory, and stopped when the test (or, for a
// shared server, the test binary) ends. Chromium (chromium.go), for the
// console's browser test, is found or installed the same way.
//
// STELLWERK_STORE_TESTS=skip skips the tests that need a server; any other
// value, or none, runs them and fails if the server cannot be had. CI never
// sets it: the conformance suites always run against the real servers.
package testsrv
