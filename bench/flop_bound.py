#!/usr/bin/env python
"""How fast the embedding model could run here at best: the arithmetic that a question
and a first XQuAD build need, against the speed of this machine's float32 products.

    .venv/bin/python bench/flop_bound.py          # ~15 s; writes bench/flop_bound.json

Issue 14 asks for a warm question in ≤ 5 ms and a first build of XQuAD's corpus at
≥ 40 passages/s on 2 cores. It also asks for unchanged vectors (cosine ≥ 0.9999), and
int8 arithmetic does not give that (``bench/embed_levers.json``; ``accuracy_level=4``:
0.99985). So the model's products stay float32. This script gives the floor that sets.

* *Arithmetic.* Per token, one encoder layer does 2·(4h² + 2hf) floating-point operations
  in its products (query, key, value, output; the two feed-forward ones), and attention
  over n tokens adds 4nh. Layer count, h and f come from the model's ``config.json``.
  Softmax, normalisation, GELU, pooling and tokenising are left out, so the floor is low.
* *Texts.* They are what qabot embeds, with the model's prompts and qabot's own tokenizer:
  - the dev questions (``tests/data/dev_questions.jsonl``);
  - for a build of XQuAD's corpus (``../shared/bench/xquad/corpus``), each passage's
    indexed text, each sentence, and the reference questions used for calibration.
* *Machine.* NumPy's float32 matrix products (OpenBLAS, every core), timed at the model's
  three product shapes, h×4h, 4h×h and h×h (e.g. 384×1536, 1536×384, 384×384). They are
  timed for the rows of a median question, of a median passage, and for 4,096 rows, where
  they run fastest (the machine's practical peak: the best of 3 medians of 20 runs; the
  others are medians of 200).

The floor is the arithmetic at that peak: a bound no float32 engine beats by much. Small
products run well below the peak, so the speed at a question's rows is reported too. Beside
it, the same run embeds each dev question as ``Embedder.embed_query`` does (uncached), and
asks it of an index of the bundled corpus (``Engine.ask``): what qabot takes today.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from perf_common import DEV_QUESTIONS, TARGETS, XQUAD, git_state, machine  # noqa: E402

OUT = ROOT / "bench" / "flop_bound.json"
#: Rows at which the products run fastest here (a batch of long passages).
PEAK_ROWS = 4096


def product_flops(tokens: int, layers: int, hidden: int, ffn: int) -> tuple[float, float]:
    """(matrix products, attention) floating-point operations of one text of ``tokens``."""
    products = 2 * layers * (4 * hidden * hidden + 2 * hidden * ffn) * tokens
    attention = 4 * layers * tokens * tokens * hidden
    return float(products), float(attention)


def gflops(rows: int, hidden: int, ffn: int, repeats: int = 200) -> float:
    """Float32 GFLOP/s of NumPy's products at the model's three shapes for ``rows`` tokens."""
    rng = np.random.default_rng(0)
    shapes = [(hidden, ffn), (ffn, hidden), (hidden, hidden)]
    pairs = [
        (rng.random((rows, k), dtype=np.float32), rng.random((k, n), dtype=np.float32))
        for k, n in shapes
    ]
    flops = sum(2 * rows * k * n for k, n in shapes)
    for a, b in pairs * 10:  # warm up
        a @ b
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for a, b in pairs:
            a @ b
        times.append(time.perf_counter() - started)
    return flops / float(np.median(times)) / 1e9


def question_ms(questions: list[str], warm_up: list[str]) -> dict[str, float]:
    """p50 of embedding one of ``questions`` (as ``Embedder.embed_query`` does when it is
    not cached), and of the whole ``Engine.ask`` over the bundled corpus, in ms. Each
    question is asked once, after ``warm_up`` (other questions: none of ours is cached)."""
    from index.build import build_index
    from index.retrieval.engine import Engine
    from qabot.settings import Settings

    settings = Settings.from_env()
    with tempfile.TemporaryDirectory(prefix="qabot-flop-") as folder:
        build_index(settings.corpus_dir, Path(folder), settings.model_source)
        engine = Engine.load(Path(folder), settings.model_source)
        for question in warm_up:
            engine.ask(question)
        embed, ask = [], []
        for question in questions:
            started = time.perf_counter()
            engine.embedder.embed_queries([question])
            embed.append(time.perf_counter() - started)
            started = time.perf_counter()
            engine.ask(question)
            ask.append(time.perf_counter() - started)
    return {"embed_p50_ms": round(float(np.median(embed)) * 1000, 2),
            "ask_p50_ms": round(float(np.median(ask)) * 1000, 2)}


def xquad_build_texts(max_article_bytes: int) -> tuple[list[str], list[str], list[str]]:
    """Passages, sentences and reference questions: what a build of XQuAD's corpus embeds
    (see :func:`index.build.build_index`), prompts aside."""
    from corpus import load_corpus
    from index.calibration import reference_questions
    from index.store.generations import passage_sentences

    corpus = load_corpus(XQUAD / "corpus", max_article_bytes)
    passages = [p.indexed_text for p in corpus.passages]
    sentences = [
        corpus.passages[pid].text[start:end]
        for pid, start, end in passage_sentences(corpus.passages).tolist()
    ]
    return passages, sentences, reference_questions()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)

    from index.embedding.onnx_encoder import onnx_pipeline
    from index.embedding.tokenizer import load_tokenizer
    from qabot.settings import Settings

    settings = Settings.from_env()
    folder = settings.model_source.folder  # QABOT_MODEL_DIR
    config = json.loads((folder / "config.json").read_text())
    layers, hidden, ffn = config["num_hidden_layers"], config["hidden_size"], config["intermediate_size"]
    pipeline = onnx_pipeline(folder)
    tokenizer = load_tokenizer(folder, pipeline.max_seq_length)

    def tokens(texts: list[str], prompt: str) -> np.ndarray:
        prefix = pipeline.prompts.get(prompt, "")
        return np.array([len(ids) for ids in tokenizer.encode([prefix + t for t in texts])])

    def flops(lengths: np.ndarray) -> tuple[float, float]:
        parts = np.array([product_flops(int(n), layers, hidden, ffn) for n in lengths])
        return float(parts[:, 0].sum()), float(parts[:, 1].sum())

    questions = [json.loads(line)["question"] for line in DEV_QUESTIONS.read_text().splitlines() if line.strip()]
    question_tokens = tokens(questions, "query")
    passages, sentences, references = xquad_build_texts(settings.max_article_bytes)
    passage_tokens = tokens(passages, "document")
    build_tokens = np.concatenate([passage_tokens, tokens(sentences, "document"), tokens(references, "query")])

    question_rows, passage_rows = int(np.median(question_tokens)), int(np.median(passage_tokens))
    speed = {
        "question": gflops(question_rows, hidden, ffn),
        "passage": gflops(passage_rows, hidden, ffn),
        "peak": max(gflops(PEAK_ROWS, hidden, ffn, repeats=20) for _ in range(3)),
    }
    one_question = sum(product_flops(question_rows, layers, hidden, ffn))
    build_flops = sum(flops(build_tokens))
    passages_only = sum(flops(passage_tokens))
    build_floor_s = build_flops / (speed["peak"] * 1e9)
    timed = question_ms(questions, warm_up=references[:100])
    result = {
        "git": git_state(),
        "machine": machine(),
        "model": {"folder": str(folder), "layers": layers, "hidden": hidden, "ffn": ffn},
        "gflops_measured": {
            f"{question_rows} rows (a median question)": round(speed["question"], 1),
            f"{passage_rows} rows (a median passage)": round(speed["passage"], 1),
            f"{PEAK_ROWS} rows (peak)": round(speed["peak"], 1),
        },
        "question": {
            "dev_questions": len(questions),
            "median_tokens": question_rows,
            "gflop": round(one_question / 1e9, 3),
            "floor_ms_at_peak": round(one_question / speed["peak"] / 1e6, 2),
            "products_ms_at_question_rows": round(one_question / speed["question"] / 1e6, 2),
            "embed_query_p50_ms": timed["embed_p50_ms"],
            "engine_ask_p50_ms": timed["ask_p50_ms"],
            "target_ms_whole_question": TARGETS["warm_p50_ms"],
        },
        "xquad_build": {
            "passages": len(passages),
            "sentences": len(sentences),
            "reference_questions": len(references),
            "tokens": int(build_tokens.sum()),
            "median_passage_tokens": passage_rows,
            "tflop": round(build_flops / 1e12, 2),
            "floor_s_at_peak": round(build_floor_s, 1),
            "ceiling_passages_per_s": round(len(passages) / build_floor_s, 1),
            "target_passages_per_s": TARGETS["build_pps"],
            "gflops_needed_for_target": round(build_flops / (len(passages) / TARGETS["build_pps"]) / 1e9),
            "gflops_needed_passages_only": round(passages_only / (len(passages) / TARGETS["build_pps"]) / 1e9),
        },
    }
    args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps({k: result[k] for k in ("gflops_measured", "question", "xquad_build")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
