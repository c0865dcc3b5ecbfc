"""Export to PyTorch's state_dict names, so a model moves to torch.nn.RNN/GRU/LSTM + nn.Linear.

Names (k = layer): rnn.weight_ih_l{k} (G*H, D_k), rnn.weight_hh_l{k} (G*H, H),
rnn.bias_ih_l{k} (G*H,), rnn.bias_hh_l{k} (G*H,), decoder.weight (V, H), decoder.bias (V,).
Layer 0 takes the one-hot input, so D_0 = V. Our weights are stored transposed (see model.py).
"""
from __future__ import annotations

import json

import numpy as np

from .cells import CELLS
from .config import ModelConfig, to_dict
from .checkpoint import check_output
from .errors import CharrnnError, check_path
from .fileio import write_file
from .model import Model


def state_dict(model, dtype=np.float32, grads: bool = False) -> dict[str, np.ndarray]:
    """The model's weights (or, with grads=True, their gradients) under PyTorch names and
    layouts, as copies in `dtype`."""
    p = model.g if grads else model.p
    out = {}
    for k in range(model.cfg.layers):
        out[f"rnn.weight_ih_l{k}"] = p[f"l{k}.wx"].T
        out[f"rnn.weight_hh_l{k}"] = p[f"l{k}.wh"].T
        out[f"rnn.bias_ih_l{k}"] = p[f"l{k}.bx"]
        out[f"rnn.bias_hh_l{k}"] = p[f"l{k}.bh"]
    out["decoder.weight"] = p["dec.w"].T
    out["decoder.bias"] = p["dec.b"]
    return {k: np.array(v, dtype=dtype) for k, v in out.items()}


def export(model, path, force: bool = False) -> None:
    """Write state_dict(model) plus `vocab` (JSON list of characters) and `config` (JSON) to an
    .npz at path, atomically. Refuses to write over the checkpoint the model came from, or over
    any charrnn checkpoint unless force."""
    check_path(path, "the export path")
    check_output(path, model.path, force)
    arrays = state_dict(model)
    arrays["vocab"] = np.frombuffer(json.dumps(model.vocab.chars).encode(), np.uint8)
    arrays["config"] = np.frombuffer(json.dumps(to_dict(model.cfg)).encode(), np.uint8)
    if model.vocab.end is not None:  # records model: the end symbol's index ("" in vocab)
        arrays["end_index"] = np.array(model.vocab.end, np.int64)
    write_file(path, lambda f: np.savez(f, **arrays))


def from_state_dict(weights: dict, cell: str, vocab=None, activation: str = "tanh",
                    dtype=np.float32):
    """A Model from PyTorch-named weights (the inverse of state_dict).

    Parameters
    ----------
    weights : dict of name -> array
        rnn.weight_ih_l{k}, rnn.weight_hh_l{k}, rnn.bias_ih_l{k}, rnn.bias_hh_l{k},
        decoder.weight, decoder.bias, as torch's state_dict() gives them (as numpy arrays).
    cell : {"rnn", "gru", "lstm"}
    vocab : Vocab, optional
    """
    V, H = np.shape(weights["decoder.weight"])
    layers = sum(1 for k in weights if k.startswith("rnn.weight_hh_l"))
    if np.shape(weights["rnn.weight_hh_l0"]) != (CELLS[cell].G * H, H):
        raise CharrnnError(f"weights do not fit a {cell} with hidden size {H}")
    m = Model(ModelConfig(V, cell, H, layers, activation=activation), dtype=dtype, vocab=vocab)
    for k in range(layers):
        m.p[f"l{k}.wx"][...] = np.asarray(weights[f"rnn.weight_ih_l{k}"]).T
        m.p[f"l{k}.wh"][...] = np.asarray(weights[f"rnn.weight_hh_l{k}"]).T
        m.p[f"l{k}.bx"][...] = weights[f"rnn.bias_ih_l{k}"]
        m.p[f"l{k}.bh"][...] = weights[f"rnn.bias_hh_l{k}"]
    m.p["dec.w"][...] = np.asarray(weights["decoder.weight"]).T
    m.p["dec.b"][...] = weights["decoder.bias"]
    return m
