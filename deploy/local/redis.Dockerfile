# redis:7-alpine's contract, from Debian's redis-server (7.0): redis-server and redis-cli on
# PATH, the working directory /data (where the AOF goes), run as the redis user.
FROM edgeloop-base:bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir /data && chown redis:redis /data
WORKDIR /data
USER redis
EXPOSE 6379
CMD ["redis-server", "--protected-mode", "no"]
