#!/usr/bin/env python
"""How fast the embedding model could run here at best: the arithmetic that a question
and a first XQuAD build need, against the speed of this machine's float32 products.

    .venv/bin/python bench/flop_bound.py          # ~1 min; writes bench/flop_bound.json

Issue 14 asks for a warm question in ≤ 5 ms and a first build of XQuAD's corpus at
≥ 40 passages/s on 2 cores. It also asks for unchanged vectors (cosine ≥ 0.9999), and
int8 arithmetic does not give that (``bench/embed_levers.json``; ``accuracy_level=4``:
0.99985). So the model's products stay float32. This script measures how far float32
products can go here.

* *Arithmetic.* Per token, one encoder layer does 2·(4h² + 2hf) floating-point operations
  in its products (query, key, value, output; the two feed-forward ones), and attention
  over n tokens adds 4nh. Layer count, h and f come from the model's ``config.json``.
  Softmax, normalisation, GELU, pooling and tokenising are left out, so the floor is low.
* *Texts.* They are what qabot embeds, with the model's prompts and qabot's own tokenizer:
  - the dev questions (``tests/data/dev_questions.jsonl``);
  - for a build of XQuAD's corpus (``../shared/bench/xquad/corpus``), each passage's
    indexed text, each sentence, and the reference questions used for calibration.
* *Machine.* The model's products alone, as one ONNX graph run by ONNX Runtime (the engine
  qabot uses; its MLAS kernels use AVX-512 where the CPU has it): per layer four h×h
  products and the h×4h and 4h×h ones, float32 weights, every layer in turn. It is timed
  for the rows of a median question, a median passage and 512 rows (a full forward pass
  of a build), median of 100 runs after 10 to warm up. NumPy's products
  (OpenBLAS) are timed at the same shapes for comparison: on this Zen 5 CPU they reach
  about half of MLAS's speed, so they would set a floor twice too high.

The floor of a build is its arithmetic at the graph's best speed (512 rows): there the
products are bound by arithmetic. A question's 19 rows are bound by reading the weights
instead: the graph reads all 85 MB of float32 weights per pass (~20 GB/s in 4.4 ms), so
its time at a question's rows is the floor of a question with float32 weights only. qabot runs the 4-bit blocks
(10.6 MB), whose products cost more arithmetic per weight, so that time is no floor for
them. Beside these, the same run embeds each dev question as ``Embedder.embed_query`` does
(uncached), asks it of an index of the bundled corpus (``Engine.ask``), and builds XQuAD's
index from scratch: what qabot takes today.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from perf_common import DEV_QUESTIONS, TARGETS, XQUAD, git_state, machine  # noqa: E402

OUT = ROOT / "bench" / "flop_bound.json"
#: Token positions in one forward pass of a build (index.embedding.onnx_encoder.BATCH_TOKENS).
BATCH_ROWS = 512


def product_flops(tokens: int, layers: int, hidden: int, ffn: int) -> tuple[float, float]:
    """(matrix products, attention) floating-point operations of one text of ``tokens``."""
    products = 2 * layers * (4 * hidden * hidden + 2 * hidden * ffn) * tokens
    attention = 4 * layers * tokens * tokens * hidden
    return float(products), float(attention)


def products_graph(rows: int, layers: int, hidden: int, ffn: int):
    """An ONNX Runtime session computing the model's products alone for ``rows`` tokens."""
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    shapes = [(hidden, hidden)] * 4 + [(hidden, ffn), (ffn, hidden)]
    nodes, weights, x = [], [], "x"
    for layer in range(layers):
        for number, (k, n) in enumerate(shapes):
            name = f"l{layer}.{number}"
            # Scaled so that values keep their size through the 72 products: neither
            # overflow nor subnormal numbers (which a CPU multiplies slowly) come up.
            weight = rng.standard_normal((k, n), dtype=np.float32) / np.float32(np.sqrt(k))
            weights.append(numpy_helper.from_array(weight, name))
            output = "y" if (layer, number) == (layers - 1, len(shapes) - 1) else f"{name}.out"
            nodes.append(helper.make_node("MatMul", [x, name], [output]))
            x = output
    graph = helper.make_graph(
        nodes, "products",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [rows, hidden])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [rows, hidden])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = min(os.cpu_count() or 1, 4)  # as qabot's encoder
    return onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def products_ms(rows: int, layers: int, hidden: int, ffn: int, repeats: int = 100) -> float:
    """Median ms of one forward pass's products for ``rows`` tokens in ONNX Runtime."""
    session = products_graph(rows, layers, hidden, ffn)
    x = np.random.default_rng(1).standard_normal((rows, hidden), dtype=np.float32)
    for _ in range(10):
        session.run(None, {"x": x})
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        session.run(None, {"x": x})
        times.append(time.perf_counter() - started)
    return float(np.median(times)) * 1000


def numpy_gflops(rows: int, hidden: int, ffn: int, repeats: int = 100) -> float:
    """Float32 GFLOP/s of NumPy's products at the model's shapes for ``rows`` tokens."""
    rng = np.random.default_rng(0)
    shapes = [(hidden, ffn), (ffn, hidden), (hidden, hidden)]
    pairs = [(rng.random((rows, k), dtype=np.float32), rng.random((k, n), dtype=np.float32)) for k, n in shapes]
    for a, b in pairs * 10:
        a @ b
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for a, b in pairs:
            a @ b
        times.append(time.perf_counter() - started)
    return sum(2 * rows * k * n for k, n in shapes) / float(np.median(times)) / 1e9


def build_s(max_article_bytes: int) -> float:
    """Seconds of a build of XQuAD's corpus into an empty folder (every text embedded)."""
    from index.build import build_index
    from qabot.settings import Settings

    with tempfile.TemporaryDirectory(prefix="qabot-flop-") as folder:
        started = time.perf_counter()
        build_index(XQUAD / "corpus", Path(folder), Settings.from_env().model_source,
                    max_article_bytes=max_article_bytes)
        return time.perf_counter() - started


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
    per_pass = product_flops(1, layers, hidden, ffn)[0]  # products per token
    graph_ms = {rows: products_ms(rows, layers, hidden, ffn) for rows in (question_rows, passage_rows, BATCH_ROWS)}
    graph_gflops = {rows: per_pass * rows / (ms * 1e6) for rows, ms in graph_ms.items()}
    peak = max(graph_gflops.values())
    one_question = sum(product_flops(question_rows, layers, hidden, ffn))
    build_flops = sum(flops(build_tokens))
    passages_only = sum(flops(passage_tokens))
    build_floor_s = build_flops / (peak * 1e9)
    timed = question_ms(questions, warm_up=references[:100])
    built_s = build_s(settings.max_article_bytes)
    result = {
        "git": git_state(),
        "machine": machine(),
        "model": {"folder": str(folder), "layers": layers, "hidden": hidden, "ffn": ffn},
        "products_gflops": {
            f"{rows} rows": {
                "onnxruntime": round(graph_gflops[rows], 1),
                "numpy": round(numpy_gflops(rows, hidden, ffn), 1),
            }
            for rows in graph_ms
        },
        "question": {
            "dev_questions": len(questions),
            "median_tokens": question_rows,
            "gflop": round(one_question / 1e9, 3),
            "products_ms": round(graph_ms[question_rows], 2),
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
            "peak_gflops": round(peak, 1),
            "floor_s_at_peak": round(build_floor_s, 1),
            "ceiling_passages_per_s": round(len(passages) / build_floor_s, 1),
            "target_passages_per_s": TARGETS["build_pps"],
            "gflops_needed_for_target": round(build_flops / (len(passages) / TARGETS["build_pps"]) / 1e9),
            "gflops_needed_passages_only": round(passages_only / (len(passages) / TARGETS["build_pps"]) / 1e9),
            "build_s_now": round(built_s, 1),
            "passages_per_s_now": round(len(passages) / built_s, 1),
        },
    }
    args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps({k: result[k] for k in ("products_gflops", "question", "xquad_build")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
