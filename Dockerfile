# One image for every edgeloop process: ML service, Celery worker, beat, Flower, CLI.
# PYTHON_IMAGE: any image with python 3.11 and pip first on PATH; deploy/compose.local.yml
# builds one from Debian's packages where no registry can be reached.
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

# Dependencies first, read from pyproject.toml, so code edits do not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
      > /tmp/requirements.txt \
 && pip install --upgrade pip && pip install -r /tmp/requirements.txt

# Installed from /src, which is then removed: the working directory is on sys.path for
# `celery -A`, and a source tree there would shadow the installed package (its folders are
# mapped under edgeloop/ only by the install). Kept in /app: the data the migrate service
# imports, and flowerconfig.py (Flower reads it from its working directory; without it Flower
# would run without basic auth).
COPY . /src
RUN pip install --no-deps /src && cp -r /src/data /src/flowerconfig.py /app/ && rm -rf /src \
 && useradd --create-home --uid 10001 edgeloop \
 && mkdir -p /app/var && chown -R edgeloop /app/var
USER edgeloop

CMD ["edgeloop", "--help"]
