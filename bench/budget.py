"""Training on a budget: held-out loss after a fixed time, charrnn against the same model and recipe
in PyTorch for the same time.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /path/to/torch-venv/bin/python bench/budget.py \
        --minutes 1,5 --seeds 3 [--auto] [--only charrnn,torch] [--decay-from F] [--init I]
        [-- EXTRA charrnn train OPTIONS]

(the Python needs torch and charrnn installed: `pip install -e . && pip install torch`).
On a machine with many cores, `--jobs N --cores-per-job 2` runs the budgets' runs side by side,
each as its own process pinned to its own cores (charrnn and PyTorch see only those), N at a
time: several seeds cost one run's time. A seed's PyTorch run starts when its charrnn run has
ended, with the model, dropout and update (SPEC_KEYS) charrnn chose, so both still run one recipe.
The corpus is the bundled tinyshakespeare; the held-out part is its last 10%, as `charrnn train`
holds out. For each budget:
- charrnn: `charrnn train --time-limit S` with the defaults (or `--auto`): the best validation loss
  it reports (validated every --eval-every steps, as the run chose it, and at the end; validation
  time counts in the budget).
- torch: the model charrnn trained (cell, layers, hidden, dropout) in PyTorch 2 (one-hot input,
  nn.LSTM/GRU/RNN, dropout after every layer as charrnn, nn.Linear), the same recipe: charrnn's
  batch size and window (contiguous rows, the state carried between windows), Adam (or AdamW with the weight
  decay, where charrnn's run took it) at the same rate, clipping at
  norm 5, the same initialisation (charrnn's --init: PyTorch's own draws, for charrnn with the
  first layer's input weights scaled to +-2 and the output bias at the training characters'
  log-frequencies), the same dropout (charrnn's choice), and the same budget schedule (constant
  for charrnn's --decay-from of the time, at least the first 3% that measure the speed, then
  linear to zero at the step the measured speed says the budget ends, re-planned as charrnn
  re-plans, at REPLAN_AT's fractions of the budget: schedule()). It validates as charrnn does:
  its weights are loaded into charrnn (charrnn.from_state_dict) and scored by the same
  evaluation, as often as charrnn's run validated (its eval_every) and at the end, inside the
  budget; the best is reported.
Both use every core (torch.set_num_threads = cores). With --seeds N each budget runs N seeds of
each contender, alternating (charrnn seed s, PyTorch seed s, charrnn seed s+1, ...), so that a
slow minute of the machine falls on both. A spike is a validation loss more than SPIKE nats above
the best so far in that run. One JSON line per run, then a Markdown table per run and a summary
table (median and range over the seeds) per budget and contender.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
SPIKE = 0.1  # nats above the best so far
# a run's recipe, as charrnn chose it and the PyTorch run takes it (--auto's decay too)
SPEC_KEYS = ("cell", "layers", "hidden", "dropout", "lr", "optimizer", "weight_decay",
             "batch_size", "seq_len", "eval_every")


def spikes(curve: list[float]) -> int:
    """Validations more than SPIKE above the best before them."""
    return sum(v > min(curve[:i]) + SPIKE for i, v in enumerate(curve) if i)


def run_charrnn(seconds: float, auto: bool, seed: int, extra: list[str]) -> dict:
    import csv

    import charrnn
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "charrnn", "train", "--time-limit", str(seconds),
               "--checkpoint-dir", tmp, "--quiet", "--seed", str(seed)] + \
            (["--auto"] if auto else []) + extra
        t0 = time.perf_counter()
        # the charrnn this script imported, wherever it is run from
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
        subprocess.run(cmd, check=True, env=env)
        wall = time.perf_counter() - t0
        info = charrnn.info(tmp)
        with open(os.path.join(tmp, "metrics.csv")) as f:
            rows = list(csv.DictReader(f))
        curve = [float(r["val_loss"]) for r in rows if r["val_loss"]]
    return {"contender": "charrnn" + (" --auto" if auto else "") + "".join(" " + e for e in extra),
            "seconds": seconds, "seed": seed, "best_val": info["best_val_loss"],
            "final_val": curve[-1], "best_step": info["best_step"], "spikes": spikes(curve),
            "steps": int(rows[-1]["step"]), "wall_s": round(wall, 1),  # info: best.npz's
            "model": describe(info["cell"], info["layers"], info["hidden"], info["dropout"],
                              info["train_options"]["optimizer"],
                              info["train_options"]["weight_decay"],
                              info["train_options"]["batch_size"],
                              info["train_options"]["seq_len"]),
            "cell": info["cell"], "layers": info["layers"], "hidden": info["hidden"],
            "dropout": info["dropout"], "lr": info["train_options"]["lr"],
            "optimizer": info["train_options"]["optimizer"],
            "weight_decay": info["train_options"]["weight_decay"],
            "batch_size": info["train_options"]["batch_size"],
            "seq_len": info["train_options"]["seq_len"],
            "eval_every": info["train_options"]["eval_every"],
            # the rate of the last logged step over the peak: 0 when the run reached its planned
            # end, more when the time limit stopped it first (the decay not done)
            "last_lr_fraction": round(float(rows[-1]["lr"]) / info["train_options"]["lr"], 3)}


def describe(cell, layers, hidden, dropout, optimizer, weight_decay, batch, seq) -> str:
    """The model column: what both contenders trained (the update too, where not plain Adam;
    the batch and window, where not the defaults')."""
    from charrnn.config import BATCH_SIZE, TrainConfig
    default = TrainConfig()
    return f"{cell} {layers}x{hidden} dropout {dropout}" + \
        (f" {optimizer} weight decay {weight_decay:g}" if optimizer != "adam" or weight_decay
         else "") + \
        (f" batch {batch} x {seq}" if (batch, seq) != (BATCH_SIZE, default.seq_len)
         else "")


def schedule(now, t_start, seconds, step, probe, eval_time, evals, val_chars, B, T, every,
             decay_from, old):
    """The PyTorch run's plan (start, end) of the decay, by charrnn's own rule (Run._plan):
    the steps that fit in the rest of the budget at the speed measured since the probe,
    validations counted at their measured time; old: a re-plan at REPLAN_AT, going on in a
    straight line from today's rate."""
    from charrnn.run import decay_start, plan_seconds, steps_that_fit
    remaining = seconds - (now - t_start)
    step_s = max(now - probe[0] - (eval_time - probe[2]), 1e-9) / max(step - probe[1], 1)
    eval_s = eval_time / evals if evals else val_chars / (B * T) * step_s / 3
    end = step + steps_that_fit(plan_seconds(remaining, seconds), step, step_s, eval_s, every)
    start = decay_start(step, end, remaining, seconds, decay_from, old)
    return old if start is None else (start, end)


def torch_step(rnn, drop, dec, opt, params, V):
    """The PyTorch run's training step: step(x, y, state, rate) -> the state to carry, for one
    window's ids x, y (T, B) (numpy), at learning rate `rate`."""
    import numpy as np
    import torch

    def step(x, y, state, rate):
        xt = torch.nn.functional.one_hot(torch.from_numpy(x.astype(np.int64)), V).float()
        out, state = rnn(xt, state)
        logits = dec(drop(out))
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V),
                                                 torch.from_numpy(y.astype(np.int64)).reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        for g in opt.param_groups:
            g["lr"] = rate
        opt.step()
        return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()

    return step


def run_torch(seconds: float, spec: dict, seed: int, decay_from: float, init: str) -> dict:
    """The PyTorch script of spec's recipe (SPEC_KEYS: charrnn's run's choice, or the defaults)."""
    import torch

    import charrnn
    cell, layers, hidden, dropout, lr, optimizer, weight_decay, B, T, every = \
        (spec[k] for k in SPEC_KEYS)
    if optimizer not in ("adam", "adamw"):
        sys.exit(f"budget.py: the PyTorch script runs adam or adamw, not {optimizer}")
    from charrnn.budget import eval_every, lr_for
    from charrnn.cells import INPUT_BOUND, prior_bias
    from charrnn.corpus import load_corpus
    from charrnn.data import Batches, split, target_counts
    from charrnn.evaluate import evaluate_ids
    from charrnn.run import REPLAN_AT
    from charrnn.train import DEFAULT_CORPUS

    torch.manual_seed(seed)
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    data = load_corpus(DEFAULT_CORPUS)
    train_ids, val_ids = split(data.ids, 0.1)
    V = len(data.vocab)
    batches = Batches(train_ids, B, T)
    if lr is None:  # no charrnn run beside: the rate charrnn's defaults would take
        lr = lr_for(seconds)
    if every is None:  # no charrnn run beside: what charrnn's would validate at
        every = eval_every(charrnn.TrainConfig(time_limit=seconds, batch_size=B, seq_len=T),
                           len(val_ids))
    rnn_cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell]
    rnn = rnn_cls(V, hidden, layers, dropout=dropout if layers > 1 else 0.0)
    drop, dec = torch.nn.Dropout(dropout), torch.nn.Linear(hidden, V)
    if init == "charrnn":  # charrnn's --init charrnn (cells.charrnn_init), on PyTorch's draws
        with torch.no_grad():
            rnn.weight_ih_l0.mul_(INPUT_BOUND * hidden ** 0.5)
            dec.bias.copy_(torch.from_numpy(prior_bias(target_counts(train_ids, V))))
    params = list(rnn.parameters()) + list(dec.parameters())
    # charrnn's adam adds weight_decay * p to the gradient (L2), adamw decays decoupled: as torch's
    opt = (torch.optim.AdamW if optimizer == "adamw" else torch.optim.Adam)(
        params, lr=lr, weight_decay=weight_decay)
    vocab = charrnn.Vocab(data.vocab.chars)
    train_step = torch_step(rnn, drop, dec, opt, params, V)

    def validate() -> float:
        sd = {f"rnn.{k}": v.detach().numpy() for k, v in rnn.state_dict().items()}
        sd.update({"decoder.weight": dec.weight.detach().numpy(),
                   "decoder.bias": dec.bias.detach().numpy()})
        model = charrnn.from_state_dict(sd, cell, vocab)
        return evaluate_ids(model, val_ids, B, T).nats_per_char

    state, curve, step, plan = None, [], 0, None
    eval_time, evals, replans = 0.0, 0, []
    t_start = time.perf_counter()
    probe = None
    while time.perf_counter() - t_start < seconds and (plan is None or step < plan[1]):
        w = step % batches.windows
        x, y = batches.window(w)
        if w == 0:
            state = None
        rate = lr if plan is None else lr * min(1.0, max(0.0, (plan[1] - step) /
                                                       max(plan[1] - plan[0], 1)))
        state = train_step(x, y, state, rate)
        step += 1
        if step % every == 0:
            t_val = time.perf_counter()
            curve.append((step, validate()))
            eval_time, evals = eval_time + time.perf_counter() - t_val, evals + 1
        now = time.perf_counter()
        timing = (now, t_start, seconds, step, probe, eval_time, evals, len(val_ids), B, T, every,
                  decay_from)
        if probe is None:
            probe = (now, step, eval_time)
        elif plan is None and now - probe[0] >= max(2.0, 0.03 * seconds) and step - probe[1] >= 10:
            plan, replans = schedule(*timing, None), list(REPLAN_AT)
        elif replans and now - t_start >= replans[0] * seconds:  # as charrnn re-plans
            replans.pop(0)
            plan = schedule(*timing, plan)
    if step % every:
        curve.append((step, validate()))
    best_step, best = min(curve, key=lambda sv: sv[1])
    default = charrnn.TrainConfig()  # as charrnn's row names its options, when not the default
    return {"contender": f"PyTorch {torch.__version__}" +
            (f" --decay-from {decay_from:g}" if decay_from != default.decay_from else "") +
            (f" --init {init}" if init != default.init else ""), "seconds": seconds, "seed": seed,
            "best_val": best, "final_val": curve[-1][1], "best_step": best_step,
            "spikes": spikes([v for _, v in curve]), "steps": step, "wall_s": round(time.perf_counter() - t_start, 1),
            "model": describe(cell, layers, hidden, dropout, optimizer, weight_decay, B, T)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", default="1,5")
    ap.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 of each contender")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--auto", action="store_true", help="charrnn chooses the model (--auto)")
    ap.add_argument("--only", default="charrnn,torch")
    ap.add_argument("--decay-from", type=float, default=None,
                    help="both contenders hold the rate for this fraction of the budget before "
                         "the decay (charrnn: its --decay-from)")
    ap.add_argument("--init", choices=("charrnn", "pytorch"), default=None,
                    help="both contenders start so (charrnn: its --init; default: charrnn's)")
    ap.add_argument("--jobs", type=int, default=1,
                    help="runs side by side, each on its own --cores-per-job cores (a machine "
                         "with many cores: N seeds in one run's time; compare within one run)")
    ap.add_argument("--cores-per-job", type=int, default=2)
    ap.add_argument("--spec", default=None, help=argparse.SUPPRESS)  # --jobs: charrnn's model
    ap.add_argument("extra", nargs="*", help="after --: more `charrnn train` options")
    args = ap.parse_args()
    if args.jobs > 1:
        machine()
        return side_by_side(args)
    from charrnn import TrainConfig
    decay_from = TrainConfig().decay_from  # charrnn's default unless given: the same schedule
    if args.decay_from is not None:
        decay_from = args.decay_from
        args.extra += ["--decay-from", str(args.decay_from)]
    init = args.init or TrainConfig().init
    if args.init is not None:
        args.extra += ["--init", args.init]
    machine()
    rows = []
    for minutes in [float(m) for m in args.minutes.split(",")]:
        seconds = 60 * minutes
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            ours = run_charrnn(seconds, args.auto, seed, args.extra) \
                if "charrnn" in args.only else None
            if ours:
                print(json.dumps(ours), flush=True)
                rows.append(ours)
            if "torch" in args.only:
                spec = ours or (json.loads(args.spec) if args.spec else default_spec())
                theirs = run_torch(seconds, spec, seed, decay_from, init)
                print(json.dumps(theirs), flush=True)
                rows.append(theirs)
    tables(rows)


def machine() -> None:
    """The header line: CPU, usable cores, the BLAS kernel, OPENBLAS_CORETYPE."""
    import numpy  # noqa: F401  (loads the BLAS that threadpoolctl reports)
    try:
        from threadpoolctl import threadpool_info
        blas = "; ".join(f"{i.get('internal_api')} {i.get('architecture')}"
                         for i in threadpool_info() if i.get("user_api") == "blas")
    except ImportError:
        blas = "unknown"
    from charrnn.strategy import cpu_name
    print(f"# {cpu_name()}, {len(os.sched_getaffinity(0))} cores; BLAS {blas}; "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}", flush=True)


def default_spec() -> dict:
    """The model and rate of charrnn's defaults, for a PyTorch run without a charrnn run beside
    (lr and eval_every None: run_torch takes what charrnn's would for the budget)."""
    from charrnn import ModelConfig, TrainConfig
    from charrnn.config import BATCH_SIZE
    m = ModelConfig(vocab_size=65)
    t = TrainConfig()
    return {"cell": m.cell, "layers": m.layers, "hidden": m.hidden, "dropout": m.dropout,
            "lr": t.lr, "optimizer": t.optimizer, "weight_decay": t.weight_decay,
            "batch_size": BATCH_SIZE, "seq_len": t.seq_len, "eval_every": t.eval_every}


def side_by_side(args) -> None:
    """Every (budget, contender, seed) as its own `budget.py` process pinned to its own cores,
    --jobs at a time, longest budgets first; a seed's PyTorch run starts when its charrnn run
    has ended, with the model and dropout that run chose (the same recipe, --auto too). Then
    the same tables as one process prints."""
    cores = sorted(os.sched_getaffinity(0))
    if args.jobs * args.cores_per_job > len(cores):
        sys.exit(f"budget.py: --jobs {args.jobs} x --cores-per-job {args.cores_per_job} needs "
                 f"more than the {len(cores)} usable cores")
    only = args.only.split(",")
    minutes = sorted(args.minutes.split(","), key=float, reverse=True)
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    first = "charrnn" if "charrnn" in only else "torch"
    tasks = [(m, first, seed, None) for m in minutes for seed in seeds]
    base = [sys.executable, os.path.abspath(__file__)]
    if args.decay_from is not None:  # given through: the child adds it to extra
        base += ["--decay-from", str(args.decay_from)]
    if args.init is not None:
        base += ["--init", args.init]
    free = [cores[i * args.cores_per_job:(i + 1) * args.cores_per_job] for i in range(args.jobs)]
    running, rows = [], []
    print(f"# side by side: {len(tasks) * len(only)} runs, {args.jobs} at a time on "
          f"{args.cores_per_job} cores each", flush=True)
    while tasks or running:
        while tasks and free:
            m, who, seed, spec = tasks.pop(0)
            mine = free.pop(0)
            cmd = base + ["--minutes", m, "--seeds", "1", "--first-seed", str(seed),
                          "--only", who] + (["--auto"] if args.auto else []) + \
                (["--spec", json.dumps(spec)] if spec else []) + \
                (["--"] + args.extra if args.extra else [])
            pin = [sys.executable, "-c", (f"import os, sys; os.sched_setaffinity(0, {set(mine)}); "
                                          "os.execv(sys.argv[1], sys.argv[1:])")]  # pinned, exec
            p = subprocess.Popen(pin + cmd, stdout=subprocess.PIPE, text=True)
            running.append((p, mine, m, who, seed))
        time.sleep(0.5)
        for job in list(running):
            p, mine, m, who, seed = job
            if p.poll() is None:
                continue
            running.remove(job)
            free.append(mine)
            for line in p.stdout.read().splitlines():
                if line.startswith("{"):
                    print(line, flush=True)
                    rows.append(json.loads(line))
                    if who == "charrnn" and "torch" in only:  # its PyTorch run, same recipe
                        r = rows[-1]
                        tasks.insert(0, (m, "torch", seed, {k: r[k] for k in SPEC_KEYS}))
            if p.returncode:
                print(f"[a run failed: {' '.join(p.args)}]", file=sys.stderr, flush=True)
    rows.sort(key=lambda r: (r["seconds"], r["contender"], r["seed"]))
    tables(rows)


def tables(rows: list[dict]) -> None:
    """One Markdown row per run, then medians and ranges per budget and contender."""
    print("\n| budget | contender | seed | model | steps | best held-out nats/char (step) "
          "| at the end | spikes |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['seconds'] / 60:g} min | {r['contender']} | {r['seed']} | {r['model']} | "
              f"{r['steps']:,} | {r['best_val']:.4f} ({r['best_step']:,}) | "
              f"{r['final_val']:.4f} | {r['spikes']} |")
    print("\n| budget | contender | seeds | median best held-out (range) | median steps | spikes |")
    print("|---|---|---|---|---|---|")
    groups = {}
    for r in rows:
        groups.setdefault((r["seconds"], r["contender"]), []).append(r)
    for (seconds, who), rs in groups.items():
        best = sorted(r["best_val"] for r in rs)
        steps = sorted(r["steps"] for r in rs)
        print(f"| {seconds / 60:g} min | {who} | {len(rs)} | {median(best):.4f} "
              f"({best[0]:.4f}-{best[-1]:.4f}) | {median(steps):,.0f} | "
              f"{sum(r['spikes'] for r in rs)} |")


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


if __name__ == "__main__":
    main()
