# syntax=docker/dockerfile:1
# The agent-session-manager image: the `asm` CLI (worker, setup, client commands, the gateway).
#   docker build -t agent-session-manager .
#   docker run --rm agent-session-manager asm --help
ARG PYTHON_VERSION=3.12

FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/asm
WORKDIR /src
# Metadata first, so a code change does not rebuild the dependency layer.
COPY pyproject.toml README.md constraints.txt ./
# A stub package resolves the dependencies; the real code replaces it below.
RUN mkdir -p agent_session_manager && touch agent_session_manager/__init__.py \
 && /opt/asm/bin/pip install -c constraints.txt '.[gateway]' \
 && /opt/asm/bin/pip uninstall -y agent-session-manager && rm -rf agent_session_manager
# agent_session_manager/ holds the public API and one symlink per top-level folder.
COPY agent_session_manager ./agent_session_manager
COPY core ./core
COPY store ./store
COPY observability ./observability
COPY workflows ./workflows
COPY activities ./activities
COPY worker ./worker
COPY client ./client
COPY cli ./cli
COPY gateway ./gateway
RUN /opt/asm/bin/pip install --no-deps . \
 && /opt/asm/bin/asm --help >/dev/null

FROM python:${PYTHON_VERSION}-slim
# An unprivileged user; its home holds nothing but the (unused in compose) SQLite default.
RUN useradd --create-home --uid 10001 asm
COPY --from=build /opt/asm /opt/asm
ENV PATH=/opt/asm/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER asm
WORKDIR /home/asm
# Metrics / health (ASM_PROMETHEUS_BIND=0.0.0.0:9464 in docker-compose.yml); the gateway.
EXPOSE 9464 8780
CMD ["asm", "worker"]
