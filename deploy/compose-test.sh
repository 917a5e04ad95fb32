#!/usr/bin/env bash
# compose-test.sh: end-to-end check of docker-compose.yml on this host.
#
# Builds the images (make images; SKIP_BUILD=1 skips), starts 3 coordinators
# and 2 workers with mutual TLS (the certs service issues the certificates),
# waits for a leader and the workers (each has claimed its own certificate of
# the pool), checks that a client without a certificate is refused, submits the built-in
# job (sort preset) and waits for it to complete, samples the trained model,
# kills the leader's container and checks that a new leader serves
# `ringctl jobs` with the job still there, then removes everything
# (docker compose down -v). Needs no network: the images are FROM scratch.
#
#   deploy/compose-test.sh          # or: make compose-test
#   KEEP=1 deploy/compose-test.sh   # leave the cluster up afterwards
set -euo pipefail

cd "$(dirname "$0")/.."
export COMPOSE_PROJECT_NAME="${COMPOSE_PROJECT_NAME:-ringmaster-compose-test}"
if docker compose version >/dev/null 2>&1; then
	compose() { docker compose "$@"; }
elif command -v docker-compose >/dev/null 2>&1; then
	compose() { docker-compose "$@"; }
else
	echo "compose-test: neither 'docker compose' nor 'docker-compose' is installed" >&2
	exit 1
fi

step() { printf '\n== %s\n' "$*"; }
fail() {
	echo "compose-test: FAIL: $*" >&2
	exit 1
}
# ctl runs ringctl as the operator (the ctl service: the operator
# certificate), against every coordinator (RINGMASTER_COORDINATORS).
ctl() { compose run --rm -T ctl "$@"; }
# wait_for DESCRIPTION SECONDS COMMAND...: run COMMAND every second until it
# succeeds; fail after SECONDS.
wait_for() {
	local what=$1 secs=$2 deadline
	shift 2
	deadline=$((SECONDS + secs))
	until "$@"; do
		((SECONDS < deadline)) || fail "timed out after ${secs}s waiting for $what"
		sleep 1
	done
}

cleanup() {
	local rc=$?
	if ((rc != 0)); then
		echo "compose-test: failed; last logs:" >&2
		compose logs --no-color --tail=40 >&2 || true
	fi
	if [[ "${KEEP:-}" == 1 && $rc == 0 ]]; then
		echo "KEEP=1: cluster left up (project $COMPOSE_PROJECT_NAME); stop it with: docker compose -p $COMPOSE_PROJECT_NAME down -v"
	else
		compose --profile monitoring down -v --remove-orphans >/dev/null 2>&1 || true
	fi
	exit $rc
}
trap cleanup EXIT

if [[ "${SKIP_BUILD:-}" != 1 ]]; then
	step "build images"
	make images
fi

step "start the cluster (project $COMPOSE_PROJECT_NAME)"
compose --profile monitoring down -v --remove-orphans >/dev/null 2>&1 || true
compose up -d --no-build --scale worker=2

leader_id() { ctl status 2>/dev/null | sed -n 's/.*, leader \(c[0-9]*\) at .*/\1/p'; }
has_leader() { [[ -n "$(leader_id)" ]]; }
workers_alive() { [[ "$(ctl workers 2>/dev/null | grep -c ' alive ')" -ge 2 ]]; }

step "wait for a leader and 2 workers"
wait_for "a raft leader" 90 has_leader
wait_for "2 alive workers" 90 workers_alive
ctl coordinators
workers=$(ctl workers)
echo "$workers"
for w in worker-1 worker-2; do
	grep -q "^$w " <<<"$workers" || fail "no worker $w: each replica should claim its own certificate of the pool"
done

step "a client without a certificate is refused"
if out=$(compose run --rm -T -e RINGMASTER_TLS_DIR= ctl jobs 2>&1); then
	fail "ringctl without a certificate was served: $out"
fi
echo "refused: $(grep -m1 -iE "error|tls|handshake" <<<"$out" || tail -1 <<<"$out")"

if command -v curl >/dev/null 2>&1; then
	step "readiness and metrics over the ports published on 127.0.0.1"
	for port in 7301 7302 7303; do
		wait_for "/readyz on 127.0.0.1:$port" 30 curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz"
	done
	metrics=$(curl -fsS http://127.0.0.1:7301/metrics)
	grep -q '^go_goroutines ' <<<"$metrics" || fail "no metrics on 127.0.0.1:7301"
	wport=$(compose port --index=1 worker 7300)
	metrics=$(curl -fsS "http://$wport/metrics")
	grep -q '^go_goroutines ' <<<"$metrics" || fail "no worker metrics on $wport"
	echo "coordinators ready on 127.0.0.1:7301-7303; worker 1 metrics on $wport"

	if docker image inspect ringmaster-prometheus:latest >/dev/null 2>&1; then
		step "monitoring: Prometheus (FROM scratch) scrapes every node and loads the alert rules"
		compose --profile monitoring up -d --no-build prometheus
		targets_up() { [[ "$(curl -fsS http://127.0.0.1:9090/api/v1/targets 2>/dev/null | grep -o '"health":"up"' | wc -l)" -ge 5 ]]; }
		rules_loaded() { curl -fsS http://127.0.0.1:9090/api/v1/rules 2>/dev/null | grep -q '"name":"WorkerLost"'; }
		wait_for "5 Prometheus targets up (3 coordinators, 2 workers)" 90 targets_up
		wait_for "the alert rules loaded" 60 rules_loaded
		monitoring=1
	else
		echo "no ringmaster-prometheus image (make images builds it when /usr/bin/prometheus exists): skipping the monitoring profile"
	fi
fi

step "submit the built-in job (sort preset)"
out=$(ctl submit --preset sort)
echo "$out"
job=$(grep -o '^job-[0-9]*' <<<"$out" | head -1)
[[ "$job" == job-* ]] || fail "unexpected submit output: $out"

job_state() { ctl status "$job" 2>/dev/null | sed -n "s/^job $job: \([a-z]*\).*/\1/p"; }
job_done() {
	local s
	s=$(job_state)
	case "$s" in
	completed) return 0 ;;
	failed | cancelled) fail "job $job is $s" ;;
	*) return 1 ;;
	esac
}
wait_for "job $job to complete" 300 job_done

step "result"
ctl status "$job"
sample=$(ctl sample -model "/data/models/$job" -prompt 210210 -n 6 -temperature 0)
echo "sample: 210210 -> $sample"
[[ "$sample" == 210210001122 ]] || echo "note: the trained model did not sort this prompt perfectly"

if [[ "${monitoring:-}" == 1 ]]; then
	step "monitoring: the job's training series are in Prometheus"
	trained() { curl -fsS "http://127.0.0.1:9090/api/v1/query" --data-urlencode "query=ringmaster_train_step{job_id=\"$job\"}" 2>/dev/null | grep -q '"result":\[{'; }
	wait_for "ringmaster_train_step{job_id=\"$job\"} in Prometheus" 60 trained
	echo "Prometheus has $job's training series"
fi

step "kill the leader"
old=$(leader_id)
svc="coordinator-${old#c}"
echo "leader is $old; docker compose kill $svc"
compose kill "$svc"
new_leader() {
	local l
	l=$(leader_id)
	[[ -n "$l" && "$l" != "$old" ]]
}
wait_for "a new leader" 60 new_leader
echo "new leader: $(leader_id)"
ctl coordinators
jobs_out=$(ctl jobs)
echo "$jobs_out"
grep -Eq "^$job +completed" <<<"$jobs_out" || fail "the new leader does not list $job as completed"

step "PASS"
