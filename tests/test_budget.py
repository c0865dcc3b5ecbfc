"""Training on a budget: the schedule that ends with --time-limit, and --patience."""
import csv
import math
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

import charrnn
from charrnn import group as group_mod
from charrnn.cli import cli
from charrnn.config import TrainConfig
from charrnn.optim import learning_rate
from charrnn.run import REPLAN_AT

SMALL = {"hidden": 8, "layers": 1, "progress": False}


def test_schedule_shapes():
    auto = TrainConfig(lr=1.0)
    assert auto.lr_schedule == "auto"
    assert learning_rate(auto, 500, 3.0, None) == 1.0  # no plan yet: constant
    plan = (10, 110)
    got = [learning_rate(auto, s, 0, None, plan) for s in (0, 10, 60, 109, 110, 200)]
    assert got == pytest.approx([1.0, 1.0, 0.5, 0.01, 0.0, 0.0])
    linear = TrainConfig(lr=2.0, lr_schedule="linear")
    assert [learning_rate(linear, s, 0, 100) for s in (0, 50, 100)] == pytest.approx([2, 1, 0])
    assert learning_rate(linear, 50, 0, None) == 2.0  # no step budget: constant
    warm = TrainConfig(lr=1.0, warmup_steps=4)
    assert learning_rate(warm, 1, 0, None, (0, 100)) == pytest.approx(0.5 * 0.99)


def _rows(run_dir):
    with open(run_dir / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_time_limit_plans_the_decay_to_zero_and_resume_keeps_the_plan(tiny_corpus, tmp_path):
    # compile first (a cold numba cache, as in CI, would spend the whole budget compiling)
    charrnn.train(tiny_corpus, TrainConfig(batch_size=2, seq_len=8, max_steps=1),
                  checkpoint_dir=tmp_path / "warm", **SMALL)
    cfg = TrainConfig(batch_size=2, seq_len=8, time_limit=3.0, eval_every=50, lr=3e-3)
    r = charrnn.train(tiny_corpus, cfg, checkpoint_dir=tmp_path / "a", **SMALL)
    meta = charrnn.load(tmp_path / "a" / "last.npz").meta
    start, end = meta["progress"]["plan"]
    assert start < end and r.step <= end
    rows = _rows(tmp_path / "a")
    rates = [float(row["lr"]) for row in rows]
    first = next(i for i, x in enumerate(rates) if x < cfg.lr)  # the first plan's first step
    assert first > 10 and set(rates[:first]) == {cfg.lr}  # constant while it measures
    # then straight down: measured again at REPLAN_AT's fractions of the budget, each plan
    # going on from the rate of the last, so the rate never goes up
    assert all(b <= a * (1 + 1e-5) for a, b in zip(rates[first:], rates[first + 1:]))
    after = REPLAN_AT[-1] + 0.02  # past the last re-plan
    late = [int(row["step"]) for row in rows if float(row["seconds"]) > after * cfg.time_limit]
    assert late
    for step in late:  # the last plan is the schedule's function of the step
        assert rates[step - 1] == pytest.approx(learning_rate(cfg, step - 1, 0, None,
                                                              (start, end)), rel=1e-5)
    if r.stopped == "finished":  # reached the planned end before the time ran out
        assert r.step == end and float(rows[-1]["lr"]) < 0.01 * cfg.lr
    # resumed with the same budget: the saved plan, not a new one
    r2 = charrnn.train(tiny_corpus, None, checkpoint_dir=tmp_path / "a", resume=True, **SMALL)
    assert charrnn.load(tmp_path / "a" / "last.npz").meta["progress"]["plan"] == [start, end]
    assert r2.step <= end
    # a new budget on resume plans afresh, from where the run is
    cfg2 = TrainConfig(batch_size=2, seq_len=8, time_limit=2.5, eval_every=50)
    r3 = charrnn.train(tiny_corpus, cfg2, checkpoint_dir=tmp_path / "b", **SMALL,
                       resume=tmp_path / "a" / "last.npz")
    new = charrnn.load(tmp_path / "b" / "last.npz").meta["progress"]["plan"]
    assert new[0] > r2.step and r3.step <= new[1]


def test_decay_from_holds_the_rate_for_that_fraction_of_the_budget(tiny_corpus, tmp_path):
    charrnn.train(tiny_corpus, TrainConfig(batch_size=2, seq_len=8, max_steps=1),
                  checkpoint_dir=tmp_path / "warm", **SMALL)
    # (the first plan comes after 2 s of measuring, so the hold must reach past that)
    cfg = TrainConfig(batch_size=2, seq_len=8, time_limit=3.0, eval_every=50, decay_from=0.8,
                      lr=3e-3)
    charrnn.train(tiny_corpus, cfg, checkpoint_dir=tmp_path / "a", **SMALL)
    rows = _rows(tmp_path / "a")
    rates = [float(row["lr"]) for row in rows]
    first = next(i for i, x in enumerate(rates) if x < cfg.lr)
    held = float(rows[first - 1]["seconds"])  # the last step at the full rate
    # held until about 80% of the budget (re-planned at three quarters with the speed measured
    # then; the machine's speed moves, hence the margin), then straight down and never up
    assert 0.7 * cfg.time_limit < held < 0.9 * cfg.time_limit, held
    assert all(b <= a * (1 + 1e-5) for a, b in zip(rates[first:], rates[first + 1:]))
    start, end = charrnn.load(tmp_path / "a" / "last.npz").meta["progress"]["plan"]
    assert start < end
    r = CliRunner().invoke(cli, ["train", str(tiny_corpus), "--decay-from", "1"])
    assert r.exit_code == 2 and "--decay-from must be in [0, 1), got 1.0" in r.stderr


def test_constant_schedule_makes_no_plan(tiny_corpus, tmp_path):
    cfg = TrainConfig(batch_size=2, seq_len=8, time_limit=2.5, lr_schedule="constant", lr=3e-3)
    charrnn.train(tiny_corpus, cfg, checkpoint_dir=tmp_path / "a", **SMALL)
    assert charrnn.load(tmp_path / "a" / "last.npz").meta["progress"]["plan"] is None
    assert {float(r["lr"]) for r in _rows(tmp_path / "a")} == {cfg.lr}


@pytest.fixture
def scripted_validation(monkeypatch):
    """Validation losses in a given order, one per validation."""
    def script(losses):
        it = iter(losses)
        monkeypatch.setattr(group_mod, "evaluate_ids",
                            lambda *a, **k: SimpleNamespace(nats_per_char=next(it)))
    return script


def test_patience_stops_and_best_is_the_result(tiny_corpus, tmp_path, scripted_validation):
    scripted_validation([3.0, 2.0, 2.5, 2.1, 2.2, 1.0, 1.0])
    cfg = TrainConfig(batch_size=2, seq_len=8, max_steps=7, eval_every=1, patience=3)
    r = charrnn.train(tiny_corpus, cfg, checkpoint_dir=tmp_path / "a", **SMALL)
    assert (r.stopped, r.step, r.best_step, r.best_val_loss) == ("stopped early", 5, 2, 2.0)
    assert charrnn.load(tmp_path / "a").meta["progress"]["step"] == 2  # best.npz
    assert charrnn.load(tmp_path / "a" / "last.npz").meta["progress"]["since_best"] == 3


def test_patience_counts_across_resume(tiny_corpus, tmp_path, scripted_validation):
    scripted_validation([3.0, 2.0, 2.5, 2.6, 2.7])
    cfg = TrainConfig(batch_size=2, seq_len=8, max_steps=3, eval_every=1, patience=2)
    charrnn.train(tiny_corpus, cfg, checkpoint_dir=tmp_path / "a", **SMALL)  # ends: 1 since best
    cfg = TrainConfig(batch_size=2, seq_len=8, max_steps=9, eval_every=1, patience=2)
    r = charrnn.train(tiny_corpus, cfg, checkpoint_dir=tmp_path / "a", resume=True, **SMALL)
    assert (r.stopped, r.step, r.best_step) == ("stopped early", 4, 2)


def test_patience_from_the_cli(tiny_corpus, tmp_path, scripted_validation):
    scripted_validation([3.0, 3.5, 3.6, 3.7])
    r = CliRunner().invoke(cli, ["train", str(tiny_corpus), "--hidden", "8", "--layers", "1",
                                 "--batch-size", "2", "--seq-len", "8", "--eval-every", "1",
                                 "--patience", "2", "--max-steps", "9",
                                 "--checkpoint-dir", str(tmp_path / "a")])
    assert r.exit_code == 0, r.output
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("stopped early at step 3 (no better validation within --patience")
    assert "at step 1," in last and "best.npz" in last
    r = CliRunner().invoke(cli, ["train", str(tiny_corpus), "--patience", "-1"])
    assert r.exit_code == 2 and "--patience must be >= 0" in r.stderr


def test_auto_rule_picks_the_largest_model_the_budget_reads_often_enough(monkeypatch):
    from charrnn import budget
    speeds = {128: 100_000, 192: 50_000, 256: 30_000, 320: 20_000, 384: 15_000, 512: 8_000}

    def speed(cell, layers, hidden, *rest):
        return speeds[hidden]
    short = budget.choose(1_000_000, 300, 65, 50, 50, speed=speed)
    # 2x128 (27 passes) is the only one past 12, but 2x256 would train on 8.1 M characters in
    # 300 s at 30,000 chars/s, so the defaults train 2x320: not smaller than that; 5 passes
    assert (short.hidden, short.dropout) == (320, budget.PASSES_DROPOUT)
    assert "lstm 2x320 trains 20,000 chars/s here, 5 passes" in short.reason
    assert "dropout 0.2: 5 passes" in short.reason
    assert "the defaults' size for this budget: 2x128, the largest with at least 12" in \
        short.reason
    minute = budget.choose(1_000_000, 60, 65, 50, 50, speed=speed)
    assert (minute.hidden, minute.dropout) == (192, 0.0)  # 2x256: 1.6 M characters, 192's 2.7
    long = budget.choose(1_000_000, 1800, 65, 50, 50, speed=speed)
    assert (long.hidden, long.dropout) == (512, budget.DROPOUT)  # 13 passes; 3.3 M > 2 x 1 M
    assert long.weight_decay == budget.WEIGHT_DECAY > 0 and short.weight_decay == 0.0
    assert "lstm 2x512 trains 8,000 chars/s here, 13 passes" in long.reason
    assert "AdamW weight decay 0.1: 3,3" in long.reason
    # 13 passes, 3.3 M parameters for 2 M characters: the passes' dropout, not the larger one
    assert budget.choose(2_000_000, 3600, 65, 50, 50, speed=speed).dropout == \
        budget.PASSES_DROPOUT
    tiny = budget.choose(10 ** 9, 600, 65, 50, 50, speed=speed)
    assert (tiny.hidden, tiny.dropout) == (320, 0.0)  # none reaches 12 passes: the smallest,
    # 2x128, then the defaults' 2x320 (2x256 would train on 16 M characters), reading the text
    # far less than DROPOUT_FROM_PASSES times
    slower = {**speeds, 256: 15_000}
    slow = budget.choose(1_000_000, 300, 65, 50, 50,
                         speed=lambda cell, layers, hidden, *rest: slower[hidden])
    assert slow.hidden == 256  # 2x256: 4.05 M characters in 300 s, below LARGE_FROM_CHARS
    # 2x320 (1.34 M parameters) would be large for 500,000 training characters: the defaults'
    # 2x256 (0.87 M), with the passes' dropout (16 passes)
    assert budget.choose(500_000, 300, 65, 50, 50, speed=speed).hidden == 256
    monkeypatch.setattr(budget, "default_hidden", lambda chars: 0)  # without the floor
    assert budget.choose(1_000_000, 300, 65, 50, 50, speed=speed).hidden == 128


def test_dropout_by_passes_starts_at_its_threshold():
    from charrnn import budget
    assert budget.dropout_for(budget.DROPOUT_FROM_PASSES - 0.01) == 0.0
    assert budget.dropout_for(budget.DROPOUT_FROM_PASSES) == budget.PASSES_DROPOUT > 0
    assert budget.planned_passes(300, 40_000, 1_000_000) == pytest.approx(10.8)  # 90% trains


@pytest.mark.parametrize("speed,given,want", [(200_000, {}, 0.2), (2_000, {}, 0.0),
                                              (200_000, {"max_steps": 3}, 0.0),
                                              (200_000, {"dropout": 0.0}, 0.0),
                                              (2_000, {"dropout": 0.4}, 0.4)])
def test_a_time_limit_run_without_dropout_takes_it_from_its_passes(tiny_corpus, tmp_path,
                                                                   monkeypatch, speed, given,
                                                                   want):
    from charrnn import budget
    monkeypatch.setattr(budget, "measure", lambda *a: speed)  # scripted: not this CPU's
    dropout = given.pop("dropout", None)
    # 5,400 training characters: 200,000 chars/s read them 33 times in the second, 2,000 once
    # in three (--max-steps 3 of 4 x 10 characters: 0.02 passes)
    cfg = TrainConfig(batch_size=4, seq_len=10, time_limit=1.0, eval_every=50, **given)
    charrnn.train(tiny_corpus, cfg, hidden=8, layers=1, dropout=dropout,
                  checkpoint_dir=tmp_path / "run", progress=False)
    assert charrnn.load(tmp_path / "run").cfg.dropout == want


def test_auto_from_the_api_and_resume_keeps_its_choice(tiny_corpus, tmp_path, monkeypatch):
    from charrnn import budget
    monkeypatch.setattr(budget, "CANDIDATES", [("lstm", 1, 8), ("lstm", 1, 64)])
    # scripted speeds: the verdict must not depend on this CPU or a cold numba cache (a real
    # probe chose hidden 8 on a slower Xeon); the real probe is checked in test_probe_measures
    probed = []
    monkeypatch.setattr(budget, "measure", lambda cell, layers, hidden, *rest:
                        probed.append(hidden) or 1e9 / hidden)
    monkeypatch.setattr(budget, "default_hidden", lambda chars: 0)  # no floor: tiny models
    cfg = TrainConfig(batch_size=2, seq_len=8, time_limit=1.0, auto=True)
    r = charrnn.train(tiny_corpus, cfg, checkpoint_dir=tmp_path / "a", progress=False)
    assert (r.model.cfg.layers, r.model.cfg.hidden) == (1, 64)  # a tiny corpus: the largest
    meta = charrnn.load(tmp_path / "a" / "last.npz").meta
    assert meta["train"]["auto"] is True and meta["model"]["hidden"] == 64
    # 1x64 (25,000 parameters) is large for the tiny corpus (5,400 training characters): dropout and AdamW decay
    assert meta["model"]["dropout"] == budget.DROPOUT
    assert (meta["train"]["optimizer"], meta["train"]["weight_decay"]) == \
        ("adamw", budget.WEIGHT_DECAY)
    assert probed == [8, 64, 256]  # the candidates, then the defaults' model for the floor
    monkeypatch.setattr(budget, "choose", None)  # resume must not choose again
    r2 = charrnn.train(tiny_corpus, None, checkpoint_dir=tmp_path / "a", resume=True,
                       progress=False)
    assert r2.model.cfg.hidden == 64
    meta = charrnn.load(tmp_path / "a" / "last.npz").meta
    assert (meta["train"]["optimizer"], meta["train"]["weight_decay"]) == \
        ("adamw", budget.WEIGHT_DECAY)  # the saved update goes on


def test_auto_keeps_an_optimizer_the_run_chose(tiny_corpus, tmp_path, monkeypatch):
    from charrnn import budget
    monkeypatch.setattr(budget, "CANDIDATES", [("lstm", 1, 8)])
    monkeypatch.setattr(budget, "measure", lambda *a: 1e6)
    monkeypatch.setattr(budget, "default_hidden", lambda chars: 0)  # no floor: a tiny model
    cfg = TrainConfig(batch_size=2, seq_len=8, time_limit=0.5, auto=True, optimizer="sgd")
    charrnn.train(tiny_corpus, cfg, checkpoint_dir=tmp_path / "s", progress=False)
    meta = charrnn.load(tmp_path / "s" / "last.npz").meta
    assert (meta["train"]["optimizer"], meta["train"]["weight_decay"]) == ("sgd", 0.0)


def test_probe_measures_a_positive_speed():
    from charrnn import budget
    cps = budget.measure("lstm", 1, 8, 10, 2, 4)
    assert math.isfinite(cps) and cps > 0  # a real measurement of this machine, no verdict on its speed


def test_auto_cli_errors(tiny_corpus):
    r = CliRunner().invoke(cli, ["train", str(tiny_corpus), "--auto"])
    assert r.exit_code == 2 and "--auto needs --time-limit" in r.stderr
    r = CliRunner().invoke(cli, ["train", str(tiny_corpus), "--auto", "--time-limit", "5",
                                 "--hidden", "64"])
    assert r.exit_code == 2 and "--auto chooses the model; leave out --hidden" in r.stderr


def test_the_plan_keeps_a_margin_of_the_rest_and_of_the_budget():
    from charrnn.run import plan_seconds
    assert plan_seconds(291.0, 300.0) == pytest.approx(0.97 * 291.0)  # the first plan: 3% of it
    assert plan_seconds(30.0, 300.0) == pytest.approx(27.0)  # the re-plan at 90%: 1% of 300 s
    assert plan_seconds(2.0, 300.0) == 0.0 and plan_seconds(-1.0, 300.0) == 0.0


def test_steps_that_fit_counts_the_validations_among_them():
    """The plan's end: the most steps whose time and validations fit, against trying every n;
    a validation just before the end is paid whole (the 50 MB / 60 s run that overran)."""
    import random

    from charrnn.run import steps_that_fit

    def brute(seconds, step, step_s, eval_s, every):
        fits = [n for n in range(1, int(seconds / step_s) + 2)
                if n * step_s + ((step + n) // every - step // every) * eval_s <= seconds]
        return max(fits, default=1)

    rng = random.Random(0)
    for _ in range(2000):
        case = (rng.uniform(0, 50), rng.randrange(1000), rng.uniform(0.01, 0.5),
                rng.uniform(0, 5), rng.choice([1, 7, 50, 200]))
        assert steps_that_fit(*case) == brute(*case), case
    # 15 s left at step 450, 80 ms a step, 2 s a validation every 200: the one at 600 counts
    assert steps_that_fit(15.0, 450, 0.08, 2.0, 200) == 162
    assert steps_that_fit(15.0, 450, 0.08, 0.0, 200) == 187


def test_default_hidden_shrinks_below_its_threshold_and_grows_from_the_other():
    from charrnn import budget
    from charrnn.cells import num_params
    from charrnn.config import ModelConfig
    assert budget.default_hidden(budget.SMALL_BELOW_CHARS) == ModelConfig.hidden
    assert budget.default_hidden(budget.SMALL_BELOW_CHARS - 1) == budget.SMALL_HIDDEN
    assert budget.default_hidden(budget.LARGE_FROM_CHARS - 1) == ModelConfig.hidden
    assert budget.default_hidden(budget.LARGE_FROM_CHARS) == budget.LARGE_HIDDEN
    assert budget.SMALL_HIDDEN < ModelConfig.hidden < budget.LARGE_HIDDEN
    # the larger size only on a text it is not large for: LSTM 2x320 over 65 characters has
    # 1,337,985 parameters, large (DROPOUT_RATIO = 2) for 668,992 characters or fewer
    params = num_params(ModelConfig(65, "lstm", budget.LARGE_HIDDEN, 2))
    assert params == 1_337_985
    many = budget.LARGE_FROM_CHARS
    assert budget.hidden_for(many, params // 2 + 1, 65) == budget.LARGE_HIDDEN
    assert budget.hidden_for(many, params // 2 - 1, 65) == ModelConfig.hidden
    assert budget.hidden_for(budget.SMALL_BELOW_CHARS - 1, 10, 65) == budget.SMALL_HIDDEN
    assert budget.planned_chars(60, 30_000) == pytest.approx(1_620_000)  # 90% trains


@pytest.mark.parametrize("speed,given,want", [(1_000, {}, 8), (1e9, {}, 256),
                                              (1_000, {"hidden": 16}, 16),
                                              (1_000, {"max_steps": 2}, 256),
                                              (1_000, {"time_limit": None, "max_steps": 2},
                                               256)])
def test_a_time_limit_run_without_hidden_takes_a_smaller_model_for_a_short_budget(
        tiny_corpus, tmp_path, monkeypatch, speed, given, want):
    from charrnn import budget
    monkeypatch.setattr(budget, "SMALL_HIDDEN", 8)  # small, to keep the test fast
    monkeypatch.setattr(budget, "measure", lambda *a: speed)  # scripted: not this CPU's
    hidden = given.pop("hidden", None)
    # 1,000 chars/s: 900 characters in the second, below SMALL_BELOW_CHARS; 1e9: far above
    # LARGE_FROM_CHARS, but LSTM 1x320 would be large for the tiny text; --max-steps 2 (80 characters) stops the run first, so the budget's speed does not matter
    cfg = TrainConfig(**{"batch_size": 4, "seq_len": 10, "time_limit": 1.0, "eval_every": 50,
                         **given})
    charrnn.train(tiny_corpus, cfg, hidden=hidden, layers=1, checkpoint_dir=tmp_path / "run",
                  progress=False)
    assert charrnn.load(tmp_path / "run").cfg.hidden == want


def test_the_budget_s_hidden_size_from_the_cli_and_on_resume(tiny_corpus, tmp_path,
                                                             monkeypatch):
    from charrnn import budget
    monkeypatch.setattr(budget, "SMALL_HIDDEN", 8)
    monkeypatch.setattr(budget, "measure", lambda *a: 1_000)  # scripted: a short budget
    run = str(tmp_path / "run")
    args = ["train", str(tiny_corpus), "--time-limit", "0.5", "--layers", "1", "--batch-size",
            "4", "--seq-len", "10", "--checkpoint-dir", run]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    assert "charrnn: hidden 8: at 1,000 chars/s here 1x256 would train on 450 characters" \
        in r.stderr and "--hidden to choose" in r.stderr
    assert charrnn.load(run).cfg.hidden == 8
    monkeypatch.setattr(budget, "SMALL_HIDDEN", 16)  # the rule changed: the run keeps its own
    r = CliRunner().invoke(cli, ["train", "--resume", "--checkpoint-dir", run,
                                 "--time-limit", "1"])
    assert r.exit_code == 0, r.output
    assert charrnn.load(run).cfg.hidden == 8 and "hidden 16" not in r.stderr
    r = CliRunner().invoke(cli, args[:-1] + [str(tmp_path / "given"), "--hidden", "256"])
    assert r.exit_code == 0, r.output
    assert "charrnn: hidden" not in r.stderr
    assert charrnn.load(tmp_path / "given").cfg.hidden == 256


def test_a_long_budget_without_hidden_takes_the_larger_model_and_says_so(tiny_corpus,
                                                                         tmp_path, monkeypatch):
    from charrnn import budget
    monkeypatch.setattr(budget, "LARGE_HIDDEN", 12)  # one the tiny text is not large for
    monkeypatch.setattr(budget, "measure", lambda *a: 1e7)  # scripted: a fast machine
    run = str(tmp_path / "run")
    r = CliRunner().invoke(cli, ["train", str(tiny_corpus), "--time-limit", "0.5", "--layers",
                                 "1", "--batch-size", "4", "--seq-len", "10",
                                 "--checkpoint-dir", run])
    assert r.exit_code == 0, r.output
    assert "charrnn: hidden" not in r.stderr  # 4.5 M characters in 0.5 s: below the line
    assert charrnn.load(run).cfg.hidden == 256
    r = CliRunner().invoke(cli, ["train", str(tiny_corpus), "--time-limit", "0.6", "--layers",
                                 "1", "--batch-size", "4", "--seq-len", "10",
                                 "--checkpoint-dir", run + "2"])
    assert r.exit_code == 0, r.output
    assert "charrnn: hidden 12: at 10,000,000 chars/s here 1x256 would train on 5,400,000 " \
        "characters in 0.6 s, at least 5,000,000 (--hidden to choose)" in r.stderr
    assert charrnn.load(run + "2").cfg.hidden == 12


def test_batch_for_takes_the_small_batch_where_it_trains_as_fast(monkeypatch):
    from charrnn import budget
    from charrnn.config import BATCH_SIZE
    monkeypatch.setattr(budget, "BATCH_ROUNDS", 2)  # the tables below: 2 rounds
    calls = []

    def scripted(table):  # rows -> its speeds, round by round
        def speed(rows):
            calls.append(rows)
            return table[rows].pop(0)
        return speed
    small = budget.SMALL_BATCH
    c = budget.batch_for(scripted({BATCH_SIZE: [900, 1000], small: [1000, 950]}))
    assert calls == [BATCH_SIZE, small] * budget.BATCH_ROUNDS  # alternating
    assert (c.batch_size, c.chars_per_second) == (small, 1000)  # the best of each round
    assert f"{small} rows train 1,000 chars/s here, {BATCH_SIZE} rows 1,000: as fast" in c.reason
    c = budget.batch_for(scripted({BATCH_SIZE: [1000, 1000], small: [840, 800]}))
    assert (c.batch_size, c.chars_per_second) == (BATCH_SIZE, 1000)  # 840 < 0.85 x 1000
    assert f"slower than {budget.SAME_SPEED:g} of {BATCH_SIZE}'s speed" in c.reason
    c = budget.batch_for(scripted({BATCH_SIZE: [1000, 1000], small: [850, 10]}))
    assert c.batch_size == small  # exactly SAME_SPEED is as fast


def scripted_rows(monkeypatch, small_speed):
    """budget.measure scripted by rows: SMALL_BATCH at small_speed, any other at 1e6 chars/s."""
    from charrnn import budget
    monkeypatch.setattr(budget, "measure", lambda cell, layers, hidden, vocab, rows, *rest:
                        small_speed if rows == budget.SMALL_BATCH else 1e6)


@pytest.mark.parametrize("small_speed,given,want", [
    (1e6, {}, 32), (8e5, {}, 50), (8.5e5, {}, 32), (1e6, {"batch_size": 4}, 4), (1e6, {"max_steps": 2}, 50),
    (1e6, {"epochs": 1}, 50), (1e6, {"time_limit": None, "max_steps": 2}, 50),
    (1e6, {"records": True}, 50)])
def test_a_time_limit_run_without_batch_size_takes_fewer_rows_where_they_train_as_fast(
        tiny_corpus, tmp_path, monkeypatch, small_speed, given, want):
    scripted_rows(monkeypatch, small_speed)
    cfg = TrainConfig(**{"seq_len": 10, "time_limit": 0.5, "eval_every": 50, **given})
    charrnn.train(tiny_corpus, cfg, hidden=8, layers=1, checkpoint_dir=tmp_path / "run",
                  progress=False)
    assert charrnn.load(tmp_path / "run" / "last.npz").meta["train"]["batch_size"] == want


def test_the_budget_s_batch_from_the_cli_and_on_resume(tiny_corpus, tmp_path, monkeypatch):
    scripted_rows(monkeypatch, 1e6)  # as fast: 32 rows
    run = tmp_path / "run"
    args = ["train", str(tiny_corpus), "--time-limit", "0.5", "--hidden", "8", "--layers", "1",
            "--seq-len", "10", "--checkpoint-dir", str(run)]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    assert "charrnn: batch size 32: 32 rows train 1,000,000 chars/s here, 50 rows 1,000,000: " \
        "as fast, and more steps for the same characters (--batch-size to choose)" in r.stderr
    assert charrnn.load(run / "last.npz").meta["train"]["batch_size"] == 32
    scripted_rows(monkeypatch, 1.0)  # the machine changed: the run keeps its own rows
    r = CliRunner().invoke(cli, ["train", "--resume", "--checkpoint-dir", str(run),
                                 "--time-limit", "1"])
    assert r.exit_code == 0, r.output
    assert "batch size" not in r.stderr
    assert charrnn.load(run / "last.npz").meta["train"]["batch_size"] == 32
    charrnn.train(tiny_corpus, TrainConfig(seq_len=10, time_limit=0.3, eval_every=50),
                  checkpoint_dir=run, resume=True, progress=False)  # batch_size None: the run's
    assert charrnn.load(run / "last.npz").meta["train"]["batch_size"] == 32
    r = CliRunner().invoke(cli, ["train", "--resume", "--checkpoint-dir", str(run),
                                 "--batch-size", "50"])
    assert r.exit_code == 2 and "--batch-size 32 -> 50" in r.output


def test_a_time_limit_run_of_a_model_large_for_its_text_is_regularised(tiny_corpus, tmp_path,
                                                                      monkeypatch):
    from charrnn import budget
    monkeypatch.setattr(budget, "measure", lambda *a: 2_000)  # scripted: few passes
    # 1x64 (25,000 parameters) on 5,400 training characters: large, whatever the passes
    cfg = TrainConfig(batch_size=4, seq_len=10, time_limit=0.5, eval_every=50)
    charrnn.train(tiny_corpus, cfg, hidden=64, layers=1, checkpoint_dir=tmp_path / "a",
                  progress=False)
    meta = charrnn.load(tmp_path / "a" / "last.npz").meta
    assert meta["model"]["dropout"] == budget.DROPOUT
    assert (meta["train"]["optimizer"], meta["train"]["weight_decay"]) == \
        ("adamw", budget.WEIGHT_DECAY)
    r = CliRunner().invoke(cli, ["train", str(tiny_corpus), "--time-limit", "0.5", "--hidden",
                                 "64", "--layers", "1", "--batch-size", "4", "--seq-len", "10",
                                 "--weight-decay", "0.01", "--checkpoint-dir",
                                 str(tmp_path / "b")])
    assert r.exit_code == 0, r.output
    assert "AdamW's decay not applied: --optimizer adam --weight-decay 0.01 given" in r.stderr
    meta = charrnn.load(tmp_path / "b" / "last.npz").meta
    assert (meta["train"]["optimizer"], meta["train"]["weight_decay"]) == ("adam", 0.01)


def test_validation_text_is_sized_to_the_budget():
    from charrnn import budget
    assert budget.val_max_chars(TrainConfig()) == budget.VAL_MAX_CHARS  # no --time-limit
    assert budget.val_max_chars(TrainConfig(time_limit=60, val_max_chars=5_000)) == 5_000
    assert budget.VAL_SHARE == 0.05 and budget.VAL_COST == 0.4  # the numbers below
    # 50 x 50 x 200 = 500,000 trained characters per validation: 65,789 keeps a twentieth
    rows = {"time_limit": 60, "batch_size": 50}  # the batch resolved, as train() resolves it
    assert budget.val_max_chars(TrainConfig(**rows)) == budget.VAL_MIN_CHARS
    assert budget.val_max_chars(TrainConfig(**rows, eval_every=2000)) == 657_894
    assert budget.val_max_chars(TrainConfig(**rows, eval_every=10000)) == budget.VAL_MAX_CHARS
    # 32 rows: 320,000 per validation, 42,105 (still VAL_MIN_CHARS); at 2000 steps 421,052
    assert budget.val_max_chars(TrainConfig(**{**rows, "batch_size": 32}, eval_every=2000)) == \
        421_052


def test_validation_comes_less_often_where_the_held_out_text_would_take_more_of_the_budget():
    from charrnn import budget
    from charrnn.config import EVAL_EVERY
    timed = TrainConfig(time_limit=60, batch_size=32)
    # tinyshakespeare's 111,539 held-out characters at 0.4 of a trained one's time, 19 parts
    # training to one validating, 1,600 trained characters a step: 530 steps
    assert budget.eval_every(timed, 111_539) == math.ceil(111_539 * 0.4 * 19 / 1600) == 530
    assert budget.eval_every(TrainConfig(time_limit=60, batch_size=50), 111_539) == 340
    assert budget.eval_every(timed, 10_000) == EVAL_EVERY  # takes less than its share anyway
    assert budget.eval_every(TrainConfig(batch_size=32), 111_539) == EVAL_EVERY  # no budget
    assert budget.eval_every(TrainConfig(time_limit=60, batch_size=32, records=True),
                             111_539) == EVAL_EVERY  # records: their own sample
    assert budget.eval_every(TrainConfig(time_limit=60, batch_size=32, eval_every=7),
                             111_539) == 7  # given


def test_a_time_limit_run_validates_at_the_stretched_interval_and_resume_keeps_it(
        tiny_corpus, tmp_path):
    from charrnn import budget
    d = tmp_path / "a"
    args = ["train", str(tiny_corpus), "--time-limit", "1", "--hidden", "8", "--layers", "1",
            "--batch-size", "2", "--seq-len", "8", "--dropout", "0", "--checkpoint-dir", str(d)]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    held_out = 600  # the tiny corpus's last tenth
    want = math.ceil(held_out * budget.VAL_COST * (1 - budget.VAL_SHARE) / budget.VAL_SHARE / 16)
    assert want > 200
    assert f"validating every {want:,} steps" in r.stderr
    assert charrnn.load(d / "last.npz").meta["train"]["eval_every"] == want
    with open(d / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    validated = [int(r["step"]) for r in rows if r["val_loss"]]
    last = int(rows[-1]["step"])
    assert last > want  # the run got past one interval: the check below means something
    assert validated == [s for s in range(want, last + 1, want)] + ([last] if last % want else [])
    # resumed with a larger budget: the run's own interval (a given one replaces it)
    r = CliRunner().invoke(cli, ["train", str(tiny_corpus), "--checkpoint-dir", str(d),
                                 "--resume", "--time-limit", "3", "--quiet"])
    assert r.exit_code == 0, r.output
    assert charrnn.load(d / "last.npz").meta["train"]["eval_every"] == want
    r = CliRunner().invoke(cli, ["train", str(tiny_corpus), "--checkpoint-dir", str(d),
                                 "--resume", "--time-limit", "3", "--eval-every", "50",
                                 "--quiet"])
    assert r.exit_code == 0, r.output
    assert charrnn.load(d / "last.npz").meta["train"]["eval_every"] == 50


def test_a_time_limit_run_validates_on_a_cut_held_out_text_and_resume_keeps_it(
        tiny_corpus, tmp_path, monkeypatch):
    from charrnn import budget
    monkeypatch.setattr(budget, "VAL_MIN_CHARS", 50)  # the tiny corpus holds 600 held out
    args = ["train", str(tiny_corpus), "--time-limit", "0.5", "--hidden", "8", "--layers", "1",
            "--batch-size", "4", "--seq-len", "10", "--eval-every", "20", "--dropout", "0",
            "--checkpoint-dir", str(tmp_path / "a")]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    want = int(4 * 10 * 20 * budget.VAL_SHARE / (1 - budget.VAL_SHARE) / budget.VAL_COST)
    assert f"validating on the first {want:,} of the 600 held-out characters" in r.stderr
    assert charrnn.load(tmp_path / "a" / "last.npz").meta["train"]["val_max_chars"] == want
    charrnn.train(tiny_corpus, TrainConfig(batch_size=4, seq_len=10, max_steps=1), hidden=8,
                  layers=1, checkpoint_dir=tmp_path / "b", progress=False)  # no --time-limit
    assert charrnn.load(tmp_path / "b" / "last.npz").meta["train"]["val_max_chars"] == \
        budget.VAL_MAX_CHARS
    monkeypatch.setattr(budget, "VAL_MIN_CHARS", 300)  # the rule changed: the run keeps its own
    r = CliRunner().invoke(cli, ["train", str(tiny_corpus), "--checkpoint-dir",
                                 str(tmp_path / "a"), "--resume", "--time-limit", "1"])
    assert r.exit_code == 0, r.output
    assert charrnn.load(tmp_path / "a" / "last.npz").meta["train"]["val_max_chars"] == want


def test_lr_for_takes_the_shortest_measured_budget_at_least_as_long():
    from charrnn import budget
    from charrnn.config import LR
    budgets = [s for s, _ in budget.BUDGET_LR]
    rates = [lr for _, lr in budget.BUDGET_LR]
    assert budgets == sorted(budgets) and rates == sorted(rates, reverse=True) and rates[-1] > LR
    assert budget.lr_for(0.5) == rates[0]
    for (seconds, lr), later in zip(budget.BUDGET_LR, rates[1:] + [LR]):
        assert budget.lr_for(seconds) == lr and budget.lr_for(seconds + 1) == later
    assert budget.lr_for(1800) == LR


@pytest.mark.parametrize("given,model,want", [
    ({}, {}, "budget"), ({"lr": 1e-3}, {}, 1e-3), ({}, {"hidden": 8}, "LR"),
    ({}, {"layers": 1}, "LR"), ({"optimizer": "sgd"}, {}, "LR"), ({"max_steps": 3}, {}, "LR"),
    ({"records": True}, {}, "LR")])
def test_a_short_budget_of_the_defaults_model_takes_a_higher_rate(
        tiny_corpus, tmp_path, monkeypatch, given, model, want):
    from charrnn import budget
    from charrnn.config import LR
    monkeypatch.setattr(budget, "measure", lambda *a: 1e6)  # scripted: no probe
    cfg = TrainConfig(**{"batch_size": 4, "seq_len": 10, "time_limit": 0.3, **given})
    charrnn.train(tiny_corpus, cfg, checkpoint_dir=tmp_path / "run", progress=False, **model)
    got = charrnn.load(tmp_path / "run" / "last.npz").meta["train"]["lr"]
    assert got == {"budget": budget.lr_for(0.3), "LR": LR}.get(want, want)


def test_the_budget_s_rate_from_the_cli_and_on_resume(tiny_corpus, tmp_path, monkeypatch):
    from charrnn import budget
    monkeypatch.setattr(budget, "measure", lambda *a: 1e6)
    run = tmp_path / "run"
    r = CliRunner().invoke(cli, ["train", str(tiny_corpus), "--time-limit", "0.3",
                                 "--batch-size", "4", "--seq-len", "10", "--checkpoint-dir",
                                 str(run)])
    assert r.exit_code == 0, r.output
    lr = budget.lr_for(0.3)
    assert f"charrnn: learning rate {lr:g} for a 0.3 s budget" in r.stderr
    assert charrnn.load(run / "last.npz").meta["train"]["lr"] == lr
    monkeypatch.setattr(budget, "BUDGET_LR", ((10.0, 1e-4),))  # the rule changed: its own
    r = CliRunner().invoke(cli, ["train", "--resume", "--checkpoint-dir", str(run),
                                 "--time-limit", "0.3"])
    assert r.exit_code == 0, r.output
    assert charrnn.load(run / "last.npz").meta["train"]["lr"] == lr
    r = CliRunner().invoke(cli, ["train", "--resume", "--checkpoint-dir", str(run),
                                 "--lr", "3e-3"])
    assert r.exit_code == 2 and f"--lr {lr} -> 0.003" in r.output
