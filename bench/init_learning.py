"""Does the initialisation (or a warm-up) change how fast the defaults learn? Validation loss at
equal steps.

    python bench/init_learning.py --steps 600 --every 100 --seeds 0,1,2 --inits pytorch,forget1
    python bench/init_learning.py --inits pytorch --warmups 0,100,200

Each run trains charrnn's default model and recipe (LSTM 2x256, batch 50 x 50 with the state
carried, Adam 3e-3, clipping at 5, constant rate) from one initialisation and reports the loss on
the first 50,000 held-out characters every --every steps; timing plays no part, so it may share
the machine. Initialisations:
  pytorch  charrnn's: every weight and bias uniform in +-1/sqrt(H), as torch.nn.LSTM and Linear
  forget1  the same, then the LSTM forget-gate bias set to 1 (b_ih) and 0 (b_hh), as charrnn
           did before 2026-12-01
  zero-decoder-bias  pytorch's with the decoder's bias zero
  log-prior  pytorch's with the decoder's bias set to the log of the training characters'
           frequencies (the loss starts at the unigram entropy instead of ln V)
  wx0xS    pytorch's with the first layer's input weights (the one-hot rows, an embedding)
           scaled by S, e.g. wx0x8 (one-hot input has fan-in 1, not H)
  orthogonal  pytorch's with every recurrent gate block W_h orthogonal (QR of a Gaussian)
Several joined by + apply in turn (log-prior+wx0x4).
--warmups: linear warm-up steps of the rate (TrainConfig.warmup_steps), crossed with --inits.
Prints one line per run and the median and range at the last report per variant.
"""
import argparse
import os
import statistics
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def initialised(model, init: str, train_ids=None, seed=0):
    """The model with `init` applied: one name, or several joined by + (log-prior+wx0x4)."""
    if "+" in init:
        for part in init.split("+"):
            initialised(model, part, train_ids, seed)
        return model
    from charrnn.cells import prior_bias, views
    from charrnn.data import target_counts
    p, H = views(model.params, model.cfg), model.cfg.hidden
    if init == "log-prior":
        p["dec.b"][:] = prior_bias(target_counts(train_ids, model.cfg.vocab_size))
    elif init.startswith("wx0x"):
        p["l0.wx"][:] *= float(init[4:])
    elif init == "orthogonal":
        rng = np.random.default_rng(1000 + seed)
        for k in range(model.cfg.layers):
            wh = p[f"l{k}.wh"]
            for g in range(wh.shape[1] // H):
                q, r = np.linalg.qr(rng.standard_normal((H, H)))
                wh[:, g * H:(g + 1) * H] = q * np.sign(np.diag(r))
    elif init == "forget1":
        for k in range(model.cfg.layers):
            p[f"l{k}.bx"][H:2 * H] = 1.0
            p[f"l{k}.bh"][H:2 * H] = 0.0
    elif init == "zero-decoder-bias":
        p["dec.b"][:] = 0.0
    elif init != "pytorch":
        raise SystemExit(f"unknown --inits entry {init!r}")
    return model


def main():
    from charrnn import TrainConfig
    from charrnn.config import BATCH_SIZE, ModelConfig
    from charrnn.data import Batches, Vocab, read_text, split
    from charrnn.evaluate import evaluate_ids
    from charrnn.model import Model
    from charrnn.optim import Optimizer, clip_gradients, learning_rate

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--inits", default="pytorch,forget1")
    ap.add_argument("--warmups", default="0")
    a = ap.parse_args()
    text = read_text(os.path.join(ROOT, "data", "tinyshakespeare.txt"))
    vocab = Vocab.from_text(text)
    train_ids, val_ids = split(vocab.encode(text), 0.1)
    val_ids = val_ids[:50_000]
    tc = TrainConfig(batch_size=BATCH_SIZE)
    batches = Batches(train_ids, tc.batch_size, tc.seq_len)
    last = {}
    variants = [(i, int(w)) for i in a.inits.split(",") for w in a.warmups.split(",")]
    for init, warmup in variants:
        name = init + (f" warm-up {warmup}" if warmup else "")
        rate = TrainConfig(lr_schedule="constant", warmup_steps=warmup)
        for seed in [int(s) for s in a.seeds.split(",")]:
            m = initialised(Model(ModelConfig(len(vocab), "lstm", 256, 2), vocab=vocab,
                                  seed=seed), init, train_ids, seed)
            opt = Optimizer("adam", m.params.size)
            state, curve = m.zero_state(tc.batch_size), []
            for step in range(a.steps):
                w = step % batches.windows
                if w == 0:
                    state = m.zero_state(tc.batch_size)
                x, y = batches.window(w)
                _, state = m.loss_and_grad(x, y, state)
                clip_gradients(m.grads, tc.grad_clip)
                opt.step(m.params, m.grads, learning_rate(rate, step, 0.0, None))
                if (step + 1) % a.every == 0:
                    curve.append(evaluate_ids(m, val_ids, 50, 50).nats_per_char)
            print(f"{name} seed {seed}: " + " ".join(f"{v:.3f}" for v in curve), flush=True)
            last.setdefault(name, []).append(curve[-1])
    for init, vs in last.items():
        print(f"{init}: at step {a.steps} median {statistics.median(vs):.3f} "
              f"(range {min(vs):.3f}-{max(vs):.3f}, {len(vs)} seeds)")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
