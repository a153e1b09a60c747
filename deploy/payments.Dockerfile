# The payments service. Build from the repository root:
#   docker build -f deploy/payments.Dockerfile -t mkutano-payments .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PAYMENTS_HTTP_PORT=8004

WORKDIR /app

# Dependencies first, pinned by constraints.txt, so code changes reuse this layer.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml','rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && pip install -c constraints.txt -r /tmp/requirements.txt

COPY shared ./shared
COPY services ./services
COPY deploy ./deploy
RUN pip install --no-deps . \
 && useradd --system --uid 10001 --no-create-home mkutano

USER mkutano
EXPOSE 8004

HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PAYMENTS_HTTP_PORT', '8004') + '/health/ready', timeout=2)"]

CMD ["python", "-m", "services.payments"]
