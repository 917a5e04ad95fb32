#!/usr/bin/env bash
# ringctl.sh ARGS...: run ringctl as the operator inside the cluster, in a
# one-off pod that mounts the ringmaster-operator-tls Secret (certs.sh) and
# reaches the coordinators by their in-cluster names (a client from outside
# would not resolve the names the coordinators redirect it to).
#
#   deploy/k8s/ringctl.sh submit --preset sort
#   deploy/k8s/ringctl.sh jobs
#   IMAGE=registry.example.com/ringmaster-worker:v1 NAMESPACE=ml deploy/k8s/ringctl.sh status
set -euo pipefail
image=${IMAGE:-ringmaster-worker:latest}
ns=()
[[ -n "${NAMESPACE:-}" ]] && ns=(-n "$NAMESPACE")
json_args=""
for a in "$@"; do
	a=${a//\\/\\\\}
	a=${a//\"/\\\"}
	json_args+="${json_args:+,}\"$a\""
done
overrides=$(
	cat <<JSON
{"spec": {"securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532},
  "containers": [{"name": "ringctl", "image": "$image", "command": ["/ringctl"], "args": [$json_args],
    "envFrom": [{"configMapRef": {"name": "ringmaster"}}],
    "env": [{"name": "RINGMASTER_TLS_DIR", "value": "/certs"}],
    "volumeMounts": [{"name": "tls", "mountPath": "/certs", "readOnly": true}]}],
  "volumes": [{"name": "tls", "secret": {"secretName": "ringmaster-operator-tls", "defaultMode": 288}}]}}
JSON
)
exec kubectl "${ns[@]}" run "ringctl-$$" --rm -i --restart=Never --quiet --image="$image" --overrides="$overrides"
