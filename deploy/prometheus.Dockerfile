# ringmaster-prometheus: Prometheus for docker-compose.yml's `monitoring`
# profile, FROM scratch like the ringmaster images so it builds offline.
# `make image-prometheus` copies this host's Debian-packaged Prometheus
# (/usr/bin/prometheus: apt-get install prometheus) with the C library and
# loader it links (ldd) into deploy/build/prometheus/, the build context's
# root file system for this image.
FROM scratch
COPY build/prometheus/ /
COPY --chown=65534:65534 build/empty/ /prometheus/
USER 65534:65534
# The config and rules are mounted by docker-compose.yml (the defaults here
# are the repository's, baked in at build time).
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
