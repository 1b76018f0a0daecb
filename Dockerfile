# uplift-capture-daemon in a container.
#   docker build -t uplift-capture .
#   docker run -d --name uplift-capture \
#     -v /srv/captures:/captures -v uplift-state:/var/lib/uplift-capture \
#     -v /etc/uplift-capture/config.toml:/etc/uplift-capture/config.toml:ro \
#     -e UPLIFT_API_TOKEN=...        (or: --secret / -v token:/run/secrets/uplift-api-token:ro)
#     uplift-capture
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY daemon ./daemon
COPY migrations ./migrations
# The program and every dependency as wheels, at the versions pinned in constraints.txt.
RUN pip wheel --no-cache-dir --wheel-dir /wheels -c constraints.txt .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    UPLIFT_CAPTURE_CONFIG=/etc/uplift-capture/config.toml
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl && rm -rf /wheels \
 && useradd --system --uid 10001 --home-dir /var/lib/uplift-capture --shell /usr/sbin/nologin \
      uplift-capture \
 && install -d -o uplift-capture -g uplift-capture -m 0700 /var/lib/uplift-capture \
 && install -d -m 0755 /etc/uplift-capture /captures
# A token file mounted as a Docker secret is used when UPLIFT_API_TOKEN is not set: point
# [api] token_file at /run/secrets/uplift-api-token in the config.
VOLUME ["/captures", "/var/lib/uplift-capture"]
USER uplift-capture
HEALTHCHECK --interval=60s --timeout=20s --start-period=30s --retries=3 \
  CMD ["uplift-capture", "check", "--offline"]
ENTRYPOINT ["uplift-capture"]
CMD ["run"]
