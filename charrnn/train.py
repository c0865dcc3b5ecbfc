"""The training driver: data, the step loop, validation, checkpoints, progress and resume.

The run directory's files are described in rundir.py: last.npz is written at every evaluation,
every --checkpoint-every steps, on Ctrl-C / SIGTERM and at the end. Everything needed to continue exactly is in the checkpoint: parameters, optimizer
moments and step count, the carried hidden state, the RNG state and the step (which fixes the
epoch and the window within it).
"""
from __future__ import annotations

import math
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import budget, sources
from . import checkpoint as ckpt
from . import distributed as mpi
from . import records as rec
from .config import ModelConfig, TrainConfig
from .corpus import load_corpus
from .data import IGNORE, Batches, Vocab, require_windows, split
from .errors import CharrnnError, check_path
from .evaluate import evaluate_ids, evaluate_records
from .model import Model
from .optim import Optimizer, clip_gradients, learning_rate
from .rundir import MetricsLogError, RunDir
from .sample import sample

# In a checkout, a symlink to data/tinyshakespeare.txt (the source of truth); a built wheel holds
# the file itself, so the default corpus is there whichever way charrnn was installed.
DEFAULT_CORPUS = Path(__file__).resolve().parent / "corpora" / "tinyshakespeare.txt"
DEFAULT_EPOCHS = 10
MAX_VOCAB = 65536
# Options that change what the next steps compute: a resumed run must keep them.
# Everything else (stopping, evaluation and checkpoint cadence) may change.
MUST_MATCH = ("seq_len", "batch_size", "optimizer", "lr", "momentum", "nesterov", "weight_decay",
              "grad_clip", "clip_mode", "lr_schedule", "warmup_steps", "lr_decay",
              "lr_decay_after", "val_fraction", "seed", "encoding", "records")


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
    step: int = 0
    chars_seen: int = 0
    seconds: float = 0.0
    best_val_loss: float = math.inf
    last_val_loss: float = math.nan
    best_step: int = 0
    since_best: int = 0  # validations in a row without a new best (for --patience)
    plan: tuple[int, int] | None = None  # --lr-schedule auto: (decay from step, to zero at step)


def _default_corpus() -> Path:
    if not DEFAULT_CORPUS.is_file():
        raise CharrnnError(f"no CORPUS given, and the bundled {DEFAULT_CORPUS} is missing "
                           "(a damaged install: reinstall charrnn, or pass a text file)")
    return DEFAULT_CORPUS


def default_run_dir(corpus) -> Path:
    """checkpoints/<corpus stem>/ under the current directory (the directory's name for a
    directory, "stdin" for standard input, the first's for several)."""
    return Path("checkpoints") / sources.run_name(corpus)


def _sources(corpus) -> list[str]:
    """The corpus argument checked and listed; the bundled corpus when there is none."""
    if isinstance(corpus, (list, tuple)):
        for item in corpus:
            check_path(item, "each corpus")
    elif corpus is not None:
        check_path(corpus, "corpus")
    items = sources.as_list(corpus)
    return items or [str(_default_corpus())]


def _label(items: list[str]) -> str:
    """The corpus as error messages name it."""
    shown = "standard input" if items[0] == sources.STDIN else items[0]
    return shown if len(items) == 1 else f"{shown} (and {len(items) - 1} more)"


@mpi.when_distributed  # hook: distributed=True runs this as one rank of an MPI job
def train(corpus=None, config: TrainConfig | None = None, *, cell: str = ModelConfig.cell,
          hidden: int = ModelConfig.hidden, layers: int = ModelConfig.layers,
          dropout: float = ModelConfig.dropout, activation: str = ModelConfig.activation,
          checkpoint_dir=None, resume=None, overwrite: bool = False, progress: bool = True,
          sample_every: int = 0,
          sample_length: int = 200, on_start=None, distributed: bool = False) -> TrainResult:
    """Train a character-level model on a text file.

    Parameters
    ----------
    corpus : path or list of paths, optional
        A text file, several (joined with a newline), a directory (its text files) or "-"
        (standard input); default the bundled tinyshakespeare (see sources.py).
    config : TrainConfig, optional
        Training options (defaults as the CLI). On resume, None means "as saved".
    cell, hidden, layers, dropout, activation :
        The model (see ModelConfig); ignored on resume, where the checkpoint's model is used.
    checkpoint_dir : path, optional
        Run directory; default checkpoints/<corpus stem>/.
    resume : bool, path or checkpoint.Record, optional
        True: continue from <checkpoint_dir>/last.npz; a path (or a Record already read, see
        resume_record): continue from that checkpoint (the run then goes on in checkpoint_dir,
        created if needed).
    overwrite : bool
        Start afresh even if checkpoint_dir already holds a run (its checkpoints and metrics
        are replaced). Without it, such a directory is refused.
    progress : bool
        Show a progress bar (or plain lines when stderr is not a terminal).
    sample_every, sample_length : int
        Print a sample of sample_length characters (temperature 0.8) every sample_every steps
        (0: never), above the progress bar. Samples use their own seed (the step number), so they
        do not change training.
    on_start : callable, optional
        Called with the model once every input has been checked, just before the first step
        (the CLI uses it to announce a first-run compilation).
    distributed : bool
        Run as one rank of `mpiexec -n R` (see charrnn/distributed.py): config.batch_size is the
        global batch, split across the ranks; rank 0 alone writes and shows progress.

    Returns
    -------
    TrainResult
    """
    dist = mpi.current() if distributed else None  # hook: this rank's Group
    if dist and not dist.root:  # hook: rank 0 alone shows progress
        progress, on_start = False, None
    items = _sources(corpus)
    if checkpoint_dir is not None:
        check_path(checkpoint_dir, "checkpoint_dir")
    if config is not None and not isinstance(config, TrainConfig):
        raise CharrnnError(f"config must be a charrnn.TrainConfig, got {type(config).__name__}")
    run_dir = Path(checkpoint_dir) if checkpoint_dir is not None else default_run_dir(items)
    saved = _load_resume(resume, run_dir)
    if saved is not None:
        config = _resume_config(saved, config)
    config = config or TrainConfig()
    if saved is None:  # check the model options before the (possibly long) corpus encoding
        ModelConfig(1, cell, hidden, layers, dropout, activation)
        if not overwrite:
            RunDir(run_dir).refuse_existing()
    if dist and sources.STDIN in items:
        raise CharrnnError("--distributed cannot read standard input (-): every rank reads the "
                           "corpus itself; save the text to a file")
    corpus = _label(items)
    path = sources.gather(items, config.encoding)  # one file: several, a directory or stdin
    # hook: ranks take turns to build the corpus cache
    data = dist.in_turns(load_corpus, path, config.encoding) if dist else \
        load_corpus(path, config.encoding)
    if config.records and dist:
        raise CharrnnError("--records does not run with --distributed yet; train it in one "
                           "process")
    make = _records_data if config.records else _text_data
    batches, val_ids, vocab, corpus_id, train_chars = make(data, config, corpus, dist)
    if saved is None:
        if config.auto:  # the model sized for the budget, from this machine's measured speed
            choice = budget.choose(train_chars, config.time_limit, len(vocab), config.batch_size,
                                   config.seq_len, config.threads)
            cell, layers, hidden, dropout = choice.cell, choice.layers, choice.hidden, \
                choice.dropout
            if progress:
                print(f"--auto: {choice.reason}", file=sys.stderr, flush=True)
        mcfg = ModelConfig(len(vocab), cell, hidden, layers, dropout, activation)
        model = Model(mcfg, seed=config.seed, vocab=vocab)
    else:
        _check_same_corpus(saved, corpus_id, corpus)
        model = _model_from(saved, vocab)
    model.threads = config.threads or (dist.default_threads() if dist else None)  # hook
    if sample_every < 0 or sample_length < 1:
        raise CharrnnError("--sample-every must be >= 0 and --sample-length >= 1")
    run = _Run(model, config, batches, val_ids, run_dir, corpus_id, progress, dist)
    run.sample_every, run.sample_length = sample_every, sample_length
    if run.writes:
        run.dir.lock()
    if saved is not None:
        run.restore(saved)
    elif run.writes:
        run.dir.start_fresh(overwrite)
    if dist:  # hook: the end of setup: same corpus and parameters everywhere
        dist.ready(model.params, corpus_id)
    if on_start is not None:
        on_start(model)
    return run.loop()


def _check_vocab_size(vocab: Vocab, corpus: str) -> Vocab:
    if len(vocab) > MAX_VOCAB:
        raise CharrnnError(f"{corpus}: {len(vocab):,} distinct characters; charrnn models at most "
                           f"{MAX_VOCAB:,} (the one-hot input and the output layer grow with the "
                           "vocabulary); use --encoding bytes for a 256-symbol vocabulary")
    return vocab


def _text_data(data, config, corpus, dist):
    """Text mode: (training batches, validation ids, vocabulary, corpus identity, training
    characters). The last val_fraction of the text validates."""
    vocab = _check_vocab_size(Vocab(data.vocab.chars, config.encoding), corpus)
    train_ids, val_ids = split(data.ids, config.val_fraction)
    val_ids = val_ids[: config.val_max_chars]
    require_windows(len(train_ids), config.batch_size, config.seq_len, "training", corpus)
    if len(val_ids) < 2:
        raise CharrnnError(f"{corpus}: the validation part (--val-fraction "
                           f"{config.val_fraction}) has fewer than 2 characters; use a longer "
                           "text or a larger fraction")
    # hook: a rank reads only its rows of each window
    batches = dist.batches(train_ids, config.batch_size, config.seq_len) if dist else \
        Batches(train_ids, config.batch_size, config.seq_len)
    return batches, val_ids, vocab, data.identity(), len(train_ids)


def _records_data(data, config, corpus, dist=None):
    """Records mode: as _text_data, with records (validation: a seeded random sample)."""
    recs, vocab, _ = rec.from_corpus(data.ids, data.vocab.chars, corpus)
    if len(recs) < 2:
        what = "only one record" if len(recs) else "no records: every line is empty"
        raise CharrnnError(f"{corpus}: {what}; records mode needs at least 2 non-empty lines "
                           "(one of them validates)")
    train_recs, val_recs = rec.split(recs, config.val_fraction, config.val_max_chars, config.seed)
    vocab = _check_vocab_size(Vocab(vocab.chars, config.encoding), corpus)
    batches = rec.RecordBatches(train_recs, config.batch_size, config.seed, vocab.end)
    return batches, val_recs, vocab, {**data.identity(), "records": len(recs)}, \
        train_recs.predictions


class _Run:
    """The state of one training run and its loop."""

    def __init__(self, model, config, batches, val_ids, run_dir, corpus_id, progress, dist=None):
        self.model, self.cfg, self.batches, self.val_ids = model, config, batches, val_ids
        self.run_dir, self.corpus_id, self.show = Path(run_dir), corpus_id, progress
        self.dir = RunDir(run_dir)
        self.opt = Optimizer.from_config(config, model.params.size)
        self.rng = np.random.default_rng(config.seed)
        self.state = model.zero_state(config.batch_size)
        # hook: an MPI rank (distributed.py) keeps its rows of the state and of dropout's draws;
        # rank 0 alone writes the run directory
        self.dist, self.writes, self.step_rng = dist, dist is None or dist.root, self.rng
        if dist:
            self.state, self.step_rng = dist.my_rows(self.state), dist.rows_of_rng(self.rng)
        self.prog = _Progress()
        self.total = self._total_steps()
        self.stop_signal = None
        self.stop_signals = 0  # how many stop signals arrived
        self.in_final_validation = False
        self.last_write = time.monotonic()
        self.sample_every, self.sample_length = 0, 200
        self.eval_seconds, self.evals = 0.0, 0  # this invocation's validations, for the plan

    def _total_steps(self) -> int | None:
        c, w = self.cfg, self.batches.windows
        if c.max_steps is not None:
            return c.max_steps
        if c.epochs is not None:
            return max(1, round(c.epochs * w))
        return None if c.time_limit is not None else DEFAULT_EPOCHS * w

    # -- start / resume --------------------------------------------------------------------------

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
            self.state = (arrays["state_h"].copy(), arrays["state_c"].copy())
            if self.dist:  # hook: this rank's rows of the saved state
                self.state = self.dist.my_rows(self.state)
        if self.writes:
            self.dir.continue_at(self.prog.step)

    # -- the loop ----------------------------------------------------------------------------------

    def loop(self) -> TrainResult:
        """Step until a stopping condition; validate, log and checkpoint on the way."""
        bar = _Bar(self.total, self.prog.step, self.show)
        opener = self.dist.open_on_root if self.dist else open  # hook: rank 0 alone logs
        with self.dir.open_log(opener) as log:
            # The handlers stay until last.npz is written: once a stop is asked for, the save
            # always happens; a second signal only skips the final validation.
            old = self._install_signals()
            try:
                try:
                    stopped, val = self._run_steps(log, bar)
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

    def _final_validation(self, log, val):
        """Clean ending (finished, time limit, Ctrl-C, SIGTERM): a final validation, put on the
        last step's row (which has none yet). Skipped, with a notice, if a stop signal comes
        before or during it (outside MPI, where every rank must validate together)."""
        if not self.prog.step or not (math.isnan(self.prog.last_val_loss) or val is None):
            return
        self.in_final_validation = True
        try:
            if self.stop_signals > 1 and not self.dist:
                raise _SecondSignal
            val = self._evaluate_and_keep_best()
        except _SecondSignal:
            if self.writes:
                print("interrupted again: skipping the final validation, saving last.npz",
                      file=sys.stderr)
            return
        finally:
            self.in_final_validation = False
        log.set_last_val(val)

    def _run_steps(self, log, bar):
        """The step loop. Returns (why it stopped, the last step's validation loss or None)."""
        c = self.cfg
        t_start, seconds0 = time.perf_counter(), self.prog.seconds
        val = None
        probe = None  # (time, step) after this invocation's first step: the speed for the plan
        while self.total is None or self.prog.step < self.total:
            time_up = c.time_limit is not None and time.perf_counter() - t_start >= c.time_limit
            interrupted = self.stop_signal is not None
            if self.dist:  # hook: the ranks stop together, when any of them would
                time_up, interrupted = self.dist.any(time_up, interrupted)
            if time_up:
                return "time limit", val
            if interrupted:
                return "interrupted", val
            t0 = time.perf_counter()
            loss, lr, chars = self._step()
            dt = time.perf_counter() - t0
            self.prog.seconds = seconds0 + time.perf_counter() - t_start
            t_eval = time.perf_counter()
            val = self._maybe_evaluate()
            speed = chars / max(dt, 1e-9)
            row = [self.prog.step, f"{self.epoch:.4f}", f"{loss:.6f}",
                   "" if val is None else f"{val:.6f}", f"{lr:.6g}", f"{speed:.0f}",
                   f"{self.prog.seconds:.3f}"]
            log.append(row)
            if self._checkpoint_due(val is not None):
                log.flush()  # the log on disk never lags behind a checkpoint
                self.checkpoint()
            if val is not None:  # validation and its checkpoint, timed for the plan
                self.eval_seconds += time.perf_counter() - t_eval
                self.evals += 1
            if probe is None:
                probe = (time.perf_counter(), self.prog.step, self.eval_seconds)
            elif self._plan_due(probe):
                self._plan(probe, c.time_limit - (time.perf_counter() - t_start))
                bar.set_total(self.total)
            bar.update(self.prog.step, self.epoch, loss, self.prog.last_val_loss, speed)
            if self.sample_every and self.prog.step % self.sample_every == 0:
                bar.write(self._sample_text())
            if val is not None and c.patience and self.prog.since_best >= c.patience:
                return "stopped early", val
        return "finished", val

    # -- the budget's plan (--lr-schedule auto with --time-limit) ----------------------------------

    def _plan_due(self, probe) -> bool:
        c = self.cfg
        if c.lr_schedule != "auto" or c.time_limit is None or self.prog.plan is not None:
            return False
        # Measure for 3% of the budget (at least 2 s and 10 steps): long enough to average out
        # the first steps' noise, short enough that the constant-rate start costs little.
        due = time.perf_counter() - probe[0] >= max(2.0, 0.03 * c.time_limit) and \
            self.prog.step - probe[1] >= 10
        if self.dist:  # hook: the ranks plan at the same step
            due, = self.dist.any(due)
        return due

    def _plan(self, probe, remaining: float):
        """Fix the step at which the learning rate reaches zero: the steps that fit in the rest of
        the budget at the measured speed, validations included, less a 3% margin. The plan is a
        pair of step numbers saved in the checkpoint, so a resumed run follows it exactly."""
        c, b = self.cfg, self.batches
        now, step = time.perf_counter(), self.prog.step
        step_s = max(now - probe[0] - (self.eval_seconds - probe[2]), 1e-9) / \
            max(step - probe[1], 1)
        if self.evals:
            eval_s = self.eval_seconds / self.evals
        else:  # a forward pass over the validation text: about a third of a training step's work
            val_chars = self.val_ids.predictions if c.records else len(self.val_ids)
            eval_s = val_chars / (b.batch_size * b.seq_len) * step_s / 3
        per_step = step_s + eval_s / c.eval_every
        end = step + max(1, int(0.97 * max(remaining, 0.0) / per_step))
        if self.dist:  # hook: rank 0's estimate, so that every rank follows one schedule
            end = self.dist.exchange(end)[0]
        self.prog.plan = (step, end)
        self.total = min(end, self.total or end)

    def _sample_text(self) -> str:
        text = sample(self.model, self.sample_length, 0.8, seed=self.prog.step)
        return f"--- sample at step {self.prog.step} ---\n{text}\n---"

    @property
    def epoch(self) -> float:
        """Epochs done, fractional."""
        return self.prog.step / self.batches.windows

    def _step(self):
        """One optimizer step on the next window; returns (loss, lr, characters predicted)."""
        c, b = self.cfg, self.batches
        w = self.prog.step % b.windows
        x, y = b.window(w, self.prog.step // b.windows) if c.records else b.window(w)
        # a new epoch starts from a zero state, as in char-rnn; so does every batch of records
        if w == 0 or c.records:
            self.state = self.model.zero_state(x.shape[1])
        loss, state = self.model.loss_and_grad(x, y, self.state, rng=self.step_rng)
        if self.dist:  # hook: the mean gradient (and loss) over every rank's rows
            loss = self.dist.average_gradients(self.model.grads, loss)
        norm = clip_gradients(self.model.grads, c.grad_clip, c.clip_mode)
        if not (math.isfinite(loss) and math.isfinite(norm)):
            raise CharrnnError(
                f"training diverged at step {self.prog.step + 1} (loss {loss}, gradient norm "
                f"{norm}); {self._kept()}; lower --lr or --grad-clip")
        lr = learning_rate(c, self.prog.step, self.epoch, self.total, self.prog.plan)
        self.opt.step(self.model.params, self.model.grads, lr)
        self.state = state
        self.prog.step += 1
        # the predictions of the whole (global, under MPI) batch; records leave out the padding
        chars = int(np.count_nonzero(y != IGNORE)) if c.records else b.batch_size * b.seq_len
        self.prog.chars_seen += chars
        if self.dist:  # hook: every so often, check that the ranks still agree
            self.dist.after_step(self.model.params, self.prog.step)
        return loss, lr, chars

    def _maybe_evaluate(self):
        last = self.total is not None and self.prog.step == self.total
        if self.prog.step % self.cfg.eval_every == 0 or last:
            return self._evaluate_and_keep_best()
        return None

    def _evaluate_and_keep_best(self) -> float:
        if self.cfg.records:
            val = evaluate_records(self.model, self.val_ids, self.cfg.batch_size)
        else:
            evaluate = self.dist.evaluate if self.dist else evaluate_ids  # hook: rows split
            val = evaluate(self.model, self.val_ids, self.cfg.batch_size, self.cfg.seq_len)
        self.prog.last_val_loss = val.nats_per_char
        if val.nats_per_char < self.prog.best_val_loss:
            self.prog.best_val_loss = val.nats_per_char
            self.prog.best_step, self.prog.since_best = self.prog.step, 0
            self.save("best.npz")
        else:
            self.prog.since_best += 1
        return val.nats_per_char

    # -- checkpoints and signals -------------------------------------------------------------------

    def _checkpoint_due(self, evaluated: bool) -> bool:
        c = self.cfg
        if evaluated or (c.checkpoint_every and self.prog.step % c.checkpoint_every == 0):
            return True
        due = bool(c.checkpoint_interval) and \
            time.monotonic() - self.last_write >= c.checkpoint_interval
        if self.dist and c.checkpoint_interval:  # hook: the ranks' clocks differ; agree
            due, = self.dist.any(due)
        return due

    def checkpoint(self):
        """last.npz, plus a numbered ckpt-<step>.npz when --keep K keeps the K newest of those."""
        self.save("last.npz")
        self.last_write = time.monotonic()
        if self.cfg.keep:
            self.save(self.dir.numbered(self.prog.step))
            if self.writes:
                self.dir.rotate(self.cfg.keep)

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

    def save(self, name: str):
        """Write run_dir/name atomically with everything needed to resume."""
        p = self.prog
        record = ckpt.Record(
            self.model.cfg, self.cfg, self.model.vocab.chars, self.model.vocab.encoding,
            ckpt.Progress(p.step, self.epoch, p.step % self.batches.windows, p.chars_seen,
                          p.seconds, _str(p.best_val_loss), _str(p.last_val_loss), p.best_step,
                          p.since_best, p.plan),
            self.opt.kind, self.opt.step_count, self.rng.bit_generator.state, self.corpus_id,
            {"params": self.model.params, "opt_a": self.opt.state["a"],
             "opt_b": self.opt.state["b"], "state_h": self.state[0], "state_c": self.state[1]})
        if self.dist:  # hook: the full state gathered, rank 0 writes, every rank learns the outcome
            return self.dist.save(ckpt.save, self.run_dir / name, record.meta(), record.arrays)
        ckpt.write(self.run_dir / name, record)

    def _install_signals(self):
        """Ctrl-C and SIGTERM finish the current step, then save and stop cleanly."""
        def handler(signum, frame):
            self.stop_signal = signum
            self.stop_signals += 1
            if self.in_final_validation and not self.dist:
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


# -- resume helpers --------------------------------------------------------------------------------

def _load_resume(resume, run_dir: Path) -> ckpt.Record | None:
    """The checkpoint a run continues from, read once: resume is None/False (a fresh run),
    True or "" (run_dir's last.npz), a path (a file, or a run directory's last.npz) or a Record
    already read (what the CLI passes, having read it for its checks)."""
    if resume is None or resume is False:
        return None
    if isinstance(resume, ckpt.Record):
        return resume
    path = run_dir / "last.npz" if resume is True or resume == "" else Path(resume)
    if path.is_dir():
        path = path / "last.npz"
    if not path.exists():
        raise CharrnnError(f"--resume: {path} does not exist; train without --resume first, or "
                           "give --checkpoint-dir of the run to continue")
    return ckpt.read(path)


def resume_record(corpus, checkpoint_dir, resume) -> ckpt.Record:
    """The checkpoint that `train(corpus, checkpoint_dir=..., resume=resume)` would continue;
    pass it back as `resume` so that it is read only once."""
    run_dir = Path(checkpoint_dir) if checkpoint_dir is not None else \
        default_run_dir(_sources(corpus))
    return _load_resume(True if resume in ("", True) else resume, run_dir)


def _resume_config(saved: ckpt.Record, given: TrainConfig | None) -> TrainConfig:
    if given is None:
        return saved.train
    diff = [f"--{k.replace('_', '-')} {getattr(saved.train, k)} -> {getattr(given, k)}"
            for k in MUST_MATCH if getattr(saved.train, k) != getattr(given, k)]
    if diff:
        raise CharrnnError("cannot resume with different options: " + "; ".join(diff)
                           + " (use the original options, or start a new --checkpoint-dir)")
    return given


def _check_same_corpus(record: ckpt.Record, corpus_id: dict, corpus):
    saved = record.corpus
    if saved.get("hash") != corpus_id["hash"]:
        raise CharrnnError(f"cannot resume: {corpus} differs from the corpus this run was trained "
                           f"on ({saved.get('path')}, {saved.get('chars')} characters; this one "
                           f"has {corpus_id['chars']})")


def _model_from(saved: ckpt.Record, vocab) -> Model:
    return Model(saved.model, params=saved.arrays["params"], vocab=vocab)


def _str(x: float):
    return None if not math.isfinite(x) else x


def _num(x, missing: float) -> float:
    return missing if x is None else float(x)
