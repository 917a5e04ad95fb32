#!/usr/bin/env bash
# Compare ringmaster's SGEMM with PyTorch/OpenBLAS on this machine, side by
# side: PASSES times, run bench/gemm (ours) then torch/matmul.py (--profile
# tuned: OPENBLAS_CORETYPE=SkylakeX), then print one table of medians with
# the median of the per-pass ratios. Where cblas.h is installed (Debian's
# libopenblas-dev) each pass also runs OpenBLAS itself in the same Go
# harness (bench/gemm built with -tags openblas), and a second table
# compares against it.
#
#   bench/gemm/run.sh                      # 3 passes, 1 and 2 threads
#   PASSES=5 THREADS=2 bench/gemm/run.sh
#
# Environment: RINGMASTER_SHARED (default <repo>/../shared), PYTHON
# (default /usr/bin/python3), RINGMASTER_GEMM (auto|avx512|avx2|generic),
# OPENBLAS_CORETYPE (for the direct OpenBLAS arm, run when cblas.h is here),
# KEEP=1 to keep the JSON files, ANCHOR_QUIET_WAIT (seconds matmul.py waits
# for a quiet host before a pass and before re-measuring a contended point;
# default here 0: on a host shared with other busy jobs waiting only costs
# time), ANCHOR_QUIET_THRESHOLD (both programs re-measure a point taken while
# other processes used this many cores, up to 3 tries; default 0.25).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
shared=${RINGMASTER_SHARED:-$root/../shared}
py=${PYTHON:-/usr/bin/python3}
passes=${PASSES:-3}
threads=${THREADS:-1,2}
matmul=$shared/bench/torch/matmul.py
[ -f "$matmul" ] || { echo "run.sh: $matmul not found (set RINGMASTER_SHARED)" >&2; exit 1; }

out=$(mktemp -d "${TMPDIR:-/tmp}/gemm-bench.XXXXXX")
if [ "${KEEP:-0}" = 1 ]; then
	echo "results in $out"
else
	trap 'rm -rf "$out"' EXIT
fi

(cd "$root" && go build -o "$out/gemm" ./bench/gemm)
# OpenBLAS in the same Go harness (cgo, -tags openblas), when its headers are here.
openblas=0
if echo '#include <cblas.h>' | gcc -E -x c - >/dev/null 2>&1 &&
	(cd "$root" && go build -tags openblas -o "$out/gemm_openblas" ./bench/gemm); then
	openblas=1
fi
for i in $(seq 1 "$passes"); do
	echo "== pass $i/$passes: ringmaster"
	"$out/gemm" -threads "$threads" -json "$out/ours_$i.json"
	if [ "$openblas" = 1 ]; then
		echo "== pass $i/$passes: OpenBLAS (Go harness, cgo)"
		RINGMASTER_GEMM=openblas "$out/gemm_openblas" -threads "$threads" -json "$out/openblas_$i.json" | grep '^path' || true
	fi
	echo "== pass $i/$passes: torch (tuned)"
	BENCH_RESULTS_DIR="$out/torch" ANCHOR_QUIET_WAIT="${ANCHOR_QUIET_WAIT:-0}" \
		"$py" "$matmul" --profile tuned --passes 1 --reps 5 --threads "$threads" --tag "pass$i" |
		grep -E "^torch|OpenBLAS core|^wall" || true
done
echo
"$out/gemm" -compare "$out/ours_*.json" "$out/torch/matmul_pass*_tuned.json"
if [ "$openblas" = 1 ]; then
	echo
	echo "against OpenBLAS called directly (cgo, kernel $(OPENBLAS_VERBOSE=2 "$out/gemm_openblas" -h 2>&1 | grep -o 'Core: [A-Za-z]*' || echo 'as detected')):"
	"$out/gemm" -compare -against openblas "$out/ours_*.json" "$out/openblas_*.json"
fi
