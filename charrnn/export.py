"""Export to PyTorch's state_dict names, so a model moves to torch.nn.RNN/GRU/LSTM + nn.Linear.

Names (k = layer): rnn.weight_ih_l{k} (G*H, D_k), rnn.weight_hh_l{k} (G*H, H),
rnn.bias_ih_l{k} (G*H,), rnn.bias_hh_l{k} (G*H,), decoder.weight (V, H), decoder.bias (V,).
Layer 0 takes the one-hot input, so D_0 = V. Our weights are stored transposed (see model.py).
"""
from __future__ import annotations

import json
import os

import numpy as np

from .errors import CharrnnError


def state_dict(model, dtype=np.float32) -> dict[str, np.ndarray]:
    """The model's weights under PyTorch names and layouts (copies in `dtype`)."""
    out = {}
    for k in range(model.cfg.layers):
        out[f"rnn.weight_ih_l{k}"] = model.p[f"l{k}.wx"].T
        out[f"rnn.weight_hh_l{k}"] = model.p[f"l{k}.wh"].T
        out[f"rnn.bias_ih_l{k}"] = model.p[f"l{k}.bx"]
        out[f"rnn.bias_hh_l{k}"] = model.p[f"l{k}.bh"]
    out["decoder.weight"] = model.p["dec.w"].T
    out["decoder.bias"] = model.p["dec.b"]
    return {k: np.array(v, dtype=dtype) for k, v in out.items()}


def export(model, path) -> None:
    """Write state_dict(model) plus `vocab` (JSON list of characters) and `config` (JSON) to an
    .npz at path, atomically."""
    from .config import to_dict
    from .checkpoint import _fsync_dir  # same durability as checkpoints

    path = os.fspath(path)
    arrays = state_dict(model)
    arrays["vocab"] = np.frombuffer(json.dumps(model.vocab.chars).encode(), np.uint8)
    arrays["config"] = np.frombuffer(json.dumps(to_dict(model.cfg)).encode(), np.uint8)
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(os.path.dirname(os.path.abspath(path)))
    except OSError as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise CharrnnError(f"cannot write {path}: {e.strerror or e}") from None
