"""Loading checkpoints as ready-to-use models, and resolving where a checkpoint is."""
from __future__ import annotations

import functools
import math
import os
from pathlib import Path

from . import checkpoint as ckpt
from .cells import num_params
from .config import to_dict
from .data import END, Vocab
from .errors import CharrnnError, check_path
from .model import Model


def resolve_checkpoint(path=None, runs_root="checkpoints") -> Path:
    """The checkpoint file meant by `path`.

    A file is itself; a run directory means its best.npz (or last.npz if no best yet); None means
    the most recently written checkpoint under `runs_root`.
    """
    if path is not None:
        check_path(path, "checkpoint")
    if path is None:
        root = Path(runs_root)
        found = sorted(root.glob("*/*.npz"), key=os.path.getmtime) if root.is_dir() else []
        if not found:
            raise CharrnnError(f"no checkpoint given and none found under {runs_root}/; "
                               "train one with `charrnn train` or pass a checkpoint path")
        return _prefer_best(found[-1].parent)
    path = Path(path)
    if path.is_dir():
        return _prefer_best(path)
    if not path.exists():
        raise CharrnnError(f"{path}: no such checkpoint file or run directory")
    return path


def _prefer_best(run_dir: Path) -> Path:
    for name in ("best.npz", "last.npz"):
        if (run_dir / name).is_file():
            return run_dir / name
    raise CharrnnError(f"{run_dir}: no best.npz or last.npz in this run directory")


def load(path=None) -> Model:
    """Load a trained model.

    Parameters
    ----------
    path : str or Path, optional
        A checkpoint file, a run directory (its best checkpoint) or None (the newest run under
        checkpoints/).

    Returns
    -------
    Model
        With `.vocab` set, `.record` the typed checkpoint (checkpoint.Record: configs,
        progress, corpus) and `.meta` its metadata as sections of plain JSON values.
    """
    file = resolve_checkpoint(path)
    record = ckpt.read(file)
    model = Model(record.model, params=record.arrays["params"],
                  vocab=Vocab(record.vocab, record.encoding))
    model.record, model.meta, model.path = record, record.raw, file
    if record.train.strategy != "auto":  # the step strategy it trained with: the same bits
        model.strategy = record.train.strategy
    return model


def info(path=None) -> dict:
    """What a checkpoint holds, as a JSON-ready dict: model, size, vocabulary, progress, options.

    Parameters
    ----------
    path : checkpoint file, run directory or None (as for load).
    """
    file = resolve_checkpoint(path)
    r = ckpt.read(file)
    cfg, prog = r.model, r.progress
    best = prog.best_val_loss
    return {
        "checkpoint": str(file), "format_version": r.raw["format_version"], "cell": cfg.cell,
        "layers": cfg.layers, "hidden": cfg.hidden, "dropout": cfg.dropout,
        "activation": cfg.activation, "parameters": num_params(cfg),
        "vocab_size": cfg.vocab_size, "vocab_preview": "".join(r.vocab[:80]),
        "encoding": r.encoding, "steps": prog.step, "epoch": prog.epoch,
        "chars_seen": prog.chars_seen, "train_seconds": prog.seconds, "best_val_loss": best,
        "best_val_bits_per_char": None if best is None else best / math.log(2),
        "best_step": prog.best_step, "corpus": r.corpus.get("path"),
        "train_options": to_dict(r.train), "records": r.train.records,
        "num_records": r.corpus.get("records"),
        "end_index": r.vocab.index(END) if END in r.vocab else None,
    }


def as_model(model) -> Model:
    """A Model as it is; a path (checkpoint file or run directory) loaded; anything else is a
    CharrnnError. Every public function that takes a model takes either."""
    if isinstance(model, Model):
        return model
    if isinstance(model, (str, os.PathLike)):
        return load(model)
    raise CharrnnError(f"expected a charrnn Model or a checkpoint path, got {model!r}")


def taking_a_model(f):
    """f(model, ...) that also accepts a checkpoint path (or run directory) as its model."""
    @functools.wraps(f)
    def wrapper(model, *args, **kwargs):
        return f(as_model(model), *args, **kwargs)
    return wrapper
