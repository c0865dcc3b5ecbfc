"""Write the PyTorch reference fixtures that tests/test_reference.py compares against.

Needs torch (not a dependency of charrnn; CI never runs this):
    pip install torch numpy && python tests/make_reference.py

For each cell (RNN tanh, GRU, LSTM), 2 layers, in float64: fixed weights drawn from a seeded numpy
generator and loaded into torch.nn.{RNN,GRU,LSTM} + nn.Linear, one-hot inputs, targets and a
nonzero initial state. Saved: the weights (PyTorch names), inputs, targets, h0 (and c0), the
logits, the mean cross-entropy, the gradient of every weight and of h0/c0, and the losses and final
weights of 10 Adam steps (lr 0.01, from a zero initial state).
"""
import os

import numpy as np
import torch
import torch.nn.functional as F

V, H, L, T, B = 7, 5, 2, 6, 3
HERE = os.path.dirname(os.path.abspath(__file__))
G = {"rnn": 1, "gru": 3, "lstm": 4}


def build(cell, rng):
    rnn = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell](V, H, L).double()
    dec = torch.nn.Linear(H, V).double()
    weights = {}
    for name, p in list(rnn.named_parameters()):
        weights[f"rnn.{name}"] = rng.uniform(-0.8, 0.8, tuple(p.shape))
    for name, p in dec.named_parameters():
        weights[f"decoder.{name}"] = rng.uniform(-0.8, 0.8, tuple(p.shape))
    with torch.no_grad():
        for name, p in rnn.named_parameters():
            p.copy_(torch.from_numpy(weights[f"rnn.{name}"]))
        for name, p in dec.named_parameters():
            p.copy_(torch.from_numpy(weights[f"decoder.{name}"]))
    return rnn, dec, weights


def run(rnn, dec, x, y, h0, c0, cell):
    inp = F.one_hot(x, V).double()
    state = (h0, c0) if cell == "lstm" else h0
    out, _ = rnn(inp, state)
    logits = dec(out)
    return logits, F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))


def make(cell, seed):
    rng = np.random.default_rng(seed)
    rnn, dec, weights = build(cell, rng)
    x = torch.from_numpy(rng.integers(0, V, (T, B)))
    y = torch.from_numpy(rng.integers(0, V, (T, B)))
    h0 = torch.from_numpy(rng.normal(0, 0.5, (L, B, H))).requires_grad_()
    c0 = torch.from_numpy(rng.normal(0, 0.5, (L, B, H))).requires_grad_()
    logits, loss = run(rnn, dec, x, y, h0, c0, cell)
    loss.backward()
    out = {f"w:{k}": v for k, v in weights.items()}
    named = [(f"rnn.{n}", p) for n, p in rnn.named_parameters()] + \
            [(f"decoder.{n}", p) for n, p in dec.named_parameters()]
    out.update({f"g:{n}": p.grad.numpy().copy() for n, p in named})
    out.update(x=x.numpy(), y=y.numpy(), h0=h0.detach().numpy(), c0=c0.detach().numpy(),
               logits=logits.detach().numpy(), loss=np.array(loss.item()),
               dh0=h0.grad.numpy(), dc0=c0.grad.numpy() if cell == "lstm" else np.zeros(0))
    # 10 Adam steps on the same batch from a zero state.
    params = [p for _, p in named]
    opt = torch.optim.Adam(params, lr=0.01)
    zeros = torch.zeros(L, B, H, dtype=torch.float64)
    losses = []
    for _ in range(10):
        opt.zero_grad()
        _, loss = run(rnn, dec, x, y, zeros, zeros, cell)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    out["adam_losses"] = np.array(losses)
    out.update({f"adam:{n}": p.detach().numpy().copy() for n, p in named})
    np.savez(os.path.join(HERE, "fixtures", f"reference_{cell}.npz"), **out)
    print(f"{cell}: loss {out['loss']:.6f}, Adam losses {losses[0]:.4f} -> {losses[-1]:.4f}")


if __name__ == "__main__":
    torch.manual_seed(0)
    for i, cell in enumerate(["rnn", "gru", "lstm"]):
        make(cell, 100 + i)
    print("torch", torch.__version__)
