# syntax=docker/dockerfile:1
# The personalize server image: web server, job worker and scheduler are the same image with
# different commands (compose.yaml runs all three). docs/deployment.md, "Containers", has the steps.
#
#   docker build -t personalize .
#
# Nothing secret is in the image: keys, passwords and tokens come at run time from the
# environment or from files (PERSONALIZE_<SETTING>_FILE=/run/secrets/…).

# -- build: the wheel, from the sources only (.dockerignore keeps .venv, instance/ and secrets/ out)
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
COPY plugins ./plugins
COPY static ./static
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# -- run: the wheel with the production extras (PostgreSQL driver, Redis, Celery), as a user without rights
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PERSONALIZE_INSTANCE_PATH=/var/lib/personalize
RUN groupadd --system --gid 10001 personalize \
 && useradd --system --uid 10001 --gid personalize --home-dir /var/lib/personalize --no-create-home --shell /usr/sbin/nologin personalize \
 && mkdir -p /var/lib/personalize \
 && chown personalize:personalize /var/lib/personalize
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir "$(ls /wheels/personalize-*.whl)[production]" \
 && rm -rf /wheels
# the instance folder: models, the files connector's folder, metrics, locks (and the SQLite file without DATABASE_URL)
VOLUME ["/var/lib/personalize"]
WORKDIR /var/lib/personalize
USER personalize:personalize
EXPOSE 5000
# liveness: this container's web server answers and reaches its database (the worker's compose service turns it off)
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:5000/api/v1/health', timeout=4).status != 200)"]
ENTRYPOINT ["personalize"]
CMD ["serve", "--host", "0.0.0.0", "--port", "5000"]
