# One image for all four services; the command picks one: services.intake | services.routing |
# services.feedback | services.metrics (and devtools.provision for the provisioning job). The `kefu`
# command is installed too (`kefu --help`).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md requirements.lock ./
COPY config config
COPY shared shared
COPY services services
COPY devtools devtools
# the locked, hashed dependencies first, then kefu itself (its default config as package data)
RUN python -m venv /opt/kefu \
 && /opt/kefu/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/kefu/bin/pip install --no-cache-dir --require-hashes -r requirements.lock \
 && /opt/kefu/bin/pip install --no-cache-dir --no-deps .

FROM python:3.11-slim
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin kefu
COPY --from=build /opt/kefu /opt/kefu
WORKDIR /app
# configuration: the defaults installed with kefu; mount your own and set KEFU_CONFIG_DIR to change it
ENV PATH=/opt/kefu/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001
EXPOSE 8081 8082 8083 8084 8085
ENTRYPOINT ["python", "-m"]
CMD ["services.intake"]
