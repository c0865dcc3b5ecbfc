"""How exact are charrnn's float32 gradients, next to PyTorch's? (issue: the best model per minute)

    python bench/grad_precision.py --train-steps 500        # needs torch

Trains charrnn's default model (LSTM 2x256) for --train-steps steps to reach a realistic point,
then on the next few windows computes the gradient four ways from the same weights and state:
charrnn float32 (the training path), charrnn float64 (exact tanh/exp), PyTorch float32 and
PyTorch float64. Prints, per parameter block and in all, the relative error of each float32
gradient against the float64 one (||g32 - g64|| / ||g64||), and the two float64 gradients'
agreement (they should agree to ~1e-12: that is the check that both compute the same function).
If charrnn's float32 error is of PyTorch's size, float32 arithmetic is not why the two learn
differently.
"""
import argparse
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def torch_grads(torch, sd, cell, x, y, state, V, H, L, dtype):
    """PyTorch's gradient (as charrnn's state_dict keys) of the mean loss on (x, y)."""
    import torch.nn.functional as F
    cells = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}
    rnn = cells[cell](V, H, L).to(dtype)
    dec = torch.nn.Linear(H, V).to(dtype)
    tm = torch.nn.ModuleDict({"rnn": rnn, "decoder": dec})
    tm.load_state_dict({k: torch.from_numpy(v.astype(np.float64)).to(dtype)
                        for k, v in sd.items()})
    eye = torch.eye(V, dtype=dtype)
    h0 = tuple(torch.from_numpy(s.astype(np.float64)).to(dtype) for s in state)
    out, _ = rnn(eye[torch.from_numpy(x).long()], h0 if cell == "lstm" else h0[0])
    loss = F.cross_entropy(dec(out).reshape(-1, V), torch.from_numpy(y).long().reshape(-1))
    loss.backward()
    return {k: p.grad.double().numpy() for k, p in tm.named_parameters()}, float(loss)


def main():
    import torch

    from charrnn.config import BATCH_SIZE, LR, ModelConfig, TrainConfig
    from charrnn.data import Batches, Vocab, read_text, split
    from charrnn.export import state_dict
    from charrnn.model import Model
    from charrnn.optim import Optimizer, clip_gradients

    ap = argparse.ArgumentParser()
    ap.add_argument("--train-steps", type=int, default=500)
    ap.add_argument("--windows", type=int, default=3)
    ap.add_argument("--model", default="lstm")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(2)
    text = read_text(os.path.join(ROOT, "data", "tinyshakespeare.txt"))
    vocab = Vocab.from_text(text)
    train_ids, _ = split(vocab.encode(text), 0.1)
    tc = TrainConfig(batch_size=BATCH_SIZE, lr=LR)
    batches = Batches(train_ids, tc.batch_size, tc.seq_len)
    V, H, L = len(vocab), a.hidden, a.layers
    cfg = ModelConfig(V, a.model, H, L)
    m = Model(cfg, vocab=vocab, seed=a.seed)
    opt = Optimizer("adam", m.params.size)
    state = m.zero_state(tc.batch_size)
    for step in range(a.train_steps):
        w = step % batches.windows
        if w == 0:
            state = m.zero_state(tc.batch_size)
        x, y = batches.window(w)
        _, state = m.loss_and_grad(x, y, state)
        clip_gradients(m.grads, tc.grad_clip)
        opt.step(m.params, m.grads, tc.lr)
    print(f"{a.model} {L}x{H} after {a.train_steps} Adam steps (lr {tc.lr}, seed {a.seed}); "
          f"relative error against float64, per window")
    m64 = Model(cfg, params=m.params.astype(np.float64), dtype=np.float64)
    totals = {"charrnn32": [], "torch32": [], "f64 agree": []}
    for k in range(a.windows):
        w = (a.train_steps + k) % batches.windows
        x, y = batches.window(w)
        m.zero_grad()
        loss32, state_next = m.loss_and_grad(x, y, state)
        g32 = state_dict(m, np.float64, grads=True)
        m64.zero_grad()
        s64 = tuple(s.astype(np.float64) for s in state)
        loss64, _ = m64.loss_and_grad(x, y, s64)
        g64 = state_dict(m64, np.float64, grads=True)
        sd = state_dict(m, np.float64)
        t32, tl32 = torch_grads(torch, sd, a.model, x, y, state, V, H, L, torch.float32)
        t64, tl64 = torch_grads(torch, sd, a.model, x, y, state, V, H, L, torch.float64)
        print(f"window {w}: loss charrnn32 {loss32:.7f} charrnn64 {loss64:.7f} "
              f"torch32 {tl32:.7f} torch64 {tl64:.7f}")
        flat = {n: np.concatenate([g[key].ravel() for key in sorted(g64)])
                for n, g in (("c32", g32), ("c64", g64), ("t32", t32), ("t64", t64))}

        def rel(a_, b_):
            return np.linalg.norm(a_ - b_) / np.linalg.norm(b_)
        for key in sorted(g64):
            print(f"  {key:22s} charrnn32 {rel(g32[key], g64[key]):.2e}  "
                  f"torch32 {rel(t32[key], t64[key]):.2e}  "
                  f"float64s agree {rel(g64[key], t64[key]):.1e}")
        totals["charrnn32"].append(rel(flat["c32"], flat["c64"]))
        totals["torch32"].append(rel(flat["t32"], flat["t64"]))
        totals["f64 agree"].append(rel(flat["c64"], flat["t64"]))
        print(f"  {'all':22s} charrnn32 {totals['charrnn32'][-1]:.2e}  "
              f"torch32 {totals['torch32'][-1]:.2e}  "
              f"float64s agree {totals['f64 agree'][-1]:.1e}", flush=True)
        state = state_next


if __name__ == "__main__":
    main()
