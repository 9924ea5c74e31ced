# One image for all four services; the command picks one: services.intake | services.routing |
# services.feedback | services.metrics (and devtools.provision for the provisioning job).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY shared shared
COPY services services
COPY devtools devtools
RUN python -m venv /opt/kefu \
 && /opt/kefu/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/kefu/bin/pip install --no-cache-dir .

FROM python:3.11-slim
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin kefu
COPY --from=build /opt/kefu /opt/kefu
COPY config /app/config
WORKDIR /app
ENV PATH=/opt/kefu/bin:$PATH \
    KEFU_CONFIG_DIR=/app/config \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001
EXPOSE 8081 8082 8083 8084
ENTRYPOINT ["python", "-m"]
CMD ["services.intake"]
