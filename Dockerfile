# One image for every edgeloop process: ML service, Celery worker, beat, Flower, CLI.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

# Dependencies first, so code edits do not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir -p edgeloop && touch edgeloop/__init__.py \
 && pip install --upgrade pip && pip install . && pip uninstall -y edgeloop

COPY . .
RUN pip install --no-deps . && useradd --create-home --uid 10001 edgeloop \
 && mkdir -p /app/var && chown -R edgeloop /app/var
USER edgeloop

CMD ["edgeloop", "--help"]
