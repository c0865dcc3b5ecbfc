"""Records mode on names: charrnn against PyTorch models trained for the same time on the same split.

    pip download names==0.3.0 --no-deps -d /tmp && python bench/names.py --prepare \
        /tmp/names-0.3.0.tar.gz --out /tmp/surnames.txt            # the data (not committed)
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/names.py /tmp/surnames.txt \
        --seconds 120 [--only charrnn,torch-gru,torch-transformer]

The data: the 30,000 most common surnames of the 1990 US Census (public domain; the `names`
package on PyPI carries the Census lists), lower-cased, one per line.
Every contender sees the same records: charrnn's own seeded split (records.split, seed 0, 10%
held out). The loss is nats per predicted character, every character and every end counted once
(what `charrnn eval` reports for a records model); each contender validates every --eval-seconds
and its best held-out loss is reported, as charrnn's best.npz is.

Contenders (PyTorch ones need torch in this Python; they run with as many threads as charrnn):
- charrnn: `charrnn train --records --time-limit S`, the model given by --cell/--hidden/--layers.
- torch-gru: the same model in PyTorch (one-hot input, nn.GRU/nn.LSTM, nn.Linear), same optimizer,
  batch and learning rate, each record from a zero state, padding ignored.
- torch-transformer: makemore's default Transformer (4 layers, 4 heads, 64 wide, AdamW 5e-4,
  weight decay 0.01, batch 32), reimplemented here.
"""
from __future__ import annotations

import argparse
import io
import json
import math
import os
import subprocess
import sys
import tarfile
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def prepare(sdist: str, out: str, count: int = 30000) -> None:
    """The `count` most common Census surnames (the file is ordered by frequency), lower-cased."""
    with tarfile.open(sdist) as t:
        member = next(m for m in t.getmembers() if m.name.endswith("dist.all.last"))
        lines = io.TextIOWrapper(t.extractfile(member), "ascii").read().splitlines()
    names = [line.split()[0].lower() for line in lines if line.strip()][:count]
    with open(out, "w") as f:
        f.write("\n".join(names) + "\n")
    print(f"wrote {len(names)} names to {out}")


def split_records(path: str):
    """(train, val) lists of strings: exactly charrnn's split for seed 0, fraction 0.1."""
    from charrnn import records
    from charrnn.corpus import load_corpus

    corpus = load_corpus(path)
    recs, vocab, _ = records.from_corpus(corpus.ids, corpus.vocab.chars, path)
    tr, va = records.split(recs, 0.1, 1_000_000, seed=0)
    return tr.texts(vocab), va.texts(vocab), [c for c in vocab.chars if c]


def run_charrnn(path, args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "charrnn", "train", path, "--records", "--model", args.cell,
               "--hidden", str(args.hidden), "--layers", str(args.layers), "--dropout",
               str(args.dropout), "--batch-size", str(args.batch_size), "--lr", str(args.lr),
               "--time-limit", str(args.seconds), "--eval-every", str(args.eval_every),
               "--checkpoint-dir", tmp, "--quiet"]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        wall = time.perf_counter() - t0
        import charrnn
        info = charrnn.info(tmp)
        model = charrnn.load(tmp)
        samples = charrnn.sample_many(model, 20, 40, 0.8, seed=1)
    return {"contender": "charrnn", "best_val": info["best_val_loss"], "steps": info["steps"],
            "wall_s": wall, "samples": samples}


def run_torch(kind, train, val, chars, args) -> dict:
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    V = len(chars) + 1  # 0 is the end symbol, as in charrnn
    index = {c: i + 1 for i, c in enumerate(chars)}
    width = max(len(s) for s in train + val) + 1

    def tensors(names):
        x = torch.zeros(len(names), width, dtype=torch.long)
        y = torch.full((len(names), width), -1, dtype=torch.long)
        for i, s in enumerate(names):
            ids = [index[c] for c in s]
            x[i, 1:len(ids) + 1] = torch.tensor(ids, dtype=torch.long)
            y[i, :len(ids)] = torch.tensor(ids, dtype=torch.long)
            y[i, len(ids)] = 0
        return x, y

    xt, yt = tensors(train)
    xv, yv = tensors(val)
    if kind == "torch-gru":
        model = _Recurrent(args.cell, V, args.hidden, args.layers, args.dropout)
        opt = torch.optim.Adam(model.parameters(), lr=args.lr)
        batch = args.batch_size
    else:
        model = _Transformer(V, width, n_layer=4, n_head=4, n_embd=64)
        opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.01,
                                betas=(0.9, 0.99), eps=1e-8)
        batch = 32

    def loss_of(x, y):
        logits = model(x)
        return F.cross_entropy(logits.reshape(-1, V), y.reshape(-1), ignore_index=-1,
                               reduction="sum"), int((y >= 0).sum())

    def evaluate():
        model.eval()
        total, count = 0.0, 0
        with torch.no_grad():
            for i in range(0, len(xv), 500):
                s, n = loss_of(xv[i:i + 500], yv[i:i + 500])
                total, count = total + float(s), count + n
        model.train()
        return total / count

    g = torch.Generator().manual_seed(0)
    best, steps, t0 = math.inf, 0, time.perf_counter()
    next_eval = t0 + args.eval_seconds
    while time.perf_counter() - t0 < args.seconds:
        idx = torch.randint(0, len(xt), (batch,), generator=g)
        x, y = xt[idx], yt[idx]
        keep = int((y >= 0).sum(1).max())  # trim the padding columns no row needs
        s, n = loss_of(x[:, :keep], y[:, :keep])
        opt.zero_grad(set_to_none=True)
        (s / n).backward()
        if kind == "torch-gru":
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        steps += 1
        if time.perf_counter() >= next_eval:
            best = min(best, evaluate())
            next_eval = time.perf_counter() + args.eval_seconds
    best = min(best, evaluate())
    return {"contender": kind, "best_val": best, "steps": steps,
            "wall_s": time.perf_counter() - t0, "torch": torch.__version__}


def _Recurrent(cell, V, H, L, dropout):
    import torch

    class Recurrent(torch.nn.Module):
        def __init__(self):
            super().__init__()
            rnn = {"gru": torch.nn.GRU, "lstm": torch.nn.LSTM, "rnn": torch.nn.RNN}[cell]
            self.rnn = rnn(V, H, L, dropout=dropout if L > 1 else 0.0, batch_first=True)
            self.drop = torch.nn.Dropout(dropout)
            self.out = torch.nn.Linear(H, V)

        def forward(self, x):
            h, _ = self.rnn(torch.nn.functional.one_hot(x, V).float())
            return self.out(self.drop(h))
    return Recurrent()


def _Transformer(V, block, n_layer, n_head, n_embd):
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(n_embd), nn.LayerNorm(n_embd)
            self.attn = nn.MultiheadAttention(n_embd, n_head, batch_first=True)
            self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(),
                                     nn.Linear(4 * n_embd, n_embd))

        def forward(self, x, mask):
            h = self.ln1(x)
            x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
            return x + self.mlp(self.ln2(x))

    class Transformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(V, n_embd), nn.Embedding(block, n_embd)
            self.blocks = nn.ModuleList([Block() for _ in range(n_layer)])
            self.ln, self.head = nn.LayerNorm(n_embd), nn.Linear(n_embd, V, bias=False)

        def forward(self, idx):
            T = idx.shape[1]
            mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
            x = self.wte(idx) + self.wpe(torch.arange(T))
            for b in self.blocks:
                x = b(x, mask)
            return self.head(self.ln(x))
    return Transformer()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("path", nargs="?")
    ap.add_argument("--prepare", metavar="SDIST", help="write the data from the names sdist")
    ap.add_argument("--out", default="surnames.txt")
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--eval-seconds", type=float, default=10)
    ap.add_argument("--eval-every", type=int, default=500, help="charrnn's --eval-every")
    ap.add_argument("--only", default="charrnn,torch-gru,torch-transformer")
    # charrnn's defaults unless told
    from charrnn.config import BATCH_SIZE, LR, ModelConfig
    ap.add_argument("--cell", default=ModelConfig.cell)
    ap.add_argument("--hidden", type=int, default=ModelConfig.hidden)
    ap.add_argument("--layers", type=int, default=ModelConfig.layers)
    ap.add_argument("--dropout", type=float, default=ModelConfig.dropout)
    ap.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    ap.add_argument("--lr", type=float, default=LR)
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = ap.parse_args()
    if args.prepare:
        return prepare(args.prepare, args.out)
    train, val, chars = split_records(args.path)
    print(f"# {len(train)} training and {len(val)} held-out records; {len(chars)} characters + "
          f"end; {args.seconds:.0f} s each; model {args.cell} {args.layers}x{args.hidden}",
          flush=True)
    for kind in args.only.split(","):
        r = run_charrnn(args.path, args) if kind == "charrnn" else \
            run_torch(kind, train, val, chars, args)
        print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
