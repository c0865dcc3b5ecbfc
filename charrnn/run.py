"""One training run once it is set up: the step loop and the concerns beside it.

`Run.steps` is the loop, top to bottom: should we stop? take a step; after it, log, validate,
checkpoint, plan the budget, show progress, sample. Each concern is a short method below it. The
run speaks to its group (group.py): one process, or one rank of an MPI job, through the same
calls. Setup (the corpus, the model, resume) is train.py's.

The run directory's files are described in rundir.py: last.npz is written at every validation,
every --checkpoint-every steps or --checkpoint-interval seconds, on Ctrl-C / SIGTERM and at the
end. Everything needed to continue exactly is in the checkpoint: parameters, optimizer moments and
step count, the carried hidden state, the RNG state and the step (which fixes the epoch and the
window within it).
"""
from __future__ import annotations

import math
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import checkpoint as ckpt
from .errors import CharrnnError
from .model import Model
from .optim import Optimizer, clip_gradients, learning_rate
from .rundir import MetricsLogError, RunDir
from .sample import sample

DEFAULT_EPOCHS = 10


@dataclass
class TrainResult:
    """What a training run ended with."""

    model: Model
    run_dir: Path
    step: int
    best_val_loss: float
    last_val_loss: float
    stopped: str  # "finished", "time limit", "interrupted", "stopped early" (--patience)
    signal: int | None = None  # the signal that interrupted the run (SIGINT, SIGTERM), if any
    best_step: int = 0  # the step of best.npz


@dataclass
class _Progress:
    """checkpoint.Progress while it changes (losses as floats: inf and nan until validated)."""

    step: int = 0
    chars_seen: int = 0
    seconds: float = 0.0
    best_val_loss: float = math.inf
    last_val_loss: float = math.nan
    best_step: int = 0
    since_best: int = 0  # validations in a row without a new best (for --patience)
    plan: tuple[int, int] | None = None  # --lr-schedule auto: (decay from step, to zero at step)


# Fractions of the --time-limit at which the budget's plan is measured again (see Run._plan).
# The last at 90%: a 300 s run on 50 MB, re-planned last at 75%, stepped 2% slower after it than
# its average and stopped at the time limit 42 steps before its planned end (3,645 of 3,687;
# bench/results/plan_end.md), more than the 3% margin of the last quarter held.
REPLAN_AT = (0.25, 0.5, 0.75, 0.9)
# A plan fills the rest of the budget less PLAN_MARGIN of it, and at least PLAN_MIN_MARGIN of the
# whole budget: the speed moves after it is measured. With 3% alone, a 300 s run on 50 MB
# (re-planned at 90%: 0.9 s of slack) stepped 7% slower in its last tenth than its average
# (53.5 ms against 50) and stopped at the time limit one step before its planned end (4,998 of
# 4,999); 1% of 300 s covers a 10% slowdown of the last tenth.
PLAN_MARGIN, PLAN_MIN_MARGIN = 0.03, 0.01


def plan_seconds(remaining: float, budget: float) -> float:
    """The seconds a plan fills: the `remaining` seconds of the `budget` less the margin
    (PLAN_MARGIN of the rest, at least PLAN_MIN_MARGIN of the budget), never below zero."""
    return max(0.0, min((1 - PLAN_MARGIN) * remaining, remaining - PLAN_MIN_MARGIN * budget))


def decay_start(step: int, end: int, remaining: float, budget: float, decay_from: float,
                old: tuple | None = None) -> int | None:
    """The step at which a plan ending at `end` starts its decay: where decay_from of the
    budget will have passed at the speed that placed `end` (the rate stays at --lr until then).
    old: the plan being replaced; once it is decaying, the new one goes on from (step, today's
    fraction of lr) in a straight line to (end, 0). None: the old plan's rate is at zero already."""
    hold = max(0.0, decay_from * budget - (budget - remaining))
    start = step + min(end - step, int((end - step) * hold / max(remaining, 1e-9)))
    if old is not None and step >= old[0]:  # decaying: the same formula's start
        left = min(1.0, (old[1] - step) / max(old[1] - old[0], 1))
        if left <= 0:
            return None
        start = end - math.ceil((end - step) / left)  # ceil: never a higher rate
    return start


def steps_that_fit(seconds: float, step: int, step_s: float, eval_s: float, every: int) -> int:
    """The most steps after `step` (at least 1) that fit in `seconds` with the validations that
    fall among them (every `every` steps, eval_s each). Counted, not spread over the steps: a
    validation just before the end costs its whole time there (runs of 60 s on 50 MB and 300 s on
    5 MB, planned with the average, validated at step 600 of 616 and 4,400 of 4,482, and the
    time ran out)."""
    most, base, best = int(seconds / step_s), step // every, 1  # most: without validations
    for k in range((step + most) // every - base + 1):  # k validations among the steps
        first = 1 if k == 0 else every * (base + k) - step  # the fewest steps with k of them
        n = min(every * (base + k + 1) - step - 1, int((seconds - k * eval_s) / step_s))
        if n >= first:
            best = max(best, n)
    return best


class Run:
    """The state of one training run and its loop.

    Parameters
    ----------
    model : Model
    config : TrainConfig
    batches : data.Batches or records.RecordBatches (this process's rows)
    val_ids : validation ids (text) or records
    run_dir : path
    corpus_id : dict, saved in checkpoints so that resume can check the corpus
    group : group.Solo or distributed.Group
    progress : bool, show a progress bar
    sample_every, sample_length : int, samples shown above the bar
    """

    def __init__(self, model, config, batches, val_ids, run_dir, corpus_id, group,
                 progress=True, sample_every=0, sample_length=200):
        self.model, self.cfg, self.batches, self.val_ids = model, config, batches, val_ids
        self.run_dir, self.corpus_id, self.group = Path(run_dir), corpus_id, group
        self.show, self.sample_every, self.sample_length = progress, sample_every, sample_length
        self.dir, self.writes = RunDir(run_dir), group.root  # one process writes the directory
        self.opt = Optimizer.from_config(config, model.params.size)
        self.rng = np.random.default_rng(config.seed)
        self.step_rng = group.rows_of_rng(self.rng, batches)  # dropout: this process's rows
        self.state = group.my_rows(model.zero_state(config.batch_size))
        self.prog = _Progress()
        self.total = self._total_steps()
        self.stop_signal, self.stop_signals = None, 0  # the last stop signal, and how many came
        self.in_final_validation = False
        self.last_write = time.monotonic()
        self.eval_seconds, self.evals = 0.0, 0  # this invocation's validations, for the plan
        self.probe = None  # (time, step, eval_seconds) after this invocation's first step
        self.replans = []  # budget fractions at which this invocation's plan is measured again
        # A training loss this far above a uniform guess (ln V) is a run that blew up, even
        # while it is still finite (SGD at lr 100 reached 4,406 nats/char).
        self.diverged_loss = max(10.0, 3 * math.log(model.cfg.vocab_size))

    def _total_steps(self) -> int | None:
        c, w = self.cfg, self.batches.windows
        if c.max_steps is not None:
            return c.max_steps
        if c.epochs is not None:
            return max(1, round(c.epochs * w))
        return None if c.time_limit is not None else DEFAULT_EPOCHS * w

    def restore(self, saved: ckpt.Record):
        """Continue exactly where a checkpoint left off."""
        p, arrays = saved.progress, saved.arrays
        plan = p.plan
        if plan is not None and saved.train.time_limit != self.cfg.time_limit:
            plan = None  # a new time budget: plan its end afresh
        self.prog = _Progress(p.step, p.chars_seen, p.seconds, _num(p.best_val_loss, math.inf),
                              _num(p.last_val_loss, math.nan), p.best_step, p.since_best, plan)
        if plan:
            self.total = min(plan[1], self.total or plan[1])
        self.opt.state["a"][:] = arrays["opt_a"]
        self.opt.state["b"][:] = arrays["opt_b"]
        self.opt.step_count = saved.optimizer_steps
        self.rng.bit_generator.state = saved.rng
        if arrays["state_h"].shape[1] == self.cfg.batch_size:
            self.state = self.group.my_rows((arrays["state_h"].copy(), arrays["state_c"].copy()))
        if self.writes:
            self.dir.continue_at(self.prog.step)

    # -- the run: the loop inside the handlers that make every stop save -------------------------

    def loop(self) -> TrainResult:
        """Step until a stopping condition; validate, log and checkpoint on the way."""
        bar = _Bar(self.total, self.prog.step, self.show)
        with self.dir.open_log(self.group.open_on_root) as log:
            # The handlers stay until last.npz is written: once a stop is asked for, the save
            # always happens; a second signal only skips the final validation.
            old = self._install_signals()
            try:
                try:
                    stopped, val = self.steps(log, bar)
                finally:
                    bar.close()
                self._final_validation(log, val)
                log.flush()
                self.checkpoint()
            except MetricsLogError as e:  # e.g. a full disk: stop, keeping the last checkpoint
                raise CharrnnError(f"{e}; {self._kept()}; free some space, then continue with "
                                   "--resume") from None
            finally:
                self._restore_signals(old)
        if stopped == "interrupted" and self.writes:
            print(f"interrupted: saved {self.run_dir / 'last.npz'} at step {self.prog.step}; "
                  "continue with --resume", file=sys.stderr)
        return TrainResult(self.model, self.run_dir, self.prog.step, self.prog.best_val_loss,
                           self.prog.last_val_loss, stopped,
                           self.stop_signal if stopped == "interrupted" else None,
                           self.prog.best_step)

    # -- the step loop -----------------------------------------------------------------------------

    def steps(self, log, bar) -> tuple[str, float | None]:
        """The step loop. Returns (why it stopped, the last step's validation loss or None)."""
        t_start, seconds0 = time.perf_counter(), self.prog.seconds
        val = None
        while True:
            stop = self._why_stop(time.perf_counter() - t_start, val)
            if stop:
                return stop, val
            t0 = time.perf_counter()
            loss, lr, chars = self._step()
            speed = chars / max(time.perf_counter() - t0, 1e-9)
            self.prog.seconds = seconds0 + time.perf_counter() - t_start
            t_val = time.perf_counter()
            val = self._maybe_validate()
            log.append(self._row(loss, val, lr, speed))
            self._maybe_checkpoint(log, validated=val is not None)
            if val is not None:  # validation and its checkpoint, timed for the plan
                self.eval_seconds += time.perf_counter() - t_val
                self.evals += 1
            self._maybe_plan(time.perf_counter() - t_start, bar)
            bar.update(self.prog.step, self.epoch, loss, self.prog.last_val_loss, speed)
            self._maybe_sample(bar)

    def _why_stop(self, elapsed: float, val) -> str | None:
        """Why the run stops before the next step, or None: --patience ran out at the last
        validation, the planned steps are done, the time is up or a stop signal came (the last
        two agreed by every process, so that all stop at the same step)."""
        c = self.cfg
        if val is not None and c.patience and self.prog.since_best >= c.patience:
            return "stopped early"
        if self.total is not None and self.prog.step >= self.total:
            return "finished"
        time_up, interrupted = self.group.any(
            c.time_limit is not None and elapsed >= c.time_limit, self.stop_signal is not None)
        return "time limit" if time_up else ("interrupted" if interrupted else None)

    def _step(self):
        """One optimizer step on the next window; returns (loss, lr, characters predicted)."""
        c, b = self.cfg, self.batches
        w, epoch = self.prog.step % b.windows, self.prog.step // b.windows
        x, y = b.window(w, epoch) if c.records else b.window(w)
        # a new epoch starts from a zero state, as in char-rnn; so does every batch of records
        if w == 0 or c.records:
            self.state = self.model.zero_state(x.shape[1])
        chars = b.predictions(w, epoch)  # in the whole batch: every process's rows
        reducer = self.group.reducer(self.model.grads)  # MPI: layers sent as they are done
        loss, state = self.model.loss_and_grad(x, y, self.state, rng=self.step_rng,
                                               predictions=chars, reducer=reducer)
        loss = self.group.add_gradients(self.model.grads, loss, reducer)  # the global mean
        norm = clip_gradients(self.model.grads, c.grad_clip, c.clip_mode)
        if not (math.isfinite(loss) and math.isfinite(norm)) or loss > self.diverged_loss:
            raise CharrnnError(
                f"training diverged at step {self.prog.step + 1} (loss {loss:.6g} nats/char, "
                f"gradient norm {norm:.6g}; a uniform guess scores "
                f"{math.log(self.model.cfg.vocab_size):.2f}); {self._kept()}; lower --lr or "
                "--grad-clip")
        lr = learning_rate(c, self.prog.step, self.epoch, self.total, self.prog.plan)
        self.opt.step(self.model.params, self.model.grads, lr)
        self.state = state
        self.prog.step += 1
        self.prog.chars_seen += chars
        self.group.after_step(self.model.params, self.prog.step)
        return loss, lr, chars

    def _row(self, loss, val, lr, speed) -> list[str]:
        """This step's row of metrics.csv (rundir.METRICS)."""
        return [self.prog.step, f"{self.epoch:.4f}", f"{loss:.6f}",
                "" if val is None else f"{val:.6f}", f"{lr:.6g}", f"{speed:.0f}",
                f"{self.prog.seconds:.3f}"]

    def _maybe_sample(self, bar):
        if self.sample_every and self.prog.step % self.sample_every == 0:
            text = sample(self.model, self.sample_length, 0.8, seed=self.prog.step)
            bar.write(f"--- sample at step {self.prog.step} ---\n{text}\n---")

    @property
    def epoch(self) -> float:
        """Epochs done, fractional."""
        return self.prog.step / self.batches.windows

    # -- validation ------------------------------------------------------------------------------

    def _maybe_validate(self) -> float | None:
        last = self.total is not None and self.prog.step == self.total
        if self.prog.step % self.cfg.eval_every == 0 or last:
            return self._validate_and_keep_best()
        return None

    def _validate_and_keep_best(self) -> float:
        if self.cfg.records:
            val = self.group.evaluate_records(self.model, self.val_ids, self.cfg.batch_size)
        else:
            val = self.group.evaluate(self.model, self.val_ids, self.cfg.batch_size,
                                      self.cfg.seq_len)
        self.prog.last_val_loss = val.nats_per_char
        if val.nats_per_char < self.prog.best_val_loss:
            self.prog.best_val_loss = val.nats_per_char
            self.prog.best_step, self.prog.since_best = self.prog.step, 0
            self.save("best.npz")
        else:
            self.prog.since_best += 1
        return val.nats_per_char

    def _final_validation(self, log, val):
        """Clean ending (finished, time limit, Ctrl-C, SIGTERM): a final validation, put on the
        last step's row (which has none yet). Skipped, with a notice, if a stop signal comes
        before or during it (in one process only: ranks of a job must validate together)."""
        if not self.prog.step or not (math.isnan(self.prog.last_val_loss) or val is None):
            return
        self.in_final_validation = True
        try:
            if self.stop_signals > 1 and self.group.size == 1:
                raise _SecondSignal
            val = self._validate_and_keep_best()
        except _SecondSignal:
            if self.writes:
                print("interrupted again: skipping the final validation, saving last.npz",
                      file=sys.stderr)
            return
        finally:
            self.in_final_validation = False
        log.set_last_val(val)

    # -- the budget's plan (--lr-schedule auto with --time-limit) ----------------------------------

    def _maybe_plan(self, elapsed: float, bar):
        """After this invocation's first step, note the time; once the speed has been measured
        long enough, plan the step at which the rate reaches zero."""
        if self.probe is None:
            self.probe = (time.perf_counter(), self.prog.step, self.eval_seconds)
        elif self._plan_due():
            self._plan(self.cfg.time_limit - elapsed)
            self.replans = list(REPLAN_AT)
            bar.set_total(self.total)
        elif self.replans and self.group.any(elapsed >= self.replans[0] * self.cfg.time_limit)[0]:
            self.replans.pop(0)
            self._plan(self.cfg.time_limit - elapsed, again=True)
            bar.set_total(self.total)

    def _plan_due(self) -> bool:
        c = self.cfg
        if c.lr_schedule != "auto" or c.time_limit is None or self.prog.plan is not None:
            return False
        # Measure for 3% of the budget (at least 2 s and 10 steps): long enough to average out
        # the first steps' noise, short enough that the constant-rate start costs little.
        due = time.perf_counter() - self.probe[0] >= max(2.0, 0.03 * c.time_limit) and \
            self.prog.step - self.probe[1] >= 10
        return self.group.any(due)[0]  # every process plans at the same step

    def _plan(self, remaining: float, again: bool = False):
        """Fix the step at which the learning rate reaches zero: the steps that fit in the rest of
        the budget at the measured speed, validations included (steps_that_fit), less the
        margin (plan_seconds). The plan is a pair of step numbers saved in the checkpoint, so a resumed run
        follows it exactly.

        again: measured over longer (REPLAN_AT), the end moves to where the budget now says, and
        the decay goes on from today's rate in a straight line to zero there (the first steps'
        speed misled the first plan by up to a quarter: 1-minute runs ended at 45 s); a plan
        still holding the full rate (--decay-from) places its start afresh.

        The decay starts at once, or with --decay-from F at the step where, at the measured
        speed, F of the budget will have passed."""
        c, b, probe = self.cfg, self.batches, self.probe
        now, step = time.perf_counter(), self.prog.step
        step_s = max(now - probe[0] - (self.eval_seconds - probe[2]), 1e-9) / \
            max(step - probe[1], 1)
        if self.evals:
            eval_s = self.eval_seconds / self.evals
        else:  # a forward pass over the validation text: about a third of a training step's work
            val_chars = self.val_ids.predictions if c.records else len(self.val_ids)
            eval_s = val_chars / (b.batch_size * b.seq_len) * step_s / 3
        end = step + steps_that_fit(plan_seconds(remaining, c.time_limit), step, step_s,
                                    eval_s, c.eval_every)
        end = self.group.exchange(end)[0]  # rank 0's estimate: every rank follows one schedule
        start = decay_start(step, end, remaining, c.time_limit, c.decay_from,
                            self.prog.plan if again else None)
        if start is None:
            return
        self.prog.plan = (start, end)
        cap = self._total_steps()
        self.total = min(end, cap) if cap is not None else end

    # -- checkpoints -------------------------------------------------------------------------------

    def _maybe_checkpoint(self, log, validated: bool):
        if self._checkpoint_due(validated):
            log.flush()  # the log on disk never lags behind a checkpoint
            self.checkpoint()

    def _checkpoint_due(self, validated: bool) -> bool:
        c = self.cfg
        if validated or (c.checkpoint_every and self.prog.step % c.checkpoint_every == 0):
            return True
        if not c.checkpoint_interval:
            return False
        # the processes' clocks differ: they agree
        return self.group.any(time.monotonic() - self.last_write >= c.checkpoint_interval)[0]

    def checkpoint(self):
        """last.npz, plus a numbered ckpt-<step>.npz when --keep K keeps the K newest of those."""
        self.save("last.npz")
        self.last_write = time.monotonic()
        if self.cfg.keep:
            self.save(self.dir.numbered(self.prog.step))
            if self.writes:
                self.dir.rotate(self.cfg.keep)

    def save(self, name: str):
        """Write run_dir/name atomically with everything needed to resume (the whole carried
        state gathered to the process that writes)."""
        p = self.prog
        record = ckpt.Record(
            self.model.cfg, self.cfg, self.model.vocab.chars, self.model.vocab.encoding,
            ckpt.Progress(p.step, self.epoch, p.step % self.batches.windows, p.chars_seen,
                          p.seconds, _str(p.best_val_loss), _str(p.last_val_loss), p.best_step,
                          p.since_best, p.plan),
            self.opt.kind, self.opt.step_count, self.rng.bit_generator.state, self.corpus_id,
            {"params": self.model.params, "opt_a": self.opt.state["a"],
             "opt_b": self.opt.state["b"], "state_h": self.state[0], "state_c": self.state[1]})
        self.group.save(ckpt.save, self.run_dir / name, record.meta(), record.arrays)

    def _kept(self) -> str:
        """What a failed run leaves behind, for its error message."""
        last = self.run_dir / "last.npz"
        if not last.exists():
            return "no checkpoint was written yet"
        try:
            step = ckpt.read(last).progress.step
        except CharrnnError:
            return f"the last good checkpoint is kept in {self.run_dir}"
        return f"last.npz at step {step:,} is kept in {self.run_dir}"

    # -- signals -----------------------------------------------------------------------------------

    def _install_signals(self):
        """Ctrl-C and SIGTERM finish the current step, then save and stop cleanly."""
        def handler(signum, frame):
            self.stop_signal = signum
            self.stop_signals += 1
            if self.in_final_validation and self.group.size == 1:
                raise _SecondSignal
        old = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                old[sig] = signal.signal(sig, handler)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return old

    def _restore_signals(self, old):
        for sig, h in old.items():
            signal.signal(sig, h)


class _SecondSignal(Exception):
    """A stop signal during the final validation: skip it and save."""


class _Bar:
    """tqdm on a terminal; plain periodic lines otherwise (logs, CI)."""

    def __init__(self, total, initial, show):
        self.show, self.tty = show, sys.stderr.isatty()
        self.bar, self.last_print = None, 0.0
        if show and self.tty:
            from tqdm import tqdm
            self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True,
                            file=sys.stderr)

    def update(self, step, epoch, loss, val, speed):
        if not self.show:
            return
        bpc = loss / math.log(2)
        text = (f"epoch {epoch:.2f} loss {loss:.3f} ({bpc:.2f} bpc) val {val:.3f} "
                f"{speed:,.0f} chars/s")
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=False)
            self.bar.update(step - self.bar.n)
        elif time.monotonic() - self.last_print >= 10.0:
            self.last_print = time.monotonic()
            print(f"step {step}: {text}", file=sys.stderr, flush=True)

    def write(self, text: str):
        """Print above the bar (the bar stays at the bottom)."""
        if not self.show:
            return
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def set_total(self, total):
        if self.bar is not None:
            self.bar.total = total
            self.bar.refresh()

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _str(x: float):
    return None if not math.isfinite(x) else x


def _num(x, missing: float) -> float:
    return missing if x is None else float(x)
