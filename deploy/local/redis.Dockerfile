# redis:7-alpine's contract, from Debian's redis-server (7.0): redis-server and redis-cli on
# PATH, protected mode off, the working directory /data (where the AOF goes), run as the
# redis user.
FROM edgeloop-base:bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir /data && chown redis:redis /data
COPY redis-entrypoint.sh /usr/local/bin/redis-entrypoint.sh
WORKDIR /data
USER redis
EXPOSE 6379
ENTRYPOINT ["/usr/local/bin/redis-entrypoint.sh"]
CMD ["redis-server"]
