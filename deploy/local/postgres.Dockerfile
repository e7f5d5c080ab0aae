# postgres:16-alpine's contract, from Debian's PostgreSQL (15 on bookworm): POSTGRES_USER,
# POSTGRES_PASSWORD and POSTGRES_DB create the cluster on first start in
# /var/lib/postgresql/data, pg_isready on PATH, the server listening on every interface.
FROM edgeloop-base:bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
 && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql \
 && ln -s /usr/lib/postgresql/*/bin /usr/lib/postgresql/bin
ENV PATH=/usr/lib/postgresql/bin:$PATH PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
USER postgres
EXPOSE 5432
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint.sh"]
CMD ["postgres"]
