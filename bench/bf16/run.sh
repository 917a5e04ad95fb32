#!/usr/bin/env bash
# Mixed-precision training throughput side by side in one invocation:
# ringmaster with train.precision fp32 and bf16, and torch/babygpt.py
# --amp bf16 (torch.autocast on the CPU, oneDNN), same model, THREADS
# threads each, ROUNDS rounds with the order rotated every round. Prints
# tokens/s per run and the median per-round ratios.
#
#   bench/bf16/run.sh                       # baby GPT (4×4×128, T 64, B 12)
#   SHAPE=shakespeare bench/bf16/run.sh     # nanoGPT shakespeare_char (6×6×384, T 256, B 8)
#   SHAPE=gpt2width bench/bf16/run.sh       # 4 layers, 12×768, T 128, B 4
#   ROUNDS=3 ITERS=40 ...
#
# tokens/s on both sides = batch·block / median iteration time (ringctl's
# done: line; babygpt.py's tokens_per_s_median).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
shared=${RINGMASTER_SHARED:-$root/../shared}
py=${PYTHON:-/usr/bin/python3}
rounds=${ROUNDS:-2}
iters=${ITERS:-30}
threads=${THREADS:-2}
torchgpt=$shared/bench/torch/babygpt.py
text=$shared/data/tinyshakespeare.txt
[ -f "$torchgpt" ] || { echo "run.sh: $torchgpt not found (set RINGMASTER_SHARED)" >&2; exit 1; }
[ -f "$text" ] || { echo "run.sh: $text not found (set RINGMASTER_SHARED)" >&2; exit 1; }
case ${SHAPE:-babygpt} in
babygpt) L=4 H=4 E=128 T=64 B=12 ;;
shakespeare) L=6 H=6 E=384 T=256 B=8 ;;
gpt2width) L=4 H=12 E=768 T=128 B=4 ;;
*) echo "run.sh: SHAPE babygpt|shakespeare|gpt2width" >&2; exit 2 ;;
esac

out=$(mktemp -d "${TMPDIR:-/tmp}/bf16-bench.XXXXXX")
trap 'rm -rf "$out"' EXIT
(cd "$root" && go build -o "$out/ringctl" ./cmd/ringctl)

ours() { # round precision
	GOMAXPROCS=$threads "$out/ringctl" train -preset babygpt -threads "$threads" \
		-set model.n_layer=$L -set model.n_head=$H -set model.n_embd=$E -set model.block_size=$T \
		-set train.batch_size=$B -set train.precision="$2" \
		-set train.max_iters="$iters" -set train.eval_interval=0 -set train.eval_iters=1 \
		-set data.path="$text" -out "$out/model_$1_$2" >"$out/$2_$1.log" 2>&1 ||
		{ cat "$out/$2_$1.log" >&2; exit 1; }
	grep '^done:' "$out/$2_$1.log" | sed -E 's/.* ([0-9.]+) tokens\/s.*/\1/' >"$out/$2_$1.tps"
	echo "round $1: ringmaster $2 $(cat "$out/$2_$1.tps") tokens/s"
}

torch() { # round
	BENCH_RESULTS_DIR="$out/torch_$1" ANCHOR_QUIET_WAIT=0 \
		"$py" "$torchgpt" --max-iters "$iters" --eval-at "$iters" --threads "$threads" --amp bf16 \
		--n-layer $L --n-head $H --n-embd $E --block-size $T --batch-size $B \
		--tag "r$1" >"$out/torch_$1.log" 2>&1 || { cat "$out/torch_$1.log" >&2; exit 1; }
	"$py" -c 'import json,sys,glob; print(json.load(open(glob.glob(sys.argv[1]+"/*.json")[0]))["tokens_per_s_median"])' \
		"$out/torch_$1" >"$out/torch_$1.tps"
	echo "round $1: pytorch --amp bf16 $(cat "$out/torch_$1.tps") tokens/s"
}

echo "shape ${SHAPE:-babygpt}: ${L} layers, ${H} heads, ${E} wide, block $T, batch $B; $iters iterations, $threads threads"
for r in $(seq 1 "$rounds"); do
	case $((r % 3)) in
	1) ours "$r" bf16; torch "$r"; ours "$r" fp32 ;;
	2) torch "$r"; ours "$r" fp32; ours "$r" bf16 ;;
	0) ours "$r" fp32; ours "$r" bf16; torch "$r" ;;
	esac
done
"$py" - "$out" "$rounds" <<'PY'
import sys, statistics as st
out, n = sys.argv[1], int(sys.argv[2])
rd = lambda f: float(open(f"{out}/{f}").read())
bt = [rd(f"bf16_{r}.tps") / rd(f"torch_{r}.tps") for r in range(1, n + 1)]
bf = [rd(f"bf16_{r}.tps") / rd(f"fp32_{r}.tps") for r in range(1, n + 1)]
print("ringmaster bf16 / pytorch --amp bf16: median %.2f× (rounds %s)" % (st.median(bt), " ".join("%.2f" % x for x in bt)))
print("ringmaster bf16 / ringmaster fp32:    median %.2f× (rounds %s)" % (st.median(bf), " ".join("%.2f" % x for x in bf)))
PY
