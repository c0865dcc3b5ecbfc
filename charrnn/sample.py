"""Text generation: priming, then a compiled loop that feeds each sampled character back in.

One stream runs matrix-vector products (kernels.generate); K streams run together with
matrix-matrix products (kernels.generate_batch), split across worker threads, so K samples cost
far less than K times one. Stream k draws from its own generator seeded with seed + k, the same
one a single sample with seed + k uses, so a seed reproduces the whole output.
A records model (its vocabulary has data.END) starts every sample at the beginning of a record
(END, then the prime) and ends it at the first END it draws, or after `length` characters.
This module reads a model's params, cfg and vocab and imports nothing of model.py.
"""
from __future__ import annotations

import numpy as np

from . import generate as G
from . import threads as workers
from .cells import CELLS, param_offsets
from .config import SampleConfig as S
from .errors import CharrnnError

CHUNK = 64  # characters per compiled call: small enough to stream, large enough to be cheap


def sample_chunks(model, length: int = S.length, temperature: float = S.temperature,
                  prime: str | None = None, seed: int | None = None, top_k: int = S.top_k,
                  top_p: float = S.top_p, stop=(), stop_exclude: bool = False):
    """An iterator over generated text in chunks (the prime first, if any). The options and the
    prime are checked when it is called, before anything is generated.

    Parameters
    ----------
    model : Model
        With its vocabulary.
    length : int
        Characters to generate after the prime.
    temperature : float
        Logits are divided by it; 0 picks the most likely character every time.
    prime : str, optional
        Text to warm the state with; it is yielded first. Default: a newline if the vocabulary
        has one, else the first character of the vocabulary (not yielded). For a records model,
        the beginning of the record (default: none).
    seed : int, optional
        Seed for reproducible output.
    top_k : int
        Sample only among the k most likely characters (0: all).
    top_p : float
        Nucleus sampling: only the most likely characters whose probability reaches top_p.
    stop : str or sequence of str
        Generation ends right after the first of these appears in the generated text (the
        prime does not count), which is kept unless stop_exclude.
    """
    check_sampling(length, temperature, top_k, top_p, seed)
    stops = check_stops(stop)
    ids = prime_ids(model.vocab, prime)
    prime = prime and model.vocab.from_user(prime)
    chunks = _generate(model, ids, length, temperature, seed, top_k, top_p)
    return _with_prime(prime, _until_stop(chunks, stops, stop_exclude))


def _with_prime(prime, chunks):
    if prime:
        yield prime
    yield from chunks


def check_stops(stop) -> tuple[str, ...]:
    """The stop strings as a tuple (one str, or several); CharrnnError for empty or non-str."""
    stops = (stop,) if isinstance(stop, str) else tuple(stop or ())
    for st in stops:
        if not isinstance(st, str) or not st:
            raise CharrnnError(f"--stop must be a non-empty string, got {st!r}")
    return stops


def _first_stop(text: str, stops) -> tuple[int, str] | None:
    """(index, stop string) of the earliest stop in text, or None."""
    hits = [(i, st) for st in stops if (i := text.find(st)) >= 0]
    return min(hits) if hits else None


def cut_at_stop(text: str, stops, exclude: bool = False) -> str:
    """text up to the end of its first stop string (its start with exclude); all of it if none."""
    hit = _first_stop(text, stops)
    if hit is None:
        return text
    i, st = hit
    return text[: i if exclude else i + len(st)]


def _until_stop(chunks, stops, exclude: bool):
    """The chunks, ended right after the first stop string (which may span chunks). Holds back
    only the characters that could still begin a stop string."""
    if not stops:
        yield from chunks
        return
    keep, held = max(len(st) for st in stops) - 1, ""
    for chunk in chunks:
        held += chunk
        if _first_stop(held, stops) is not None:
            yield cut_at_stop(held, stops, exclude)
            return  # the generator below is not advanced again: generation stops here
        if len(held) > keep:
            yield held[: len(held) - keep]
            held = held[len(held) - keep:]
    if held:
        yield held


def prime_ids(vocab, prime) -> np.ndarray:
    """Ids that warm the state: the prime's, else a newline (or the first character). Raises
    CharrnnError for a prime with characters outside the vocabulary."""
    if vocab is None:
        raise CharrnnError("the model has no vocabulary: load it with charrnn.load(...), or give "
                           "Model(..., vocab=charrnn.Vocab(characters))")
    if prime is not None and not isinstance(prime, str):
        raise CharrnnError(f"prime must be a str, got {prime!r}")
    start = [] if vocab.end is None else [vocab.end]  # a record begins after END
    if prime:
        prime = vocab.from_user(prime)
        missing = vocab.unknown(prime)
        if missing:
            raise CharrnnError("--prime has characters not in the model's vocabulary: "
                               + ", ".join(repr(c) for c in missing))
        return np.concatenate([start, vocab.encode(prime)]).astype(np.int64)
    return np.array(start or [vocab.index.get("\n", 0)], np.int64)


class Stream:
    """One generation stream whose state carries over between calls: feed it text, take
    generated chunks, feed it more (the interactive prompt keeps one for a whole session).

    The state is (h, c) of every layer and the pending input id: the last character fed or
    generated, not yet read by the model. reset() goes back to the start of a line (a records
    model: of a record).
    """

    def __init__(self, model, seed: int | None = None):
        cfg = model.cfg
        self.model, self.vocab = model, model.vocab
        self.params = np.ascontiguousarray(model.params, dtype=np.float32)
        self.offs = param_offsets(cfg)
        self.code, self.relu = CELLS[cfg.cell].code, cfg.activation == "relu"
        self.rng = np.random.default_rng(seed)
        self.reset()

    def reset(self):
        cfg = self.model.cfg
        self.hs = np.zeros((cfg.layers, cfg.hidden), np.float32)  # (L, H)
        self.cs = np.zeros_like(self.hs)
        self.x = int(prime_ids(self.vocab, None)[-1])  # a newline (records: the end symbol)

    def feed(self, ids) -> None:
        """Read ids (n,) after the pending input; the last becomes the pending input."""
        if len(ids) == 0:
            return
        cfg = self.model.cfg
        seq = np.concatenate([[self.x], np.asarray(ids[:-1], np.int64)]).astype(np.int64)
        G.advance(self.hs, self.cs, self.params, self.offs, seq, self.code, self.relu,
                  cfg.hidden, cfg.vocab_size)
        self.x = int(ids[-1])

    def chunks(self, length: int, temperature: float, top_k: int = 0, top_p: float = 1.0):
        """Up to length generated characters, CHUNK at a time (a record ends at its end)."""
        cfg, end = self.model.cfg, self.vocab.end
        out = np.zeros(CHUNK, np.int64)
        for start in range(0, length, CHUNK):
            n = min(CHUNK, length - start)
            G.generate(out[:n], self.hs, self.cs, self.params, self.offs, self.x,
                       self.rng.random(n), self.code, self.relu, cfg.hidden, cfg.vocab_size,
                       float(temperature), int(top_k), float(top_p))
            self.x = int(out[n - 1])
            ended = _until_end(out[:n], end)
            yield self.vocab.decode(ended)
            if len(ended) < n:  # the record ended
                return


def _generate(model, ids, length, temperature, seed, top_k, top_p):
    """The generated text, chunk by chunk: prime the state, then the compiled loop per chunk."""
    stream = Stream(model, seed)
    stream.x = int(ids[0])
    stream.feed(ids[1:])
    yield from stream.chunks(length, temperature, top_k, top_p)


def sample(model, length: int = S.length, temperature: float = S.temperature,
           prime: str | None = None, seed: int | None = None, top_k: int = S.top_k,
           top_p: float = S.top_p, stop=(), stop_exclude: bool = False) -> str:
    """Generated text as one string, prime included (see sample_chunks for the parameters)."""
    return "".join(sample_chunks(model, length, temperature, prime, seed, top_k, top_p, stop,
                                 stop_exclude))


def check_sampling(length: int, temperature: float, top_k: int, top_p: float,
                   seed: int | None = None) -> None:
    """Raise CharrnnError for out-of-range or mistyped sampling options."""
    S(length, temperature, top_k, top_p, seed)


def sample_many(model, num_samples: int, length: int = S.length,
                temperature: float = S.temperature,
                prime: str | None = None, seed: int | None = None, top_k: int = S.top_k,
                top_p: float = S.top_p, threads: int | None = None, stop=(),
                stop_exclude: bool = False) -> list[str]:
    """num_samples samples advanced together, each with the prime in front.

    Sample k equals ``sample(model, ..., seed=seed + k)`` up to float32 rounding (the batched
    products sum in another order). Other parameters as sample_chunks (each sample ends at its
    own first stop string); threads: worker threads (default: every usable core).
    """
    check_sampling(length, temperature, top_k, top_p, seed)
    stops = check_stops(stop)
    if num_samples < 1:
        raise CharrnnError(f"--num-samples must be >= 1, got {num_samples}")
    ids = prime_ids(model.vocab, prime)
    prime = prime and model.vocab.from_user(prime)
    out = np.zeros((num_samples, length), np.int64)
    shards = workers.shard_bounds(num_samples, threads)
    params = np.ascontiguousarray(model.params, dtype=np.float32)
    cfg = model.cfg
    wt = G.transposed_weights(params, param_offsets(cfg), CELLS[cfg.cell].code, cfg.layers,
                              cfg.hidden, cfg.vocab_size)  # one copy, read by every worker
    workers.run([_stream_task(model, params, wt, ids, out, s0, s1, length, temperature, seed,
                              top_k, top_p) for s0, s1 in shards])
    head = prime or ""
    return [head + cut_at_stop(model.vocab.decode(_until_end(row, model.vocab.end)), stops,
                               stop_exclude) for row in out]


def _until_end(ids, end):
    """ids up to (not including) the first END; all of them for a text model or no END."""
    if end is None:
        return ids
    hits = np.flatnonzero(ids == end)
    return ids[: hits[0]] if hits.size else ids


def _stream_task(model, params, wt, ids, out, s0, s1, length, temperature, seed, top_k, top_p):
    """A function generating streams [s0, s1) into out[s0:s1], chunk by chunk as sample_chunks
    does (same chunking, so the same uniforms per stream); params float32, wt their
    transposed_weights."""
    cfg = model.cfg
    offs = param_offsets(cfg)
    code, relu = CELLS[cfg.cell].code, cfg.activation == "relu"
    end = model.vocab.end

    def run():
        n = s1 - s0
        hs = np.zeros((cfg.layers, n, cfg.hidden), np.float32)  # (L, K, H)
        cs = np.zeros_like(hs)
        primed = np.ascontiguousarray(np.repeat(ids[:-1, None], n, axis=1))  # (len - 1, K)
        G.advance_batch(hs, cs, params, offs, wt, primed, code, relu, cfg.hidden,
                        cfg.vocab_size)
        x = np.full(n, ids[-1], np.int64)
        rngs = [np.random.default_rng(None if seed is None else seed + k) for k in range(s0, s1)]
        buf = np.zeros((n, CHUNK), np.int64)
        for start in range(0, length, CHUNK):
            m = min(CHUNK, length - start)
            u = np.stack([r.random(m) for r in rngs])  # (K, m)
            G.generate_batch(buf[:, :m], hs, cs, params, offs, wt, x, u, code, relu, cfg.hidden,
                             cfg.vocab_size, float(temperature), int(top_k), float(top_p))
            out[s0:s1, start:start + m] = buf[:, :m]
            if end is not None and np.all(np.any(out[s0:s1, :start + m] == end, axis=1)):
                out[s0:s1, start + m:] = end  # every record has ended: the rest is not needed
                return
    return run
