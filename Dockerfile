# syntax=docker/dockerfile:1
#
# HashHub's production image (README "Production"; compose.yaml runs it as web, worker, webhooks,
# beat and the one-shot migrate).
#
# Two stages: `build` has the compilers and turns every dependency into a wheel; `runtime` starts
# again from the slim image, installs those wheels only (no index, no compiler), copies the code
# and runs as an unprivileged user. Settings come from the environment only
# (hub/settings/__init__.py); nothing secret is baked in.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# pyproject.toml lists the dependencies; README.md is its `readme`. The project itself needs no
# wheel of its own here (the code runs from /app, where the settings find templates/ beside the
# apps), so only the dependencies' wheels are kept.
COPY pyproject.toml README.md ./
RUN pip wheel --no-cache-dir --wheel-dir /wheels . && rm /wheels/hashhub-*.whl

FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HASHHUB_MODE=production \
    HASHHUB_VAR_DIR=/var/lib/hashhub \
    HASHHUB_INDEX_DIR=/var/lib/hashhub/index \
    HASHHUB_FEED_DIR=/var/lib/hashhub/files/feeds \
    HASHHUB_RETROACTIVE_INDEX_DIR=/var/lib/hashhub/files/retroactive \
    DJANGO_STATIC_ROOT=/app/staticfiles
RUN groupadd --system --gid 10001 hashhub \
    && useradd --system --uid 10001 --gid hashhub --home-dir /app --shell /usr/sbin/nologin hashhub
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels /wheels/*.whl \
    && rm -rf /wheels
WORKDIR /app
# The code, owned by root and read-only to the hub's user; .dockerignore leaves out local state,
# secrets, tests and benchmarks.
COPY . ./
# Static files are collected at build time. Production settings refuse to load without their
# required variables, so this one command gets throwaway values that never leave the layer's
# process (there is no database or Redis at build time, and collectstatic needs neither).
RUN DJANGO_SECRET_KEY="collectstatic-only-$(python -c 'import secrets; print(secrets.token_urlsafe(50))')" \
    DATABASE_URL=postgres://build@localhost/build REDIS_URL=redis://localhost:6379/0 \
    DJANGO_ALLOWED_HOSTS=localhost HASHHUB_SITE_URL=https://localhost \
    python manage.py collectstatic --no-input --verbosity 0 \
    && mkdir -p /var/lib/hashhub/index /var/lib/hashhub/files \
    && chown -R hashhub:hashhub /var/lib/hashhub
USER hashhub:hashhub
EXPOSE 8000
# Liveness of the web process: /healthz touches neither PostgreSQL nor Redis (/readyz does). The
# Host header is the first allowed host, so that Django's host check lets the probe through.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 CMD ["python", "-c", "import os, urllib.request as r; h = os.environ.get('DJANGO_ALLOWED_HOSTS', '').split(',')[0].strip().lstrip('.'); h = 'localhost' if h in ('', '*') else h; r.urlopen(r.Request('http://127.0.0.1:8000/healthz', headers={'Host': h, 'X-Forwarded-Proto': 'https'}), timeout=4)"]
# Sync workers, one per core (README "Running in production"); compose.yaml says the same.
# hub.gunicorn_conf: the redacted access log, and the metrics of workers that exit.
CMD ["sh", "-c", "exec gunicorn hub.wsgi:application --config python:hub.gunicorn_conf --bind 0.0.0.0:8000 --workers \"$(nproc)\""]
