"""The typed checkpoint record: what train writes is what read returns; older files still load."""
import numpy as np

from charrnn import checkpoint as ckpt
from charrnn.config import TrainConfig


def test_record_round_trip(trained, tmp_path):
    r = ckpt.read(trained / "last.npz")
    assert isinstance(r.train, TrainConfig) and r.progress.step == 30
    assert r.progress.best_step in (10, 20, 30) and r.optimizer_steps == 30
    ckpt.write(tmp_path / "copy.npz", r)
    again = ckpt.read(tmp_path / "copy.npz")
    assert again.meta() == r.meta()
    for k in ckpt.ARRAYS:
        np.testing.assert_array_equal(again.arrays[k], r.arrays[k])
    raw = {k: v for k, v in r.raw.items() if k not in ("format", "format_version")}
    assert r.meta() == raw  # every section and field of the file is in the record


def test_a_checkpoint_from_before_the_newer_fields_loads(trained, tmp_path):
    meta, arrays = ckpt.load(trained / "last.npz")
    for k in ("best_step", "since_best", "plan"):  # written by older versions: absent
        del meta["progress"][k]
    for k in ("patience", "records", "auto"):
        del meta["train"][k]
    ckpt.save(tmp_path / "old.npz", meta, arrays)
    r = ckpt.read(tmp_path / "old.npz")
    assert (r.progress.best_step, r.progress.since_best, r.progress.plan) == (0, 0, None)
    assert (r.train.patience, r.train.records, r.train.auto) == (0, False, False)
