# syntax=docker/dockerfile:1
# ExpStream in a container (docs/operations.md).
#
#   CPU:  docker build -t expstream .
#   GPU:  docker build -t expstream:gpu --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124 \
#           --build-arg EXTRAS=gpu-detector --build-arg ONNXRUNTIME=onnxruntime-gpu .
#         docker run --gpus all ...   (needs the NVIDIA Container Toolkit on the host; the CUDA
#         runtime comes inside torch's wheels, the host only provides the driver)
#
# The image runs as an unprivileged user; models, prompt embeddings and compiled engines are
# cached under /var/lib/expstream (mount a volume there so restarts do not download again).
# This file is written with care but was not built where it was written (no Docker daemon).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG EXTRAS=""
ARG ONNXRUNTIME=""
# insightface builds a C extension; nothing of the toolchain reaches the final image.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
ENV VIRTUAL_ENV=/opt/expstream PATH=/opt/expstream/bin:$PATH PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv "$VIRTUAL_ENV"
# torch first, from the index that matches the device (CPU wheels are ~5x smaller).
RUN pip install --index-url "$TORCH_INDEX" torch torchvision
WORKDIR /src
COPY pyproject.toml README.md ./
COPY configs ./configs
COPY engine ./engine
COPY streamer ./streamer
COPY trainer ./trainer
RUN pip install ".${EXTRAS:+[$EXTRAS]}" \
 && if [ -n "$ONNXRUNTIME" ]; then pip uninstall -y onnxruntime && pip install "$ONNXRUNTIME"; fi \
 && streamer --help >/dev/null

FROM ${PYTHON_IMAGE}
# libGL/glib for OpenCV; tini as PID 1 forwards SIGTERM and reaps children.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --create-home --home-dir /var/lib/expstream --shell /usr/sbin/nologin expstream
COPY --from=build /opt/expstream /opt/expstream
ENV PATH=/opt/expstream/bin:$PATH PYTHONUNBUFFERED=1 HOME=/var/lib/expstream
USER expstream
WORKDIR /var/lib/expstream
VOLUME ["/var/lib/expstream"]
# 5556: ZeroMQ output (secure it with CurveZMQ keys before publishing it); 9464: metrics/health.
EXPOSE 5556 9464
# SIGTERM stops the sources, drains, publishes the end events and exits 0: give it time.
STOPSIGNAL SIGTERM
ENTRYPOINT ["tini", "--", "streamer"]
CMD ["--help"]
