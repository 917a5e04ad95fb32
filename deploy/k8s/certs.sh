#!/usr/bin/env bash
# certs.sh [WORKERS]: the cluster's certificates as Kubernetes Secrets.
#
# Runs `ringctl certs ensure` on this machine (the CA key never enters the
# cluster): the CA in $CERTS/ca the first time, then one certificate per
# coordinator pod (ringmaster-coordinator-0..2), per worker pod
# (ringmaster-worker-0..WORKERS-1, default 8) and the operator's, each
# reissued only when missing or expiring. Then it applies three Secrets,
# ringmaster-coordinator-tls, ringmaster-worker-tls (each pod mounts only
# its own key, see coordinator.yaml and worker.yaml) and
# ringmaster-operator-tls (for ringctl.sh). Run it before
# `kubectl apply -k deploy/k8s`, again before scaling workers past WORKERS,
# and to renew (then `kubectl rollout restart statefulset`).
#
#   deploy/k8s/certs.sh 8            # CERTS (default ~/.config/ringmaster/k8s) keeps the CA
#   RINGCTL=bin/ringctl NAMESPACE=ml deploy/k8s/certs.sh
set -euo pipefail
workers=${1:-8}
certs=${CERTS:-$HOME/.config/ringmaster/k8s}
ringctl=${RINGCTL:-go run ./cmd/ringctl}
ns=()
[[ -n "${NAMESPACE:-}" ]] && ns=(-n "$NAMESPACE")
cd "$(dirname "$0")/../.."

$ringctl certs ensure --dir "$certs/ca" \
	"coordinator:ringmaster-coordinator-{0..2}:$certs/coordinators" \
	"worker:ringmaster-worker-{0..$((workers - 1))}:$certs/workers" \
	"operator:operator:$certs/operator"
for pair in coordinator:coordinators worker:workers operator:operator; do
	kubectl "${ns[@]}" create secret generic "ringmaster-${pair%%:*}-tls" --from-file="$certs/${pair#*:}" \
		--dry-run=client -o yaml | kubectl "${ns[@]}" apply -f -
done
