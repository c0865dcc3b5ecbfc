"""Large-corpus benchmark: encoding speed and peak memory on a generated 1 GB UTF-8 corpus.

    python bench/large_corpus.py [--size-mb 1024] [--steps 200] [--dir /tmp/charrnn-large]

Builds the corpus from tinyshakespeare with a few non-ASCII characters mixed in (so decoding is
real UTF-8 work), then, each in a fresh subprocess: encodes it to the binary cache (MB/s and peak
RSS), and trains LSTM 2x128 on it for --steps steps (peak RSS, measured from outside).
"""
import argparse
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_corpus(path, size_mb):
    with open(os.path.join(ROOT, "data", "tinyshakespeare.txt"), encoding="utf-8") as f:
        base = f.read()
    base = base.replace("thee", "th\u00e9e").replace("love", "l\u00f6ve")  # 2-byte characters
    block = base.encode("utf-8")
    target = size_mb << 20
    with open(path, "wb") as f:
        written = 0
        while written < target:
            chunk = block[: target - written]
            while chunk and (chunk[-1] & 0xC0) == 0x80:  # do not cut a character in half
                chunk = chunk[:-1]
            if chunk and chunk[-1] >= 0xC0:
                chunk = chunk[:-1]
            f.write(chunk)
            written += len(chunk)


def child_peak(cmd):
    code = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
            "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
            "print(time.perf_counter() - t, "
            "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)")
    out = subprocess.run([sys.executable, "-c", code] + cmd, capture_output=True, text=True,
                         check=True)
    secs, rss = out.stdout.split()
    return float(secs), float(rss)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--dir", default="/tmp/charrnn-large")
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    corpus = os.path.join(a.dir, "large.txt")
    if not os.path.exists(corpus) or os.path.getsize(corpus) < (a.size_mb << 20) - 8:
        make_corpus(corpus, a.size_mb)
    cache = os.path.join(a.dir, ".charrnn-cache")
    for f in os.listdir(cache) if os.path.isdir(cache) else []:
        os.unlink(os.path.join(cache, f))
    size = os.path.getsize(corpus) / 1e6
    enc = [sys.executable, "-c", (f"import sys; sys.path.insert(0, {ROOT!r}); "
                                  "from charrnn.corpus import load_corpus; "
                                  f"c = load_corpus({corpus!r}); "
                                  "print(len(c.ids), len(c.vocab))")]
    secs, rss = child_peak(enc)
    print(f"# large corpus: {size:,.0f} MB of UTF-8 ({time.strftime('%Y-%m-%d')})")
    print(f"command: python bench/large_corpus.py --size-mb {a.size_mb} --steps {a.steps}")
    print(f"encoding to the cache: {secs:.1f} s, {size / secs:.0f} MB/s (two streaming passes), "
          f"peak RSS {rss:.0f} MiB")
    secs, rss = child_peak(enc)
    print(f"second load (cache hit): {secs:.2f} s, peak RSS {rss:.0f} MiB")
    train = [sys.executable, "-m", "charrnn", "train", corpus, "--max-steps", str(a.steps),
             "--eval-every", str(a.steps), "--quiet", "--hidden", "128", "--overwrite",
             "--checkpoint-dir", os.path.join(a.dir, "run")]
    secs, rss = child_peak(train)
    print(f"`charrnn train` LSTM 2x128, {a.steps} steps + 1 validation: {secs:.0f} s, "
          f"peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
