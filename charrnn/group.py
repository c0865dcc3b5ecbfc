"""The processes that train one model together: a group of one, or the ranks of an MPI job.

The training loop (run.py) speaks to its group and never asks whether there is more than one
process: the job of a group is to make R processes compute what one process computes. `Solo` is
the one-process group, where every collective is the identity; `distributed.Group` implements
the same methods over MPI (every rank takes its rows of each batch, gradients are summed with
an Allreduce, rank 0 alone writes). The methods, in the order a run meets them:

    in_turns(load, *args)                 setup: build a cache without two writers at once
    on_root(fn, *args)                    setup: fn on one process, its result everywhere
    corpus(items, encoding)               setup: the encoded corpus everywhere
    batches(ids, batch_size, seq_len)     this process's rows of every training window
    default_threads()                     worker threads when --threads is not given
    ready(params, corpus_id)              the end of setup: the same corpus and parameters
    record_batches(batches)               this process's records of every training batch
    my_rows(state), rows_of_rng(rng, b)   this process's rows of the carried state, of dropout
    reducer(grads)                        what the backward hands each finished layer to
    add_gradients(grads, loss, reducer)   every process's share added: the global batch's mean
    after_step(params, step)              every so often, check that the ranks still agree
    any(*flags)                           each flag, true everywhere when true anywhere
    exchange(value)                       every process's value, in rank order
    evaluate(model, ids, batch, seq_len)  validation over the global batch's rows
    evaluate_records(model, recs, batch)  validation of records, shared out
    save(write, path, meta, arrays)       one checkpoint, written once
    open_on_root(path, ...)               the metrics log (open() where this process writes)
"""
from __future__ import annotations

from .corpus import load_corpus
from .data import Batches
from .evaluate import evaluate_ids, evaluate_records
from .sources import gather


class Solo:
    """The group of one process: every collective returns what it was given."""

    rank, size, root = 0, 1, True
    distributed = False  # not an MPI job (setup refuses what MPI cannot do yet)
    overlap = False      # the backward runs in one call (see distributed.Group.reducer)

    def in_turns(self, load, *args):
        return load(*args)

    def on_root(self, fn, *args):
        return fn(*args)

    def corpus(self, items: list[str], encoding: str):
        return load_corpus(gather(items, encoding), encoding)

    def batches(self, ids, batch_size: int, seq_len: int) -> Batches:
        return Batches(ids, batch_size, seq_len)

    def default_threads(self):
        return None  # every core this process may use (threads.py)

    def ready(self, params, corpus_id: dict) -> None:
        pass

    def my_rows(self, state):
        return state

    def record_batches(self, batches):
        return batches

    def rows_of_rng(self, rng, batches):
        return rng

    def reducer(self, grads):
        return None  # nothing to send: the backward runs in one call

    def add_gradients(self, grads, loss: float, reducer=None) -> float:
        return loss

    def after_step(self, params, step: int) -> None:
        pass

    def any(self, *flags: bool) -> tuple:
        return tuple(bool(f) for f in flags)

    def exchange(self, value=None) -> list:
        return [value]

    def evaluate(self, model, ids, batch_size: int, seq_len: int):
        return evaluate_ids(model, ids, batch_size, seq_len)

    def evaluate_records(self, model, recs, batch_size: int):
        return evaluate_records(model, recs, batch_size)

    def save(self, write, path, meta: dict, arrays: dict) -> None:
        write(path, meta, arrays)

    def open_on_root(self, path, *args, **kwargs):
        return open(path, *args, **kwargs)
