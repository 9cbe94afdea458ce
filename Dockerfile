# syntax=docker/dockerfile:1
# NovaPulse: one image, two entrypoints — `novapulse` (the bot) and `novapulse-operator`.
#
#   docker build -t novapulse:0.1.0 .
#   docker run --rm -p 8090:8090 -e NOVAPULSE__DASHBOARD__HOST=0.0.0.0 novapulse:0.1.0
#       # a paper bot on the sample data, embedded PostgreSQL in /data (an anonymous volume)
#   docker run --rm novapulse:0.1.0 novapulse-operator --help
#
# Runs as uid/gid 10001 (the operator's pod security context) and works on a read-only root
# filesystem: it writes only to /data (the bot's data: embedded PostgreSQL, instance lock,
# models) and /tmp (XDG_RUNTIME_DIR, the embedded PostgreSQL's lock file).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: the project and its dependencies into a virtualenv (wheels only) ------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/novapulse \
 && /opt/novapulse/bin/pip install --upgrade pip setuptools wheel
# Dependencies first, as wheels only (no compiler anywhere; a layer that survives source
# edits), then the project itself.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && /opt/novapulse/bin/pip install --only-binary=:all: -r /tmp/requirements.txt
COPY bot bot
COPY operator operator
RUN /opt/novapulse/bin/pip install --no-deps --no-compile . \
 && /opt/novapulse/bin/python -m compileall -q /opt/novapulse/lib \
 && /opt/novapulse/bin/pip uninstall --yes pip setuptools wheel \
 && /opt/novapulse/bin/novapulse --help >/dev/null \
 && /opt/novapulse/bin/novapulse-operator --help >/dev/null

# --- runtime: no compilers, no pip, a non-root user --------------------------------------------
FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="novapulse" \
      org.opencontainers.image.description="NovaPulse: a Kraken trading bot and the Kubernetes operator that runs and heals it" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"
RUN groupadd --gid 10001 novapulse \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin novapulse \
 && mkdir -p /data /app \
 && chown 10001:10001 /data \
 && chmod 0750 /data \
 && rm -rf /usr/local/lib/python3.11/ensurepip /usr/local/bin/pip* /usr/local/lib/python3.11/site-packages/pip*
COPY --from=build /opt/novapulse /opt/novapulse
# The sample candles: a paper bot runs with no volume and no network.
COPY data/sample /app/data/sample
ENV PATH=/opt/novapulse/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    XDG_RUNTIME_DIR=/tmp \
    NOVAPULSE__INSTANCE__DATA_DIR=/data
WORKDIR /app
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8090
# Runbook 1 for plain Docker: unhealthy when the bot's main loop stalls (503) or it is gone.
# (The operator's container has no such endpoint; Kubernetes ignores HEALTHCHECK and probes.)
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request as u; sys.exit(0 if u.urlopen('http://127.0.0.1:8090/api/v1/health', timeout=4).status == 200 else 1)"]
CMD ["novapulse", "run", "--mode", "paper", "--speed", "300", "--feed", "replay:data/sample/ETH_BTC-5m.csv.gz,data/sample/LTC_BTC-5m.csv.gz"]
