"""Where the time of one training step goes, by phase.

    python bench/profile_step.py [--model lstm --layers 2 --hidden 128 --steps 40]

Runs training steps (batch 50, seq 50, vocab 65, Adam, clipping) under cProfile and splits the time
by what it is spent on; BLAS products are attributed by their caller (recurrent forward, recurrent
backward, weight gradients, ...). cProfile adds about a microsecond per call, so the shares are
close but the total is a little slower than bench/throughput.py.
"""
import argparse
import cProfile
import os
import pstats
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

PHASES = [  # (label, function name, caller name or None)
    ("recurrent products, forward (BLAS, per step)", "dot", "layer_forward"),
    ("cell pointwise kernels, forward", "_step_forward", None),
    ("recurrent products, backward (BLAS, per step)", "dot", "layer_backward"),
    ("cell pointwise kernels, backward", "_step_backward", None),
    ("weight gradients and gradient to the layer below (BLAS)", "dot", "_weight_grads"),
    ("input projections of the layers above the first (BLAS)", "dot", "_project"),
    ("one-hot gather / scatter", "embed_", None),
    ("decoder forward (BLAS)", "dot", "forward"),
    ("decoder backward (BLAS)", "dot", "backward"),
    ("softmax cross-entropy", "xent_", None),
    ("optimizer update", "adam_update", None),
    ("gradient clipping (norm)", "clip_gradients", None),
]


def _expose_dot():
    """np.dot is a C dispatcher object that cProfile does not record; route charrnn's calls
    through a Python function named `dot` so that BLAS time shows up with its caller."""
    import types

    import numpy as np

    from charrnn import layers, model

    def dot(*args, **kwargs):
        return np.dot(*args, **kwargs)

    proxy = types.SimpleNamespace(**{k: getattr(np, k) for k in dir(np) if not k.startswith("__")})
    proxy.dot = dot
    layers.np = model.np = proxy


def main():
    from throughput import B, T, charrnn_training_step

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="lstm")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--steps", type=int, default=40)
    a = ap.parse_args()
    _, step = charrnn_training_step(a.model, a.layers, a.hidden)
    _expose_dot()
    for _ in range(3):
        step()
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(a.steps):
        step()
    prof.disable()
    st = pstats.Stats(prof).stats
    total = sum(v[2] for v in st.values())
    print(f"{a.model} {a.layers}x{a.hidden}, batch {B}, seq {T}: {1000 * total / a.steps:.1f} ms "
          f"per step under cProfile\n")
    print("| phase | ms per step | share |\n|---|---|---|")
    accounted = 0.0
    for label, name, caller in PHASES:
        t = 0.0
        for (_, _, fn), (_, _, tt, _, callers) in st.items():
            if name not in fn:
                continue
            if caller is None:
                t += tt
            else:
                t += sum(c[2] for (_, _, cf), c in callers.items() if cf == caller)
        accounted += t
        print(f"| {label} | {1000 * t / a.steps:.2f} | {100 * t / total:.0f}% |")
    rest = total - accounted
    print(f"| Python glue (loops, slicing, calls) | {1000 * rest / a.steps:.2f} | "
          f"{100 * rest / total:.0f}% |")


if __name__ == "__main__":
    main()
