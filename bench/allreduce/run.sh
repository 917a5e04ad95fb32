#!/usr/bin/env bash
# Runs ringmaster's all-reduce and the PyTorch/Gloo reference alternately on
# 127.0.0.1 (world sizes 2 and 4, 4 KiB … 64 MiB) and prints one table.
#   bench/allreduce/run.sh [-rounds 3] [-world-sizes 2,4] [-mode bulk|grpc] [-no-gloo] [-json out.json]
# The shared folder is $RINGMASTER_SHARED, else <repo>/../shared.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export RINGMASTER_SHARED="${RINGMASTER_SHARED:-$root/../shared}"
bin="$(mktemp -d)/allreduce-bench"
trap 'rm -rf "$(dirname "$bin")"' EXIT
(cd "$root" && go build -o "$bin" ./bench/allreduce)
cd "$root"
"$bin" "$@"
