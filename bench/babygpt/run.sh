#!/usr/bin/env bash
# Baby-GPT training throughput, ringmaster against PyTorch, side by side in
# one invocation: ROUNDS rounds, each running `ringctl train -preset babygpt`
# and torch/babygpt.py (--profile tuned) for ITERS iterations on THREADS
# threads each, alternating which goes first. It prints tokens/s per run,
# the medians, the median of the per-round ratios (ours/torch) and our MFU.
# Each round also runs ringmaster with -lanes 1 (every matrix product split
# across the threads instead of one micro-batch lane per thread), for
# comparison. The machine's FMA peak is measured (bench/peak) before the
# first and after the last round; MFU is given against it and against 333.
#
#   bench/babygpt/run.sh                   # 3 rounds × 100 iterations, 2 threads
#   ROUNDS=5 ITERS=200 bench/babygpt/run.sh
#
# tokens/s on both sides = batch·block / median iteration time over
# iterations ≥ 10 (evaluation excluded). MFU = tokens/s · FLOPs per token /
# PEAK_GFLOPS (default 333: the AVX-512 FMA peak the issue assumes) and
# against the peak measured here,
# FLOPs per token as nanoGPT's estimate_mfu: 6·N + 12·L·H·Q·T with N the
# non-embedding parameters (wpe excluded), Q the head size, T the block.
#
# Environment: RINGMASTER_SHARED (default <repo>/../shared), PYTHON (default
# /usr/bin/python3), RINGCTL (a prebuilt ringctl; default: go build it),
# RINGMASTER_GEMM (auto|avx512|avx2|generic), KEEP=1 to
# keep the logs, ANCHOR_QUIET_WAIT (seconds babygpt.py waits for a quiet host;
# default here 0: the alternation is what makes the comparison fair).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
shared=${RINGMASTER_SHARED:-$root/../shared}
py=${PYTHON:-/usr/bin/python3}
rounds=${ROUNDS:-3}
iters=${ITERS:-100}
threads=${THREADS:-2}
peak=${PEAK_GFLOPS:-333}
torchgpt=$shared/bench/torch/babygpt.py
text=$shared/data/tinyshakespeare.txt
[ -f "$torchgpt" ] || { echo "run.sh: $torchgpt not found (set RINGMASTER_SHARED)" >&2; exit 1; }
[ -f "$text" ] || { echo "run.sh: $text not found (set RINGMASTER_SHARED)" >&2; exit 1; }

out=$(mktemp -d "${TMPDIR:-/tmp}/babygpt-bench.XXXXXX")
if [ "${KEEP:-0}" = 1 ]; then
	echo "results in $out"
else
	trap 'rm -rf "$out"' EXIT
fi

if [ -n "${RINGCTL:-}" ]; then
	cp "$RINGCTL" "$out/ringctl"
else
	(cd "$root" && go build -o "$out/ringctl" ./cmd/ringctl)
fi
(cd "$root" && go build -o "$out/peak" ./bench/peak)
measure_peak() { "$out/peak" -threads "$threads" -duration 2s | awk '{print $1}'; }

ours() { # round [lanes]
	local tag=ours lanes=()
	if [ -n "${2:-}" ]; then tag=ours_l$2; lanes=(-lanes "$2"); fi
	GOMAXPROCS=$threads "$out/ringctl" train -preset babygpt -threads "$threads" "${lanes[@]}" \
		-set train.max_iters="$iters" -set train.eval_interval=0 -set train.eval_iters=1 \
		-set data.path="$text" -out "$out/model_$1" >"$out/${tag}_$1.log" 2>&1 ||
		{ cat "$out/${tag}_$1.log" >&2; exit 1; }
	grep '^done:' "$out/${tag}_$1.log" | sed -E 's/.* ([0-9.]+) tokens\/s.*/\1/' >"$out/${tag}_$1.tps"
	echo "round $1: ringmaster${2:+ -lanes $2} $(cat "$out/${tag}_$1.tps") tokens/s ($(grep '^done:' "$out/${tag}_$1.log"))"
}

torch() { # round
	BENCH_RESULTS_DIR="$out/torch_$1" ANCHOR_QUIET_WAIT="${ANCHOR_QUIET_WAIT:-0}" \
		"$py" "$torchgpt" --max-iters "$iters" --eval-at "$iters" --threads "$threads" \
		--tag "r$1" >"$out/torch_$1.log" 2>&1 || { cat "$out/torch_$1.log" >&2; exit 1; }
	"$py" -c 'import json,sys,glob; print(json.load(open(glob.glob(sys.argv[1]+"/*.json")[0]))["tokens_per_s_median"])' \
		"$out/torch_$1" >"$out/torch_$1.tps"
	echo "round $1: pytorch    $(cat "$out/torch_$1.tps") tokens/s"
}

peak0=$(measure_peak)
echo "measured FMA peak before: $peak0 GFLOP/s ($threads threads)"
for r in $(seq 1 "$rounds"); do
	if [ $((r % 2)) = 1 ]; then
		ours "$r"
		torch "$r"
		ours "$r" 1
	else
		ours "$r" 1
		torch "$r"
		ours "$r"
	fi
done
peak1=$(measure_peak)
echo "measured FMA peak after:  $peak1 GFLOP/s"

"$py" - "$out" "$rounds" "$peak" "$peak0" "$peak1" <<'PY'
import statistics, sys
out, rounds, peak = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
measured = max(float(sys.argv[4]), float(sys.argv[5]))
read = lambda p: float(open(p).read().strip())
ours = [read(f"{out}/ours_{r}.tps") for r in range(1, rounds + 1)]
torch = [read(f"{out}/torch_{r}.tps") for r in range(1, rounds + 1)]
ours1 = [read(f"{out}/ours_l1_{r}.tps") for r in range(1, rounds + 1)]
ratios = [o / t for o, t in zip(ours, torch)]
ratios1 = [o / t for o, t in zip(ours1, torch)]
# baby GPT: n_layer 4, n_head 4, n_embd 128, block 64, vocab 65, bias off
L, H, C, T, V = 4, 4, 128, 64, 65
N = L * (12 * C * C + 2 * C) + V * C + C  # non-embedding params (wpe excluded; wte is lm_head)
flops = 6 * N + 12 * L * H * (C // H) * T
med = statistics.median(ours)
print(f"ringmaster tokens/s: {' '.join(f'{x:.0f}' for x in ours)}  median {med:.0f}")
print(f"ringmaster -lanes 1 tokens/s: {' '.join(f'{x:.0f}' for x in ours1)}  median {statistics.median(ours1):.0f}")
print(f"pytorch    tokens/s: {' '.join(f'{x:.0f}' for x in torch)}  median {statistics.median(torch):.0f}")
print(f"ratio ringmaster/pytorch per round: {' '.join(f'{x:.2f}' for x in ratios)}  median {statistics.median(ratios):.2f}x")
print(f"ratio ringmaster -lanes 1/pytorch per round: {' '.join(f'{x:.2f}' for x in ratios1)}  median {statistics.median(ratios1):.2f}x")
gf = med * flops / 1e9
print(f"ringmaster MFU: {gf:.1f} GFLOP/s = {100 * gf / measured:.1f}% of the measured peak {measured:.0f} GFLOP/s, "
      f"{100 * gf / peak:.1f}% of {peak:.0f} ({flops / 1e6:.2f} MFLOP/token, N = {N})")
tgf = statistics.median(torch) * flops / 1e9
print(f"pytorch MFU:    {tgf:.1f} GFLOP/s = {100 * tgf / measured:.1f}% of the measured peak, {100 * tgf / peak:.1f}% of {peak:.0f}")
PY
