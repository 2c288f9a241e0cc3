# The rag_splade HTTP service. Default build: CUDA torch from PyPI (for the GPU deployment in
# docker-compose.yml). CPU-only image:
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu .
FROM python:3.11-slim

ARG TORCH_SPEC="torch==2.13.0"
ARG TORCH_INDEX_URL=""

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/models

WORKDIR /src
RUN if [ -n "$TORCH_INDEX_URL" ]; then \
        pip install "$TORCH_SPEC" --index-url "$TORCH_INDEX_URL"; \
    else \
        pip install "$TORCH_SPEC"; \
    fi

COPY pyproject.toml README.md ./
COPY rag_splade ./rag_splade
COPY pipelines ./pipelines
COPY api ./api
RUN pip install ".[api]"
# Run from a folder without the sources: the installed package (rag_splade.api inside it)
# is what gets imported, never the checkout's top-level api/ folder.
WORKDIR /srv

RUN useradd --system --uid 10001 rag && mkdir -p /models /data && chown rag /models /data
USER rag

EXPOSE 8000
# One process: the models sit in (GPU) memory once and micro-batching sees every request.
# The service logs each request itself (JSON lines), so uvicorn's access log is off.
CMD ["uvicorn", "rag_splade.api.app:app", "--host", "0.0.0.0", "--port", "8000", "--no-access-log"]
