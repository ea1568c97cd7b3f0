"""Settings are read once and checked at start: a bad value is one clear error, never ignored."""

from __future__ import annotations

import dataclasses

import pytest

from qabot.errors import QabotError
from qabot.settings import Settings


@pytest.mark.parametrize("value", ["abc", "12,abc", "12, 34x"])
def test_admin_ids_that_are_not_numbers_are_refused(monkeypatch, value):
    monkeypatch.setenv("QABOT_ADMIN_IDS", value)
    with pytest.raises(QabotError, match="QABOT_ADMIN_IDS must be comma-separated"):
        Settings.from_env()


def test_admin_ids_are_read_with_commas_semicolons_and_spaces(monkeypatch):
    monkeypatch.setenv("QABOT_ADMIN_IDS", " 12, 34;56 ,")
    assert Settings.from_env().admin_ids == {12, 34, 56}


@pytest.mark.parametrize(("retriever", "value"), [("hybrid", "5"), ("dense", "-0.2"), ("hybrid", "1.5")])
def test_a_min_score_outside_the_retrievers_scale_is_refused(monkeypatch, retriever, value):
    monkeypatch.setenv("QABOT_RETRIEVER", retriever)
    monkeypatch.setenv("QABOT_MIN_SCORE", value)
    with pytest.raises(QabotError, match="QABOT_MIN_SCORE must be between 0 and 1"):
        Settings.from_env()


def test_a_min_score_is_checked_against_the_retriever_chosen_on_the_command_line(monkeypatch):
    monkeypatch.setenv("QABOT_RETRIEVER", "lexical")
    monkeypatch.setenv("QABOT_MIN_SCORE", "5")  # a BM25 score: fine for lexical
    settings = Settings.from_env()
    assert settings.min_score == 5.0
    with pytest.raises(QabotError, match="for the hybrid retriever"):
        dataclasses.replace(settings, retriever="hybrid")


def test_the_article_size_limit_is_read_and_checked(monkeypatch):
    monkeypatch.setenv("QABOT_MAX_ARTICLE_MB", "0.5")
    assert Settings.from_env().max_article_mb == 0.5
    monkeypatch.setenv("QABOT_MAX_ARTICLE_MB", "0")
    with pytest.raises(QabotError, match="QABOT_MAX_ARTICLE_MB must be above 0"):
        Settings.from_env()


def test_the_bots_database_lives_beside_the_index_unless_named(monkeypatch, tmp_path):
    monkeypatch.setenv("QABOT_INDEX_DIR", str(tmp_path / "volume" / "index"))
    assert Settings.from_env().database_path == tmp_path / "volume" / "qabot.db"
    monkeypatch.setenv("QABOT_DATABASE", str(tmp_path / "elsewhere.sqlite"))
    assert Settings.from_env().database_path == tmp_path / "elsewhere.sqlite"


def test_a_postgresql_database_url_is_read_checked_and_never_shown_with_its_password(monkeypatch):
    monkeypatch.setenv("QABOT_DATABASE_URL", "postgresql://qabot:pw@db:5432/qabot")
    settings = Settings.from_env()
    assert settings.database_address == "postgresql+psycopg://qabot:pw@db:5432/qabot"
    assert settings.database_label == "postgresql://qabot:***@db:5432/qabot"
    assert "pw" not in repr(settings)
    monkeypatch.setenv("QABOT_DATABASE_URL", "mysql://root:pw@db/qabot")
    with pytest.raises(QabotError, match="QABOT_DATABASE_URL must be a PostgreSQL URL") as caught:
        Settings.from_env()
    assert "pw" not in str(caught.value)


def test_webhook_mode_needs_a_secret_and_a_listen_address_it_can_use(monkeypatch):
    monkeypatch.setenv("QABOT_WEBHOOK_URL", "https://bot.example.com/telegram")
    with pytest.raises(QabotError, match="needs QABOT_WEBHOOK_SECRET"):
        Settings.from_env()
    monkeypatch.setenv("QABOT_WEBHOOK_SECRET", "abc_DEF-123")
    monkeypatch.setenv("QABOT_WEBHOOK_LISTEN", "127.0.0.1:9000")
    settings = Settings.from_env()
    assert settings.webhook_listen == ("127.0.0.1", 9000) and "abc_DEF" not in repr(settings)
    assert Settings().webhook_listen == ("0.0.0.0", 8443)
    for wrong, message in [("QABOT_WEBHOOK_LISTEN", "host:port"), ("QABOT_WEBHOOK_URL", "public URL"),
                           ("QABOT_WEBHOOK_SECRET", "QABOT_WEBHOOK_SECRET")]:
        with monkeypatch.context() as patch:
            patch.setenv(wrong, {"QABOT_WEBHOOK_LISTEN": "9000", "QABOT_WEBHOOK_URL": "bot.example.com",
                                 "QABOT_WEBHOOK_SECRET": "has space"}[wrong])
            with pytest.raises(QabotError, match=message):
                Settings.from_env()
