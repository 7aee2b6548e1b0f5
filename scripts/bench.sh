#!/usr/bin/env bash
# Runs berth's benchmarks and prints their Markdown; paste (or append) the
# output into bench/RESULTS.md with the date and machine it names.
set -euo pipefail
cd "$(dirname "$0")/.."
go run ./bench/core "$@"
go run ./bench/registry
go run ./bench/autoupdate
