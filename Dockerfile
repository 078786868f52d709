# One image for every stage: `smartcrop serve <detector|tracker|planner|encoder>`, and `smartcrop init`.
#   docker build -t smartcrop .                     CPU image: CPU-only PyTorch wheels (the default target)
#   docker build --target gpu -t smartcrop:gpu .    detector on NVIDIA GPUs: PyTorch's CUDA wheels bring the CUDA
#                                                   runtime; the host needs the driver and NVIDIA Container Toolkit
# Runs as uid 10001 and works with a read-only root filesystem: it writes only to /tmp and SMARTCROP_HOME.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/smartcrop/bin:$PATH
# OpenCV and MediaPipe load libGL and GLib when imported.
RUN apt-get update && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

FROM runtime AS source
RUN python -m venv /opt/smartcrop
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY services ./services

FROM source AS build-cpu
# The same torch/torchvision versions as pyproject.toml, without the CUDA libraries (gigabytes smaller).
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.14.1 torchvision==0.29.1 \
    && pip install . \
    && python -c "import smartcrop.cli"

FROM source AS build-gpu
# onnxruntime-gpu (CUDA and TensorRT execution providers) replaces the CPU build: both install `onnxruntime`.
RUN pip install . && pip uninstall -y onnxruntime && pip install "onnxruntime-gpu>=1.18" \
    && python -c "import smartcrop.cli"

FROM runtime AS app
RUN useradd --uid 10001 --user-group --home-dir /var/cache/smartcrop --no-create-home --shell /usr/sbin/nologin \
        smartcrop \
    && mkdir -p /var/cache/smartcrop && chown 10001:10001 /var/cache/smartcrop
# SMARTCROP_HOME holds downloaded model weights and their exports (an official YOLO name such as yolo11n.pt is
# downloaded and exported once into SMARTCROP_HOME/models); it is the working directory too. Library caches go to /tmp.
ENV SMARTCROP_HOME=/var/cache/smartcrop HOME=/var/cache/smartcrop SMARTCROP_METRICS_PORT=9100 \
    YOLO_CONFIG_DIR=/tmp/ultralytics MPLCONFIGDIR=/tmp/matplotlib
WORKDIR /var/cache/smartcrop
EXPOSE 9100
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=5 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9100/healthz', timeout=3)"]
ENTRYPOINT ["smartcrop"]
CMD ["serve", "detector"]

FROM app AS gpu
COPY --from=build-gpu /opt/smartcrop /opt/smartcrop
ENV SMARTCROP_DEVICE=cuda:0 NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility
USER 10001:10001

FROM app AS cpu
COPY --from=build-cpu /opt/smartcrop /opt/smartcrop
USER 10001:10001
