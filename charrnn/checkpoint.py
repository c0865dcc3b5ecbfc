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
import zipfile
from dataclasses import asdict, dataclass, field

import numpy as np

from .cells import num_params
from .config import ModelConfig, TrainConfig, from_dict, to_dict
from .errors import CharrnnError
from .fileio import write_file

FORMAT_VERSION = 1
ARRAYS = ("params", "opt_a", "opt_b", "state_h", "state_c")


@dataclass(frozen=True)
class Progress:
    """Where a run is: what the checkpoint's "progress" section holds."""

    step: int = 0
    epoch: float = 0.0
    window: int = 0
    chars_seen: int = 0
    seconds: float = 0.0
    best_val_loss: float | None = None  # None until the first validation
    last_val_loss: float | None = None
    best_step: int = 0
    since_best: int = 0  # validations in a row without a new best (--patience)
    plan: tuple[int, int] | None = None  # --lr-schedule auto: decay from step, to zero at step


@dataclass(frozen=True)
class Record:
    """A checkpoint, typed: what train writes and resumes from, and what info and load read.

    The arrays (ARRAYS) are the flat parameters, the optimizer moments and the carried state.
    """

    model: ModelConfig
    train: TrainConfig
    vocab: list
    encoding: str
    progress: Progress
    optimizer_kind: str
    optimizer_steps: int
    rng: dict  # numpy PCG64 state
    corpus: dict  # path, chars, hash (and records: their count)
    arrays: dict = field(repr=False)
    raw: dict = field(default=None, repr=False, compare=False)  # the metadata as read

    def meta(self) -> dict:
        """The metadata as JSON-ready sections (the file format)."""
        p = asdict(self.progress)
        p["plan"] = list(self.progress.plan) if self.progress.plan else None
        return {"model": to_dict(self.model), "train": to_dict(self.train), "vocab": self.vocab,
                "encoding": self.encoding, "progress": p,
                "optimizer": {"kind": self.optimizer_kind, "step_count": self.optimizer_steps},
                "rng": self.rng, "corpus": self.corpus}

    @classmethod
    def from_meta(cls, meta: dict, arrays: dict) -> Record:
        """A validated checkpoint's sections as a Record (fields newer than the file default)."""
        known = {f for f in Progress.__dataclass_fields__}
        p = {k: v for k, v in meta["progress"].items() if k in known}
        if p.get("plan") is not None:
            p["plan"] = tuple(p["plan"])
        train = {"init": "pytorch", **meta["train"]}  # runs from before --init started so
        return cls(from_dict(ModelConfig, meta["model"]), from_dict(TrainConfig, train),
                   list(meta["vocab"]), meta["encoding"], Progress(**p),
                   meta["optimizer"]["kind"], meta["optimizer"]["step_count"], meta["rng"],
                   meta["corpus"], arrays, meta)


def write(path, record: Record) -> None:
    """save() for a Record."""
    save(path, record.meta(), record.arrays)


def read(path) -> Record:
    """load() as a Record."""
    meta, arrays = load(path)
    return Record.from_meta(meta, arrays)


def save(path, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    """Write a checkpoint atomically and durably (fileio.write_file): at any instant `path`
    holds either the old checkpoint or the new one, whole. On failure the old checkpoint is
    untouched and a CharrnnError says why."""
    meta = dict(meta, format="charrnn", format_version=FORMAT_VERSION)
    blob = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    kept = "the previous checkpoint is kept" if os.path.isfile(path) else "nothing was written"
    write_file(path, lambda f: np.savez(f, meta=blob, **arrays),
               hint=f"{kept} (free some space or choose another --checkpoint-dir)")


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
    except OSError as e:
        if e.errno is not None and e.strerror:  # the system refused (permissions, I/O error)
            raise CharrnnError(f"cannot read {path}: {e.strerror}") from None
        raise _unreadable(path, e) from None
    except (zipfile.BadZipFile, ValueError, EOFError, KeyError, UnicodeDecodeError) as e:
        raise _unreadable(path, e) from None
    _validate(path, meta, arrays)
    return meta, arrays


def is_checkpoint(path) -> bool:
    """Whether path is a file `charrnn train` wrote (an .npz whose metadata says so). Only a
    regular file can be one (a device such as /dev/full is never read)."""
    if not os.path.isfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as z:
            if "meta.npy" not in z.namelist():
                return False
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(z["meta"].tobytes().decode("utf-8"))
    except (OSError, zipfile.BadZipFile, ValueError, KeyError, EOFError, UnicodeDecodeError):
        return False
    return isinstance(meta, dict) and meta.get("format") == "charrnn"


def check_output(out, source=None, force: bool = False) -> None:
    """Refuse to write a command's output (export, sample -o) over the checkpoint it reads, or
    over any charrnn checkpoint unless force: either would destroy a trained model."""
    out = os.fspath(out)
    if source is not None and os.path.exists(out) and os.path.exists(source) \
            and os.path.samefile(out, source):
        raise CharrnnError(f"{out} is the checkpoint being read: writing there would destroy "
                           "it; choose another output path")
    if not force and is_checkpoint(out):
        raise CharrnnError(f"{out} is a charrnn checkpoint: writing there would destroy it; "
                           "choose another output path, or pass --force to replace it")


def _unreadable(path: str, e: Exception) -> CharrnnError:
    return CharrnnError(f"{path}: not a readable charrnn checkpoint (truncated or corrupt: "
                        f"{type(e).__name__}); use another checkpoint, e.g. last.npz or best.npz "
                        "from the run directory")


# The metadata's sections and the types a reader relies on (progress' losses may be null).
SECTIONS = {"model": dict, "train": dict, "vocab": list, "encoding": str, "progress": dict,
            "optimizer": dict, "rng": dict, "corpus": dict}
NUMBER = (int, float)
PROGRESS = {"step": int, "chars_seen": int, "seconds": NUMBER, "epoch": NUMBER,
            "best_val_loss": (*NUMBER, type(None)), "last_val_loss": (*NUMBER, type(None))}


def _validate(path: str, meta, arrays: dict) -> None:
    if not isinstance(meta, dict) or meta.get("format") != "charrnn":
        raise CharrnnError(f"{path}: not a charrnn checkpoint")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CharrnnError(f"{path}: checkpoint format {version} is newer than this charrnn "
                           f"understands ({FORMAT_VERSION}); upgrade charrnn")
    _validate_sections(path, meta)
    missing = [k for k in ARRAYS if k not in arrays]
    if missing:
        raise CharrnnError(f"{path}: checkpoint is missing {', '.join(missing)}")
    try:
        cfg = from_dict(ModelConfig, meta["model"])
        from_dict(TrainConfig, meta["train"])
    except (KeyError, TypeError, CharrnnError) as e:  # the config's own check names an option
        raise CharrnnError(f"{path}: damaged checkpoint metadata (the model or training options: "
                           f"{e}); use another checkpoint, e.g. best.npz or a numbered one") \
            from None
    if len(meta["vocab"]) != cfg.vocab_size:
        raise CharrnnError(f"{path}: vocabulary has {len(meta['vocab'])} characters but "
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


def _validate_sections(path: str, meta: dict) -> None:
    """Every section a reader uses is there with its type: a file that is almost a checkpoint
    (edited by hand, written by another tool) is refused here in one line, never later."""
    def bad(what):
        return CharrnnError(f"{path}: damaged checkpoint metadata ({what}); use another "
                            "checkpoint, e.g. best.npz or a numbered one")

    for key, kind in SECTIONS.items():
        if not isinstance(meta.get(key), kind):
            raise bad(f"no valid {key!r} section")
    # one character each; records models also hold END, the empty string
    if not all(isinstance(c, str) and len(c) <= 1 for c in meta["vocab"]):
        raise bad("the vocabulary is not a list of characters")
    for key, kind in PROGRESS.items():
        value = meta["progress"].get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise bad(f"progress.{key} is {value!r}")
    if meta["progress"]["step"] < 0 or meta["progress"]["chars_seen"] < 0:
        raise bad("negative step")
    opt, rng = meta["optimizer"], meta["rng"]
    if not isinstance(opt.get("kind"), str) or not isinstance(opt.get("step_count"), int):
        raise bad("optimizer")
    if rng.get("bit_generator") != "PCG64" or not isinstance(rng.get("state"), dict):
        raise bad("rng")
