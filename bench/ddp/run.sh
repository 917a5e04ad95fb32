#!/usr/bin/env bash
# Distributed baby GPT: ringmaster workers (real processes on 127.0.0.1, one
# core each) against PyTorch DDP over gloo (../shared/bench/torch/ddp_babygpt.py,
# 2 ranks × 1 thread), same model, same global batch 12 × 64, alternating
# A/B in one run. Prints tokens/s, the ratio (median over rounds), the 1 → 2
# worker scaling efficiency, TP=2 vs DP=2 step time, the share of a step in
# communication and how much of the gradient all-reduce backward hides.
#
# usage: bench/ddp/run.sh [ROUNDS] [ITERS]     (env RINGMASTER_SHARED: the shared folder)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}
ITERS=${2:-200}
SHARED=${RINGMASTER_SHARED:-$(cd .. && pwd)/shared}
[ -f "$SHARED/bench/torch/ddp_babygpt.py" ] || { echo "no $SHARED/bench/torch/ddp_babygpt.py; set RINGMASTER_SHARED" >&2; exit 1; }
DATA=$SHARED/data/tinyshakespeare.txt
make -s build
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# ours LABEL WORKERS [ringctl local flags...]: prints "tokens/s step_ms tp_ms window_ms exposed_ms optimizer_bytes"
ours() {
  local label=$1 workers=$2; shift 2
  local dir=$TMP/$label
  bin/ringctl local -dir "$dir" -workers "$workers" -threads 1 -preset babygpt \
    -set data.path="$DATA" -set train.max_iters="$ITERS" -set train.eval_iters=1 \
    -set train.eval_interval=0 -set checkpoint.interval=0 "$@" >"$dir.out" 2>&1 || { cat "$dir.out" >&2; exit 1; }
  # DP rank 0 / TP rank 0's summary line
  grep -h 'msg=finished' "$dir"/logs/w*.log | grep 'dp=0 tp=0' | head -1 | python3 -c '
import re, sys
kv = dict(re.findall(r"(\w+)=(\S+)", sys.stdin.read()))
dp = int(sys.argv[1])
step = float(kv["median_step_ms"]); tokens = int(kv["tokens_per_step"]) * dp
print("%.0f %.2f %.2f %.2f %.2f %d" % (tokens / step * 1e3, step, float(kv["tp_comm_ms"]), float(kv["dp_comm_window_ms"]), float(kv["dp_comm_exposed_ms"]), int(kv["optimizer_bytes"])))
' "$(grep -c . <<<"$(seq 1 $(( workers / ${TPDEG:-1} )))")"
}

torch_ddp() {
  BENCH_RESULTS_DIR=$TMP /usr/bin/python3 "$SHARED/bench/torch/ddp_babygpt.py" --iters "$ITERS" --tag rm >"$TMP/torch.out" 2>&1 || { cat "$TMP/torch.out" >&2; exit 1; }
  python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["tokens_per_s_median"]))' "$TMP"/ddp_babygpt_rm_*.json
  rm -f "$TMP"/ddp_babygpt_rm_*.json
}

printf "%-6s %12s %12s %7s %12s %12s %12s %9s %10s %10s\n" round "ours DP2" "torch DDP2" ratio "ours 1 wkr" "ours TP2" "DP2 ZeRO-1" "scaling" "comm share" "hidden"
ratios=(); effs=()
for r in $(seq 1 "$ROUNDS"); do
  read -r dp2 dp2_step _ dp2_win dp2_exp dp2_mem < <(ours dp2 2)
  t=$(torch_ddp)
  read -r one _ _ _ _ _ < <(ours one 1)
  read -r tp2 tp2_step tp2_comm _ _ _ < <(TPDEG=2 ours tp2 2 -set parallel.tp=2)
  read -r z1 z1_step _ _ _ z1_mem < <(ours zero1 2 -set parallel.zero1=true)
  ratio=$(python3 -c "print(f'{$dp2/$t:.2f}')")
  eff=$(python3 -c "print(f'{$dp2/(2*$one):.2f}')")
  share=$(python3 -c "print(f'{100*$dp2_win/$dp2_step:.0f}%')")
  hidden=$(python3 -c "w=$dp2_win; e=$dp2_exp; print(f'{100*(w-e)/w:.0f}%' if w>0 else 'n/a')")
  ratios+=("$ratio"); effs+=("$eff")
  printf "%-6s %12s %12s %7s %12s %12s %12s %9s %10s %10s\n" "$r" "$dp2" "$t" "${ratio}x" "$one" "$tp2" "$z1" "$eff" "$share" "$hidden"
  echo "       DP2 step ${dp2_step} ms (all-reduce window ${dp2_win} ms, exposed ${dp2_exp} ms); TP2 step ${tp2_step} ms (TP all-reduces ${tp2_comm} ms)"
  echo "       optimizer state per worker: DP2 $((dp2_mem / 1024)) KiB, DP2 ZeRO-1 $((z1_mem / 1024)) KiB (step ${z1_step} ms)"
done
med() { printf "%s\n" "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "median ratio ours DP2 / torch DDP2: $(med "${ratios[@]}")x   median scaling efficiency 1→2 workers: $(med "${effs[@]}")"
