# ringmaster-coordinator: one member of the Raft coordinator group.
# FROM scratch: static binaries only (no shell, no libc, no CA certificates),
# so the image builds offline. `make images` first builds the binaries into
# deploy/build/ (CGO_ENABLED=0), the build context is deploy/.
FROM scratch
COPY build/launch build/coordinator build/ringctl /
# /data holds the raft log, stable store and snapshots (mount a volume);
# owned by the unprivileged user the process runs as, so that a new named
# volume mounted here inherits that ownership.
COPY --chown=65532:65532 build/empty/ /data/
COPY --chown=65532:65532 build/empty/ /tmp/
USER 65532:65532
ENV RINGMASTER_DATA_DIR=/data RINGMASTER_HTTP_ADDR=:7300
# 7000 raft, 7100 gRPC API, 7300 HTTP (/metrics, /healthz, /readyz)
EXPOSE 7000 7100 7300
ENTRYPOINT ["/launch", "/coordinator"]
