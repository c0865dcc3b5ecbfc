"""Loss curves from a run's metrics.csv: a PNG with matplotlib (optional), or text in a terminal."""
from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from . import checkpoint as ckpt
from .errors import CharrnnError
from .fileio import write_file
from .rundir import METRICS

LN2 = math.log(2)
# matplotlib's formats, to name a wrong suffix even where matplotlib is not installed
IMAGE_FORMATS = ("eps", "jpeg", "jpg", "pdf", "pgf", "png", "ps", "raw", "rgba", "svg", "svgz",
                 "tif", "tiff", "webp")


def read_metrics(run_dir) -> dict[str, np.ndarray]:
    """Characters seen, train and validation bits per char from run_dir/metrics.csv.

    Returns arrays "chars", "train_bpc" (per step, smoothed over 1% of the run) and
    "val_chars", "val_bpc" (at each validation), and "skipped": how many rows could not be read
    (a row cut short by a kill, a damaged line); those are left out.
    """
    run_dir = Path(run_dir)
    path = run_dir / "metrics.csv"
    if not path.exists():
        raise CharrnnError(f"{run_dir}: no metrics.csv here; give a run directory written by "
                           "`charrnn train`")
    rows, skipped = _read_rows(path)
    if not rows:
        raise CharrnnError(f"{path}: no training steps logged yet")
    per_step = _chars_per_step(run_dir)
    step = np.array([s for s, _, _ in rows])
    train = np.array([t for _, t, _ in rows]) / LN2
    k = max(1, len(train) // 100)
    smooth = np.convolve(train, np.ones(k) / k, mode="valid")
    val = [(s, v / LN2) for s, _, v in rows if v is not None]
    return {"chars": step[k - 1:] * per_step, "train_bpc": smooth,
            "val_chars": np.array([s for s, _ in val]) * per_step,
            "val_bpc": np.array([v for _, v in val]), "skipped": skipped}


def _read_rows(path: Path) -> tuple[list, int]:
    """[(step, train_loss, val_loss or None)] from a metrics log, and the number of rows that
    could not be read."""
    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as f:
            lines = [line.replace("\0", "") for line in f]
    except IsADirectoryError:
        raise CharrnnError(f"{path} is a directory, not a metrics log") from None
    except OSError as e:
        raise CharrnnError(f"cannot read {path}: {e.strerror or e}") from None
    table = list(csv.reader(lines))
    if not table or tuple(table[0]) != METRICS:
        raise CharrnnError(f"{path}: not a charrnn metrics log (its first line should be "
                           f"{','.join(METRICS)})")
    rows, skipped = [], 0
    for r in table[1:]:
        try:
            assert len(r) == len(METRICS)
            step, train, val = int(r[0]), float(r[2]), float(r[3]) if r[3] else None
            assert math.isfinite(train)  # a diverged step (nan, inf) has no point to plot
            rows.append((step, train, val if val is not None and math.isfinite(val) else None))
        except (AssertionError, ValueError):
            skipped += 1
    return rows, skipped


def _chars_per_step(run_dir: Path) -> float:
    """Characters per step: batch x window, or the average so far in records mode (whose
    batches differ in length)."""
    for name in ("last.npz", "best.npz"):
        if (run_dir / name).is_file():
            r = ckpt.read(run_dir / name)
            if r.train.records and r.progress.step:
                return r.progress.chars_seen / r.progress.step
            return r.train.batch_size * r.train.seq_len
    raise CharrnnError(f"{run_dir}: no last.npz to read the batch shape from")


def plot_png(run_dir, out, metrics: dict | None = None) -> None:
    """Write an image of training and validation bits per char against characters seen: PNG,
    or the format out's suffix names (.pdf, .svg, ...)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        suffix = Path(out).suffix.lower().lstrip(".") or "png"
        if suffix not in IMAGE_FORMATS:
            raise CharrnnError(f"cannot write {out}: .{suffix} is not an image format; use .png, "
                               ".svg or .pdf (without -o, a text plot is shown)") from None
        raise CharrnnError(f"plotting to a .{suffix} file needs matplotlib: pip install "
                           "'charrnn[plot]' (without -o, a text plot is shown instead)") from None
    fmt = _image_format(out, plt)
    m = metrics or read_metrics(run_dir)
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    ax.plot(m["chars"], m["train_bpc"], lw=1, label="train (smoothed)")
    if len(m["val_bpc"]):
        ax.plot(m["val_chars"], m["val_bpc"], "o-", ms=3, label="validation")
    ax.set_xlabel("characters seen")
    ax.set_ylabel("bits per character")
    ax.set_title(f"charrnn: {Path(run_dir).name}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    try:
        write_file(out, lambda f: fig.savefig(f, format=fmt))
    finally:
        plt.close(fig)


def _image_format(out, plt) -> str:
    """The image format named by the output's suffix (png when it has none)."""
    suffix = Path(out).suffix.lower().lstrip(".") or "png"
    known = plt.figure().canvas.get_supported_filetypes()
    plt.close("all")
    if suffix not in known:
        raise CharrnnError(f"cannot write {out}: .{suffix} is not an image format matplotlib "
                           f"writes; use one of {', '.join('.' + k for k in sorted(known))}")
    return suffix


def plot_text(run_dir, width: int = 64, height: int = 16, metrics: dict | None = None) -> str:
    """A plain-text plot: '.' training (smoothed), 'o' validation; y in bits per char."""
    m = metrics or read_metrics(run_dir)
    xs = np.concatenate([m["chars"], m["val_chars"]])
    ys = np.concatenate([m["train_bpc"], m["val_bpc"]])
    x0, x1 = xs.min(), max(xs.max(), xs.min() + 1)
    y0, y1 = ys.min(), max(ys.max(), ys.min() + 1e-6)
    grid = [[" "] * width for _ in range(height)]

    def put(x, y, ch):
        c = int((x - x0) / (x1 - x0) * (width - 1))
        r = height - 1 - int((y - y0) / (y1 - y0) * (height - 1))
        if grid[r][c] != "o":
            grid[r][c] = ch

    for x, y in zip(m["chars"], m["train_bpc"]):
        put(x, y, ".")
    for x, y in zip(m["val_chars"], m["val_bpc"]):
        put(x, y, "o")
    lines = [f"{y1 - (y1 - y0) * i / (height - 1):6.2f} |" + "".join(row)
             for i, row in enumerate(grid)]
    lines.append(" " * 7 + "+" + "-" * width)
    lines.append(" " * 8 + f"{x0:,.0f}".ljust(width - 12) + f"{x1:,.0f}".rjust(12))
    lines.append(" " * 8 + "characters seen; bits per char: '.' train (smoothed), 'o' validation")
    return "\n".join(lines)
