# prom/prometheus's contract, from Debian's prometheus package (which ships promtool):
# /bin/prometheus, the configuration in /etc/prometheus, the TSDB in /prometheus owned by
# nobody, wget for the health check.
FROM edgeloop-base:bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends prometheus wget \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /prometheus && chown nobody:nogroup /prometheus
USER nobody
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
