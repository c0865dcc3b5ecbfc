"""How large is a `charrnn show` page? 20,000 characters of tinyshakespeare, LSTM 2x256.

    python bench/show_size.py                     # an untrained model and one with wider weights
    python bench/show_size.py --checkpoint RUN    # a trained one

Prints the page's size in MB and how long building it took.
"""
import argparse
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main():
    import charrnn
    from charrnn.config import ModelConfig
    from charrnn.data import Vocab
    from charrnn.model import Model

    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--chars", type=int, default=20_000)
    a = ap.parse_args()
    full = open(os.path.join(ROOT, "data", "tinyshakespeare.txt")).read()
    if a.checkpoint:
        models = {a.checkpoint: charrnn.load(a.checkpoint)}
    else:
        v = Vocab.from_text(full)
        wide = Model(ModelConfig(len(v), "lstm", 256, 2), vocab=v, seed=0)
        wide.params *= 4  # activations spread towards +-1, as a trained model's often are
        models = {"LSTM 2x256, initial weights": Model(ModelConfig(len(v), "lstm", 256, 2),
                                                       vocab=v, seed=0),
                  "LSTM 2x256, weights x4": wide}
    with tempfile.TemporaryDirectory() as tmp:
        for name, m in models.items():
            t0 = time.perf_counter()
            charrnn.show(m, full[: a.chars], os.path.join(tmp, "p.html"))
            size = os.path.getsize(os.path.join(tmp, "p.html"))
            print(f"{name}: {a.chars:,} characters, page {size / 1e6:.2f} MB, "
                  f"{time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
