#!/usr/bin/env bash
# The nightly-style long run of kamo's property tests: every parser of operator input (INI and
# YAML inventories, host patterns, the playbook YAML reader and loader, the template renderer,
# known_hosts) fed 100,000 generated cases per property, in a release build. CI runs the same
# tests with proptest's default of 256 cases (`cargo test`). A failing case is shrunk and saved
# under proptest-regressions/ next to the test, so the next run tries it first: commit it.
#
# Usage: scripts/fuzz-long.sh [CASES]   (default 100000; THREADS=n to change the parallelism)
set -euo pipefail
cd "$(dirname "$0")/.."
cases="${1:-100000}"
start=$(date +%s)
PROPTEST_CASES="$cases" cargo test --release --lib props:: -- --test-threads "${THREADS:-2}"
echo "fuzz-long: $cases cases per property, $(( $(date +%s) - start )) s"
