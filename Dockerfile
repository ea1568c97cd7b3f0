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
    HOME=/tmp

WORKDIR /opt/qabot

# torch first, from the CPU-only index: the default wheel pulls a multi-GB CUDA build.
# Keep the version in step with the pin in pyproject.toml.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

COPY pyproject.toml README.md ./
COPY qabot ./qabot
COPY corpus ./corpus
COPY index ./index
COPY bot ./bot
RUN pip install . && qabot model prepare

RUN useradd --system --no-create-home qabot && mkdir -p /data/index && chown -R qabot /data
USER qabot
VOLUME /data

# Build the index on the first start (an empty volume), then long-poll Telegram.
CMD ["sh", "-c", "qabot index build --if-stale && exec qabot run"]
