# What python:3.11-slim gives the project's Dockerfile, from Debian's python3 (3.11 on
# bookworm): `python` and `pip` first on PATH, in a virtual environment because Debian's own
# Python refuses `pip install` outside one (PEP 668). ca/ holds the CA certificates the host
# adds to Debian's (deploy/compose_check.py copies them), and pip trusts the system's store.
FROM edgeloop-base:bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/python
COPY ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates >/dev/null
ENV PATH=/opt/python/bin:$PATH PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
