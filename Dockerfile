# One image for every stage: `smartcrop serve <detector|tracker|planner|encoder>`.
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 YOLO_CONFIG_DIR=/tmp/ultralytics
RUN apt-get update && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY services ./services
RUN pip install . && useradd --uid 10001 --no-create-home smartcrop
USER 10001
EXPOSE 9100
ENV SMARTCROP_METRICS_PORT=9100
ENTRYPOINT ["smartcrop"]
CMD ["serve", "detector"]
