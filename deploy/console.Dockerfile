# The staff console. Build from the repository root:
#   docker build -f deploy/console.Dockerfile -t mkutano-console .
# The scanner's QR decoder (jsQR, npm) is vendored from package-lock.json: no CDN.
FROM node:22-slim AS vendor
WORKDIR /vendor
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    CONSOLE_HTTP_PORT=8005

WORKDIR /app

# Dependencies first, pinned by constraints.txt, so code changes reuse this layer.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml','rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && pip install -c constraints.txt -r /tmp/requirements.txt

COPY shared ./shared
COPY services ./services
COPY deploy ./deploy
COPY --from=vendor /vendor/node_modules/jsqr/dist/jsQR.js ./node_modules/jsqr/dist/jsQR.js
RUN pip install --no-deps . \
 && useradd --system --uid 10001 --no-create-home mkutano

USER mkutano
EXPOSE 8005

HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('CONSOLE_HTTP_PORT', '8005') + '/health/ready', timeout=2)"]

CMD ["python", "-m", "services.console"]
