"""Does charrnn learn exactly as fast as PyTorch? Same weights, same batches, same optimizer.

    python bench/compare_learning.py --steps 3000 --every 100 --seed 0     # needs torch

Both start from charrnn's initial weights (--init: as `charrnn train --init` makes them, default
charrnn's; copied into torch.nn.LSTM/GRU/RNN + Linear), read the
same truncated-BPTT windows of tinyshakespeare with the carried state reset each epoch, and take
Adam steps with gradient clipping at norm 5. It prints the validation loss of both every --every
steps (float32 in both; small differences come from summation order and charrnn's float32 tanh),
then a summary line: the largest and the mean gap, and the spikes of each (a validation loss more
than 0.1 nats above the best so far), so that several seeds can be compared. With --dropout P
both drop with the same masks (charrnn's, drawn per step), so the two still follow one
trajectory if their dropout is the same arithmetic.
"""
import argparse
import math
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main():
    import torch
    import torch.nn.functional as F

    from charrnn import TrainConfig
    from charrnn.cells import charrnn_init
    from charrnn.config import BATCH_SIZE, LR, ModelConfig
    from charrnn.data import Batches, Vocab, read_text, split, target_counts
    from charrnn.evaluate import evaluate_ids
    from charrnn.export import from_state_dict, state_dict
    from charrnn.model import Model
    from charrnn.optim import Optimizer, clip_gradients

    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--model", default="lstm")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0, help="charrnn's initialisation seed")
    ap.add_argument("--lr", type=float, default=None, help="default: TrainConfig's")
    ap.add_argument("--init", choices=("charrnn", "pytorch"), default=None,
                    help="the initialisation (TrainConfig.init; default: TrainConfig's)")
    ap.add_argument("--charrnn-only", action="store_true",
                    help="skip PyTorch (its curve for a seed is the same every run): to try a "
                         "change to charrnn against an earlier run's PyTorch column")
    ap.add_argument("--dropout", type=float, default=0.0,
                    help="dropout on every layer's output, the same masks in both: charrnn draws "
                         "them, PyTorch's layers run one at a time and are multiplied by them")
    ap.add_argument("--float64", action="store_true",
                    help="a third contender: charrnn in float64 from the same weights (the "
                         "trajectory both float32 runs approximate; which stays nearer?)")
    a = ap.parse_args()
    torch.set_num_threads(2)
    text = read_text(os.path.join(ROOT, "data", "tinyshakespeare.txt"))
    vocab = Vocab.from_text(text)
    train_ids, val_ids = split(vocab.encode(text), 0.1)
    tc = TrainConfig(batch_size=BATCH_SIZE, lr=LR if a.lr is None else a.lr)
    batches = Batches(train_ids, tc.batch_size, tc.seq_len)
    V = len(vocab)
    m = Model(ModelConfig(V, a.model, a.hidden, a.layers, dropout=a.dropout), vocab=vocab,
              seed=a.seed)
    rng = np.random.default_rng(a.seed)  # charrnn's dropout masks
    if (a.init or tc.init) == "charrnn":  # as charrnn.train starts a fresh run
        charrnn_init(m.params, m.cfg, target_counts(train_ids, V))
    cells = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}
    rnn = cells[a.model](V, a.hidden, a.layers)
    dec = torch.nn.Linear(a.hidden, V)
    tm = torch.nn.ModuleDict({"rnn": rnn, "decoder": dec})
    tm.load_state_dict({k: torch.from_numpy(v) for k, v in state_dict(m).items()})
    # with dropout, the same model as one single-layer module per layer (sharing tm's tensors),
    # so that charrnn's masks can multiply each layer's output
    layers = [cells[a.model](V if k == 0 else a.hidden, a.hidden, 1) for k in range(a.layers)]
    for k, layer in enumerate(layers):
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            setattr(layer, f"{name}_l0", getattr(rnn, f"{name}_l{k}"))
    opt = Optimizer("adam", m.params.size)
    m64 = Model(m.cfg, params=m.params.astype(np.float64), dtype=np.float64, vocab=vocab) \
        if a.float64 else None
    opt64 = Optimizer("adam", m.params.size, dtype=np.float64) if m64 else None
    state64 = m64.zero_state(tc.batch_size) if m64 else None
    topt = torch.optim.Adam(tm.parameters(), lr=tc.lr)
    eye = torch.eye(V)
    state, tstate = m.zero_state(tc.batch_size), None
    print(f"{a.model} {a.layers}x{a.hidden} seed {a.seed} init {a.init or tc.init} lr {tc.lr} "
          f"dropout {a.dropout}: "
          "step, val loss charrnn, val loss PyTorch"
          + (", val loss charrnn float64" if m64 else ""))
    curves = ([], [], [])
    for step in range(a.steps):
        w = step % batches.windows
        if w == 0:
            state, tstate = m.zero_state(tc.batch_size), None
            state64 = m64.zero_state(tc.batch_size) if m64 else None
        x, y = batches.window(w)
        _, state = m.loss_and_grad(x, y, state, rng=rng if a.dropout else None)
        clip_gradients(m.grads, tc.grad_clip)
        opt.step(m.params, m.grads, tc.lr)
        if m64:
            _, state64 = m64.loss_and_grad(x, y, state64)
            clip_gradients(m64.grads, tc.grad_clip)
            opt64.step(m64.params, m64.grads, tc.lr)
        if not a.charrnn_only:
            if a.dropout:
                out, masks = eye[torch.from_numpy(x).long()], torch.from_numpy(m.dropout_masks)
                tstate = tstate or [None] * a.layers
                for k, layer in enumerate(layers):
                    out, st = layer(out, tstate[k])
                    out = out * masks[k]
                    tstate[k] = tuple(s.detach() for s in st) if isinstance(st, tuple) \
                        else st.detach()
            else:
                out, tstate = rnn(eye[torch.from_numpy(x).long()], tstate)
                tstate = tuple(s.detach() for s in tstate) if isinstance(tstate, tuple) \
                    else tstate.detach()
            loss = F.cross_entropy(dec(out).reshape(-1, V), torch.from_numpy(y).long().reshape(-1))
            topt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(tm.parameters(), tc.grad_clip)
            topt.step()
        if (step + 1) % a.every == 0:
            ours = evaluate_ids(m, val_ids, 50, 50).nats_per_char
            theirs = from_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()},
                                     a.model)
            ref = math.nan if a.charrnn_only else evaluate_ids(theirs, val_ids, 50, 50).nats_per_char
            exact = evaluate_ids(m64, val_ids, 50, 50).nats_per_char if m64 else math.nan
            print(f"{step + 1}, {ours:.4f}, {ref:.4f}" + (f", {exact:.4f}" if m64 else ""),
                  flush=True)
            for c, v in zip(curves, (ours, ref, exact)):
                c.append(v)
    gaps = [o - r for o, r in zip(*curves[:2])]
    spikes = [sum(v > min(c[:i + 1]) + 0.1 for i, v in enumerate(c)) for c in curves]
    print(f"summary seed {a.seed}: final {curves[0][-1]:.4f} vs {curves[1][-1]:.4f}, gap "
          f"charrnn-PyTorch max {max(gaps):+.4f} min {min(gaps):+.4f} mean {np.mean(gaps):+.4f}; "
          f"spikes charrnn {spikes[0]}, PyTorch {spikes[1]}")
    if m64:
        for name, c in (("charrnn float32", curves[0]), ("PyTorch float32", curves[1])):
            d = [abs(v - e) for v, e in zip(c, curves[2])]
            print(f"  {name} against charrnn float64: mean |gap| {np.mean(d):.4f}, "
                  f"largest {max(d):.4f}")


if __name__ == "__main__":
    main()
