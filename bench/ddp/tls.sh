#!/usr/bin/env bash
# Baby GPT DP2 with and without mutual TLS: `ringctl local` (TLS by default)
# against `ringctl local --insecure`, same job, alternating A/B in one run.
# Prints tokens/s of each, the per-round ratio and its median.
# Two workers on one host talk over the Unix-socket bulk path, which TLS
# guards with a token and SO_PEERCRED instead of encryption, so this is the
# cost TLS adds to a local cluster (handshakes, the TLS coordinator API).
#
# usage: bench/ddp/tls.sh [ROUNDS] [ITERS]     (env RINGMASTER_SHARED: the shared folder)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}
ITERS=${2:-200}
SHARED=${RINGMASTER_SHARED:-$(cd .. && pwd)/shared}
DATA=$SHARED/data/tinyshakespeare.txt
[ -f "$DATA" ] || { echo "no $DATA; set RINGMASTER_SHARED" >&2; exit 1; }
make -s build
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# run LABEL [flags...]: prints DP rank 0's tokens/s
run() {
  local label=$1; shift
  local dir=$TMP/$label
  bin/ringctl local -dir "$dir" -workers 2 -threads 1 -preset babygpt \
    -set data.path="$DATA" -set train.max_iters="$ITERS" -set train.eval_iters=1 \
    -set train.eval_interval=0 -set checkpoint.interval=0 "$@" >"$dir.out" 2>&1 || { cat "$dir.out" >&2; exit 1; }
  grep -h 'msg=finished' "$dir"/logs/w*.log | grep 'dp=0 tp=0' | head -1 | python3 -c '
import re, sys
kv = dict(re.findall(r"(\w+)=(\S+)", sys.stdin.read()))
print("%.0f" % (int(kv["tokens_per_step"]) * 2 / float(kv["median_step_ms"]) * 1e3))'
  rm -rf "$dir"
}

printf "%-6s %12s %12s %7s\n" round "TLS" "plaintext" ratio
ratios=()
for r in $(seq 1 "$ROUNDS"); do
  if (( r % 2 )); then a=$(run tls); b=$(run plain --insecure); else b=$(run plain --insecure); a=$(run tls); fi
  ratio=$(python3 -c "print(f'{$a/$b:.3f}')")
  ratios+=("$ratio")
  printf "%-6s %12s %12s %7s\n" "$r" "$a" "$b" "$ratio"
done
med() { printf "%s\n" "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "median tokens/s ratio TLS / plaintext: $(med "${ratios[@]}")"
