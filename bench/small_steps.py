"""Where a small step's time goes: records mode against text mode at the same characters per step.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/small_steps.py [--steps 400]

Two `charrnn.train` runs of the default model (LSTM 2x256, batch 50) with validation off: text
mode at --seq-len 8 on tinyshakespeare (400 characters a step), and records mode on a names-like
corpus (the distinct words of tinyshakespeare, 3-12 letters, one a line, shuffled with seed 0:
about 7.8 predictions a record, so about 390 a step). Each phase of the trainer's step is timed
from outside by wrapping the function that does it (perf_counter around each call):
  batch      building the step's (T, B) inputs and targets (Batches / RecordBatches.window)
  forward    Model.forward: the compiled stack over the shards, thread dispatch included
  backward   Model.backward: the same, plus adding the shards' gradients
  clip       the gradient norm and clipping
  optimizer  the Adam update over the flat buffer
  rest       Python around those inside the step; then, outside the step but inside the loop,
             the metrics row, the progress bar's bookkeeping and the stop checks
The run's one validation and checkpoint (at its last step) are left out. Prints the table for each mode, and the
records run's rate as a fraction of the text run's.
"""
import argparse
import collections
import os
import random
import re
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import charrnn
from charrnn import TrainConfig
from charrnn import model as model_mod
from charrnn import optim as optim_mod
from charrnn import records as records_mod
from charrnn import run as run_mod
from charrnn.data import Batches


def names_corpus(path: str) -> str:
    with open(os.path.join(ROOT, "data", "tinyshakespeare.txt")) as f:
        text = f.read().lower()
    words = sorted(set(re.findall(r"[a-z]{3,12}", text)))
    random.Random(0).shuffle(words)
    with open(path, "w") as f:
        f.write("\n".join(words) + "\n")
    return path


class Timers:
    """Wrap functions so that each call's wall time is added to a phase."""

    def __init__(self):
        self.total = collections.defaultdict(float)
        self.undo = []
        self.in_step = False  # only calls inside a training step count (not the last validation)

    def wrap(self, owner, name, phase):
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            inner = phase not in ("step", "loop", "validation", "checkpoint")
            if inner and not self.in_step:  # e.g. the validation's forward passes
                return original(*args, **kwargs)
            if phase == "step":
                self.in_step = True
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.total[phase] += time.perf_counter() - t0
                if phase == "step":
                    self.in_step = False
        setattr(owner, name, timed)
        self.undo.append((owner, name, original))

    def restore(self):
        for owner, name, original in reversed(self.undo):
            setattr(owner, name, original)


def profile(corpus, config, steps):
    with tempfile.TemporaryDirectory() as tmp:
        charrnn.train(corpus, TrainConfig(**{**config, "max_steps": 3}), checkpoint_dir=tmp,
                      progress=False)  # compile, choose the strategy
    t = Timers()
    t.wrap(Batches, "window", "batch")
    t.wrap(records_mod.RecordBatches, "window", "batch")
    t.wrap(model_mod.Model, "forward", "forward")
    t.wrap(model_mod.Model, "backward", "backward")
    t.wrap(run_mod, "clip_gradients", "clip")
    t.wrap(optim_mod.Optimizer, "step", "optimizer")
    t.wrap(run_mod.Run, "_step", "step")
    t.wrap(run_mod.Run, "steps", "loop")
    t.wrap(run_mod.Run, "_validate_and_keep_best", "validation")
    t.wrap(run_mod.Run, "checkpoint", "checkpoint")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            r = charrnn.train(corpus, TrainConfig(**{**config, "max_steps": steps}),
                              checkpoint_dir=tmp, progress=False)
            wall = time.perf_counter() - t0
            info = charrnn.info(tmp)
    finally:
        t.restore()
    step, loop = t.total.pop("step"), t.total.pop("loop")
    val = t.total.pop("validation", 0.0)  # the one validation, at the last step: not a step's
    val += t.total.pop("checkpoint", 0.0)  # nor its last.npz
    phases = dict(t.total)
    phases["rest of the step (Python around it)"] = step - sum(phases.values())
    phases["outside the step (metrics row, progress, stop checks)"] = loop - step - val
    return r, info, phases, wall


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=400)
    a = ap.parse_args()
    big = 10 ** 9  # no validation, no checkpoint but the last
    with tempfile.TemporaryDirectory() as tmp:
        words = names_corpus(os.path.join(tmp, "words.txt"))
        runs = {"text, seq-len 8": (None, {"seq_len": 8, "eval_every": big}),
                "records": (words, {"records": True, "eval_every": big})}
        rates = {}
        for label, (corpus, config) in runs.items():
            r, info, phases, wall = profile(corpus, config, a.steps)
            chars = info["chars_seen"]
            step_ms = 1e3 * sum(phases.values()) / r.step
            rates[label] = chars / sum(phases.values())
            print(f"\n{label}: {r.step} steps, {chars / r.step:.0f} characters a step, "
                  f"{step_ms:.2f} ms a step, {rates[label]:,.0f} chars/s in the loop "
                  f"(strategy {info['train_options']['strategy']}; {wall:.1f} s with set-up)\n")
            print("| phase | ms per step | share |\n|---|---|---|")
            total = sum(phases.values())
            for k, v in phases.items():
                print(f"| {k} | {1e3 * v / r.step:.2f} | {100 * v / total:.0f}% |")
    ratio = rates["records"] / rates["text, seq-len 8"]
    print(f"\nrecords mode runs at {ratio:.2f}x text mode's characters per second")


if __name__ == "__main__":
    main()
