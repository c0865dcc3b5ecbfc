"""Does charrnn learn exactly as fast as PyTorch? Same weights, same batches, same optimizer.

    python bench/compare_learning.py --steps 800 --model lstm     # needs torch

Both start from charrnn's initial weights (copied into torch.nn.LSTM/GRU/RNN + Linear), read the
same truncated-BPTT windows of tinyshakespeare with the carried state reset each epoch, and take
Adam steps with gradient clipping at norm 5. It prints the validation loss of both every --every
steps (float32 in both; small differences come from summation order and charrnn's float32 tanh).
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main():
    import torch
    import torch.nn.functional as F

    from charrnn import TrainConfig
    from charrnn.config import ModelConfig
    from charrnn.data import Batches, Vocab, read_text, split
    from charrnn.evaluate import evaluate_ids
    from charrnn.export import from_state_dict, state_dict
    from charrnn.model import Model
    from charrnn.optim import Optimizer, clip_gradients

    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--every", type=int, default=200)
    ap.add_argument("--model", default="lstm")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(2)
    text = read_text(os.path.join(ROOT, "data", "tinyshakespeare.txt"))
    vocab = Vocab.from_text(text)
    train_ids, val_ids = split(vocab.encode(text), 0.1)
    tc = TrainConfig()
    batches = Batches(train_ids, tc.batch_size, tc.seq_len)
    V = len(vocab)
    m = Model(ModelConfig(V, a.model, a.hidden, a.layers), vocab=vocab)
    cells = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}
    rnn = cells[a.model](V, a.hidden, a.layers)
    dec = torch.nn.Linear(a.hidden, V)
    tm = torch.nn.ModuleDict({"rnn": rnn, "decoder": dec})
    tm.load_state_dict({k: torch.from_numpy(v) for k, v in state_dict(m).items()})
    opt = Optimizer("adam", m.params.size)
    topt = torch.optim.Adam(tm.parameters(), lr=tc.lr)
    eye = torch.eye(V)
    state, tstate = m.zero_state(tc.batch_size), None
    print(f"{a.model} {a.layers}x{a.hidden}: step, val loss charrnn, val loss PyTorch")
    for step in range(a.steps):
        w = step % batches.windows
        if w == 0:
            state, tstate = m.zero_state(tc.batch_size), None
        x, y = batches.window(w)
        _, state = m.loss_and_grad(x, y, state)
        clip_gradients(m.grads, tc.grad_clip)
        opt.step(m.params, m.grads, tc.lr)
        out, tstate = rnn(eye[torch.from_numpy(x).long()], tstate)
        tstate = tuple(s.detach() for s in tstate) if isinstance(tstate, tuple) else tstate.detach()
        loss = F.cross_entropy(dec(out).reshape(-1, V), torch.from_numpy(y).long().reshape(-1))
        topt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(tm.parameters(), tc.grad_clip)
        topt.step()
        if (step + 1) % a.every == 0:
            ours = evaluate_ids(m, val_ids, 50, 50).nats_per_char
            theirs = from_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()},
                                     a.model)
            ref = evaluate_ids(theirs, val_ids, 50, 50).nats_per_char
            print(f"{step + 1}, {ours:.4f}, {ref:.4f}",
                  flush=True)


if __name__ == "__main__":
    main()
