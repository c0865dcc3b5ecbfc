"""Checkpoints: one .npz of plain arrays, loadable without pickle, written atomically.

Contents (format version 1):
    meta      uint8 array holding UTF-8 JSON: {"format": "charrnn", "format_version", "model"
              (ModelConfig), "train" (TrainConfig), "vocab" (list of characters), "encoding",
              "progress" (step, epoch, window, chars_seen, seconds, best_val_loss, ...),
              "rng" (numpy PCG64 state), "optimizer" (kind, step_count), "corpus"}
    params    (P,) float32, laid out as model.param_layout
    opt_a     (P,) first optimizer moment (Adam m, SGD momentum, RMSprop square average)
    opt_b     (P,) second optimizer moment (Adam v, RMSprop momentum)
    state_h   (L, B, H) hidden state carried into the next training window
    state_c   (L, B, H) LSTM cell state carried likewise (zeros for the other cells)
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile

import numpy as np

from .cells import num_params
from .config import ModelConfig, from_dict
from .errors import CharrnnError

FORMAT_VERSION = 1
ARRAYS = ("params", "opt_a", "opt_b", "state_h", "state_c")


def save(path, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    """Write a checkpoint atomically and durably.

    The data goes to a temporary file in the same directory, is flushed and fsynced, then renamed
    over `path` and the directory is fsynced: at any instant `path` holds either the old
    checkpoint or the new one, whole. On failure the temporary file is removed, the old
    checkpoint is untouched, and a CharrnnError says why.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    meta = dict(meta, format="charrnn", format_version=FORMAT_VERSION)
    blob = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    tmp = None
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=folder)
        with os.fdopen(fd, "wb") as f:
            np.savez(f, meta=blob, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
        _fsync_dir(folder)
    except OSError as e:
        raise CharrnnError(f"cannot write checkpoint {path}: {e.strerror or e}; "
                           "the previous checkpoint is kept (free some space or choose another "
                           "--checkpoint-dir)") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # some filesystems do not allow opening directories; the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load(path) -> tuple[dict, dict[str, np.ndarray]]:
    """Read and validate a checkpoint; returns (meta, arrays). Never unpickles anything.

    Raises CharrnnError for a missing, truncated, corrupt, foreign or newer-format file, or one
    whose arrays do not match its own configuration.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CharrnnError(f"{path}: no such checkpoint file")
    try:
        with np.load(path, allow_pickle=False) as z:
            if "meta" not in z.files:
                raise CharrnnError(f"{path}: not a charrnn checkpoint (no metadata); "
                                   "give a file written by `charrnn train`")
            meta = json.loads(z["meta"].tobytes().decode("utf-8"))
            arrays = {k: z[k] for k in ARRAYS if k in z.files}
    except CharrnnError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, UnicodeDecodeError) as e:
        raise CharrnnError(f"{path}: not a readable charrnn checkpoint (truncated or corrupt: "
                           f"{type(e).__name__}); use another checkpoint, e.g. last.npz or "
                           "best.npz from the run directory") from None
    _validate(path, meta, arrays)
    return meta, arrays


def _validate(path: str, meta: dict, arrays: dict) -> None:
    if meta.get("format") != "charrnn":
        raise CharrnnError(f"{path}: not a charrnn checkpoint")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CharrnnError(f"{path}: checkpoint format {version} is newer than this charrnn "
                           f"understands ({FORMAT_VERSION}); upgrade charrnn")
    missing = [k for k in ARRAYS if k not in arrays]
    if missing:
        raise CharrnnError(f"{path}: checkpoint is missing {', '.join(missing)}")
    try:
        cfg = from_dict(ModelConfig, meta["model"])
    except (KeyError, TypeError) as e:
        raise CharrnnError(f"{path}: checkpoint has no valid model configuration ({e})") from None
    if len(meta.get("vocab", [])) != cfg.vocab_size:
        raise CharrnnError(f"{path}: vocabulary has {len(meta.get('vocab', []))} characters but "
                           f"the model expects {cfg.vocab_size}")
    P = num_params(cfg)
    for k in ("params", "opt_a", "opt_b"):
        a = arrays[k]
        if a.shape != (P,) or a.dtype.kind != "f":
            raise CharrnnError(f"{path}: {k} has shape {a.shape} and dtype {a.dtype}, expected "
                               f"({P},) floats for {cfg.cell} {cfg.layers}x{cfg.hidden}")
    if not np.all(np.isfinite(arrays["params"])):
        raise CharrnnError(f"{path}: parameters contain NaN or infinity; use an earlier checkpoint")
    for k in ("state_h", "state_c"):
        a = arrays[k]
        if a.ndim != 3 or a.shape[0] != cfg.layers or a.shape[2] != cfg.hidden:
            raise CharrnnError(f"{path}: {k} has shape {a.shape}, expected "
                               f"({cfg.layers}, batch, {cfg.hidden})")
