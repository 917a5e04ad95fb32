# ringmaster-worker: a training process. FROM scratch like the coordinator
# image (see coordinator.Dockerfile); ringctl is inside for `docker exec`.
FROM scratch
COPY build/launch build/worker build/ringctl /
# Finished jobs' models go to /data/models (mount a volume there).
COPY --chown=65532:65532 build/empty/ /data/models/
COPY --chown=65532:65532 build/empty/ /data/worker/
COPY --chown=65532:65532 build/empty/ /tmp/
USER 65532:65532
# /launch replaces {{ip}} with the container's address: a worker listens on
# and advertises that, so its peers can dial it (see deploy/launch). Flags
# given as the command (`docker run ringmaster-worker --coordinators ...`)
# override these.
ENV RINGMASTER_OUT_DIR=/data/models \
    RINGMASTER_DATA_DIR=/data/worker \
    RINGMASTER_LISTEN={{ip}}:7200 \
    RINGMASTER_BULK_ADDR={{ip}}:7201 \
    RINGMASTER_HTTP_ADDR=:7300
# 7200 peer collectives (gRPC), 7201 bulk TCP, 7300 HTTP (/metrics, /healthz)
EXPOSE 7200 7201 7300
ENTRYPOINT ["/launch", "/worker"]
