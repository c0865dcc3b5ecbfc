"""Configs: every option declared once, with what resuming may do with it."""
import dataclasses

import pytest

from charrnn.config import (MUST_MATCH, RESUME_POLICIES, STOPPING, TrainConfig, flag,
                            resume_config)
from charrnn.errors import CharrnnError


def test_every_training_option_declares_its_resume_policy():
    for f in dataclasses.fields(TrainConfig):
        assert f.metadata.get("on_resume") in RESUME_POLICIES, f.name


def test_resume_keeps_must_match_options_and_names_each_difference():
    saved = TrainConfig(seq_len=20, lr=1e-3)
    with pytest.raises(CharrnnError) as e:
        resume_config(saved, {"seq_len": 30, "lr": 2e-3, "eval_every": 5})
    assert str(e.value).startswith("cannot resume with different options: --seq-len 20 -> 30; "
                                   "--lr 0.001 -> 0.002 (")
    must = [flag(f) for f in dataclasses.fields(TrainConfig)
            if f.metadata["on_resume"] == MUST_MATCH]
    assert "--seed" in must and "--batch-size" in must and "--eval-every" not in must
    assert resume_config(saved, {"seq_len": 20}) == saved  # the same value is no difference


def test_a_stopping_option_on_resume_replaces_all_saved_ones():
    saved = TrainConfig(time_limit=60.0, epochs=3.0)
    stopping = {f.name for f in dataclasses.fields(TrainConfig)
                if f.metadata["on_resume"] == STOPPING}
    assert stopping == {"max_steps", "epochs", "time_limit"}
    got = resume_config(saved, {"max_steps": 100, "eval_every": 7})
    assert (got.max_steps, got.epochs, got.time_limit, got.eval_every) == (100, None, None, 7)
    assert resume_config(saved, {"keep": 2}).time_limit == 60.0  # others leave them alone
    # train() passes a whole config: the result is that config
    whole = dataclasses.replace(saved, epochs=None, max_steps=5, patience=3)
    assert resume_config(saved, dataclasses.asdict(whole)) == whole
