"""Setting up a training run: the corpus, the model, the run directory and resume; `train()`.

train() checks every input, reads the corpus, builds (or restores) the model and hands the run
to run.Run, whose loop does the steps, validation and checkpoints (see run.py). The same code
runs in one process and as each rank of an MPI job: only the group differs (group.py).
"""
from __future__ import annotations

import dataclasses
import sys
import zipfile
from pathlib import Path

import numpy as np

from . import budget, jit, sources, strategy
from . import checkpoint as ckpt
from . import distributed as mpi
from . import records as rec
from .cells import charrnn_init, num_params
from .config import BATCH_SIZE, EVAL_EVERY, LR, ModelConfig, TrainConfig, resume_config, to_dict
from .data import Vocab, require_windows, split, target_counts
from .errors import CharrnnError, check_path
from .group import Solo
from .model import Model, check_training_memory
from .run import Run, TrainResult
from .rundir import RunDir

# In a checkout, a symlink to data/tinyshakespeare.txt (the source of truth); a built wheel holds
# the file itself, so the default corpus is there whichever way charrnn was installed.
DEFAULT_CORPUS = Path(__file__).resolve().parent / "corpora" / "tinyshakespeare.txt"
MAX_VOCAB = 65536


def _default_corpus() -> Path:
    if not DEFAULT_CORPUS.is_file():
        raise CharrnnError(f"no CORPUS given, and the bundled {DEFAULT_CORPUS} is missing "
                           "(a damaged install: reinstall charrnn, or pass a text file)")
    return DEFAULT_CORPUS


def default_run_dir(corpus) -> Path:
    """checkpoints/<corpus stem>/ under the current directory (the directory's name for a
    directory, "stdin" for standard input, the first's for several)."""
    return Path("checkpoints") / sources.run_name(corpus)


def _sources(corpus) -> list[str]:
    """The corpus argument checked and listed; the bundled corpus when there is none."""
    if isinstance(corpus, (list, tuple)):
        if not corpus:
            raise CharrnnError("the list of corpora is empty (a pattern that matched no file?); "
                               "give at least one file, or None for the bundled corpus")
        for item in corpus:
            check_path(item, "each corpus")
    elif corpus is not None:
        check_path(corpus, "corpus")
    items = sources.as_list(corpus)
    return items or [str(_default_corpus())]


def _saved_corpus(saved: ckpt.Record) -> str:
    path = saved.corpus.get("path")
    if not path or not Path(path).is_file():
        raise CharrnnError(f"--resume without CORPUS continues on the run's own corpus, {path}, "
                           "which is not there any more; give the corpus to continue on")
    return str(path)


def _label(items: list[str]) -> str:
    """The corpus as error messages name it."""
    shown = "standard input" if items[0] == sources.STDIN else items[0]
    return shown if len(items) == 1 else f"{shown} (and {len(items) - 1} more)"


@mpi.when_distributed  # distributed=True runs this as one rank of an MPI job
def train(corpus=None, config: TrainConfig | None = None, *, cell: str = ModelConfig.cell,
          hidden: int | None = None, layers: int = ModelConfig.layers,
          dropout: float | None = None, activation: str = ModelConfig.activation,
          checkpoint_dir=None, resume=None, overwrite: bool = False, progress: bool = True,
          sample_every: int = 0,
          sample_length: int = 200, on_start=None, distributed: bool = False) -> TrainResult:
    """Train a character-level model on a text file.

    Parameters
    ----------
    corpus : path or list of paths, optional
        A text file, several (joined with a newline), a directory (its text files) or "-"
        (standard input); default the bundled tinyshakespeare (see sources.py).
    config : TrainConfig, optional
        Training options (defaults as the CLI). On resume, None means "as saved" (and a
        batch_size of None, the run's own). batch_size None: config.BATCH_SIZE, except in a
        fresh --time-limit run (text mode, one process, without --auto, --epochs or
        --max-steps) where this machine trains fewer rows as fast (budget.batch_for).
        lr None (on resume: the run's own): config.LR, except in such a run of the defaults'
        model (cell, layers, hidden not given) with Adam, which takes budget.lr_for its budget.
        eval_every None (on resume: the run's own): config.EVAL_EVERY, or more in a text-mode
        --time-limit run whose held-out text would take more than budget.VAL_SHARE of it
        (budget.eval_every).
    cell, hidden, layers, dropout, activation :
        The model (see ModelConfig); ignored on resume, where the checkpoint's model is used.
        hidden None: ModelConfig.hidden, except in a --time-limit run whose budget would train
        that size on few or on many characters (budget.hidden_for, at the speed measured here).
        dropout None: none, except in a --time-limit run that will read its training text
        often (budget.dropout_for, at the speed measured here).
    checkpoint_dir : path, optional
        Run directory; default checkpoints/<corpus stem>/.
    resume : bool, path or checkpoint.Record, optional
        True: continue from <checkpoint_dir>/last.npz; a path (or a Record already read, see
        resume_record): continue from that checkpoint (the run then goes on in checkpoint_dir,
        created if needed).
    overwrite : bool
        Start afresh even if checkpoint_dir already holds a run (its checkpoints and metrics
        are replaced). Without it, such a directory is refused.
    progress : bool
        Show a progress bar (or plain lines when stderr is not a terminal).
    sample_every, sample_length : int
        Print a sample of sample_length characters (temperature 0.8) every sample_every steps
        (0: never), above the progress bar. Samples use their own seed (the step number), so they
        do not change training.
    on_start : callable, optional
        Called with the model once every input has been checked, just before the first step
        (the CLI uses it to announce a first-run compilation).
    distributed : bool
        Run as one rank of `mpiexec -n R` (see charrnn/distributed.py): config.batch_size is the
        global batch, split across the ranks; rank 0 alone writes and shows progress.

    Returns
    -------
    TrainResult
    """
    group = mpi.current() if distributed else Solo()  # the processes training this model
    if not group.root:  # rank 0 alone shows progress
        progress, on_start = False, None
    items = _sources(corpus)
    if checkpoint_dir is not None:
        check_path(checkpoint_dir, "checkpoint_dir")
    if config is not None and not isinstance(config, TrainConfig):
        raise CharrnnError(f"config must be a charrnn.TrainConfig, got {type(config).__name__}")
    run_dir = Path(checkpoint_dir) if checkpoint_dir is not None else default_run_dir(items)
    saved = resume if isinstance(resume, ckpt.Record) else \
        group.on_root(_load_resume, resume, run_dir)  # rank 0 reads it: no copy elsewhere
    if saved is not None:
        config = _resume_config(saved, config)
        if corpus is None:  # a resumed run without CORPUS goes on with its own corpus
            items = [_saved_corpus(saved) if group.root else saved.corpus.get("path")]
    given_val = config.val_max_chars if config is not None else None
    config = config or TrainConfig()
    if saved is None:  # check the model options before the (possibly long) corpus encoding
        ModelConfig(1, cell, ModelConfig.hidden if hidden is None else hidden, layers,
                    dropout or 0.0, activation)
        if not overwrite and group.root:  # only rank 0 writes a run directory
            RunDir(run_dir).refuse_existing()
    if group.distributed and sources.STDIN in items:
        raise CharrnnError("--distributed cannot read standard input (-): every rank reads the "
                           "corpus itself; save the text to a file")
    corpus = _label(items)
    data = group.corpus(items, config.encoding)  # several files, a directory, stdin: one
    config, cps = _budget_batch(config, data, corpus, cell, layers, hidden, group, progress)
    config = _budget_lr(config, cell, layers, hidden, group, progress)
    config = _val_size(config, saved)  # its size follows the batch
    make = _records_data if config.records else _text_data
    batches, val_ids, vocab, corpus_id, train_chars, counts = make(data, config, corpus, group)
    if progress and saved is None and given_val is None and config.time_limit is not None:
        _say_val_size(data, config)
    config = _eval_every(config, saved, 0 if config.records else len(val_ids), progress)
    if saved is None:
        if config.auto:  # the model sized for the budget, from this machine's measured speed
            # measured by rank 0 alone on its share of the batch, the choice sent to all: ranks
            # that measured for themselves could choose different models
            choice = group.on_root(budget.choose, train_chars, config.time_limit, len(vocab),
                                   config.batch_size // group.size, config.seq_len,
                                   config.threads or group.default_threads(), None, group.size)
            cell, layers, hidden, dropout = choice.cell, choice.layers, choice.hidden, \
                choice.dropout
            config, reason = _with_decay(config, choice.weight_decay, choice.reason)
            if progress:
                print(f"--auto: {reason}", file=sys.stderr, flush=True)
        else:
            hidden, cps = _budget_hidden(config, cell, layers, hidden, len(vocab),
                                         train_chars, group, progress, cps)
            if dropout is None:
                dropout, config = _budget_dropout(config, cell, layers, hidden, len(vocab),
                                                  train_chars, group, progress, cps)
        mcfg = ModelConfig(len(vocab), cell, hidden, layers, dropout, activation)
        check_training_memory(mcfg, config.batch_size, config.seq_len, config.threads)
        model = Model(mcfg, seed=config.seed, vocab=vocab)
        if config.init == "charrnn":
            charrnn_init(model.params, mcfg, counts)
    else:
        _check_same_corpus(saved, corpus_id, corpus)
        model = _model_from(saved, vocab)
    model.threads = config.threads or group.default_threads()
    config = _step_strategy(model, config, batches, group, progress, saved)
    if sample_every < 0 or sample_length < 1:
        raise CharrnnError("--sample-every must be >= 0 and --sample-length >= 1")
    run = Run(model, config, batches, val_ids, run_dir, corpus_id, group, progress, sample_every,
              sample_length)
    if run.writes:
        run.dir.lock()
    if saved is not None:
        run.restore(saved)
    elif run.writes:
        run.dir.start_fresh(overwrite)
    group.ready(model.params, corpus_id)  # the same corpus and parameters everywhere
    if on_start is not None:
        on_start(model)
    seconds = jit.warm_up(model, config, sample_every > 0,  # not counted in the budget
                          jit.runs_phased(model, group.overlap))
    if progress and seconds >= 1.0:
        print(f"charrnn: kernels ready in {seconds:.1f} s (not counted in --time-limit)",
              file=sys.stderr, flush=True)
    return run.loop()


def _with_decay(config: TrainConfig, weight_decay: float, reason: str) -> tuple[TrainConfig, str]:
    """The weight decay of a model large for its text: AdamW at weight_decay, unless the run
    chose its own optimizer or decay (then kept, and the reason says so). The options saved with
    the run hold the result, so a resumed run goes on with the same update."""
    if not weight_decay:
        return config, reason
    if config.optimizer == "adam" and config.weight_decay == 0.0:
        return dataclasses.replace(config, optimizer="adamw", weight_decay=weight_decay), reason
    return config, (f"{reason} (AdamW's decay not applied: --optimizer {config.optimizer} "
                    f"--weight-decay {config.weight_decay:g} given)")


def _measure(config, cell, layers, hidden, vocab_size, group, progress) -> float:
    """Training chars/s of this model here (budget.measure, by rank 0 on its share of the batch,
    times the ranks), the kernels' first-run compile announced."""
    if progress:  # the speed probe's first step compiles the kernels on a first run
        jit.notice(jit.train_kernels(wave=layers == 2),
                   lambda m: print(m, file=sys.stderr, flush=True))
    return group.size * group.on_root(budget.measure, cell, layers, hidden, vocab_size,
                                      config.batch_size // group.size, config.seq_len,
                                      config.threads or group.default_threads())


def _trained_chars(config, cps, train_chars) -> float:
    """The characters a --time-limit run at cps chars/s trains on: the budget's
    (budget.planned_chars), or fewer where --epochs or --max-steps stop it first."""
    c = config
    chars = budget.planned_chars(c.time_limit, cps)
    if c.epochs is not None:
        chars = min(chars, c.epochs * train_chars)
    if c.max_steps is not None:
        chars = min(chars, c.max_steps * c.batch_size * c.seq_len)
    return chars


def _budget_batch(config, data, corpus, cell, layers, hidden, group,
                  progress) -> tuple[TrainConfig, float | None]:
    """The options with batch_size resolved, and the chars/s measured for it (of this model, or
    at ModelConfig.hidden where hidden is None), if measured: the one given (or saved); else
    BATCH_SIZE, except in a fresh text-mode --time-limit run on one process without --auto,
    --epochs or --max-steps (the measured case; --auto sizes its model at BATCH_SIZE, and with
    --epochs or --max-steps fewer rows would train fewer characters), which takes the rows of
    budget.batch_for, measured here, and says so."""
    c = config
    if c.batch_size is not None:
        return c, None
    if not _budget_case(c, group):
        return dataclasses.replace(c, batch_size=BATCH_SIZE), None
    vocab_size = len(_check_vocab_size(Vocab(data.vocab.chars, c.encoding), corpus))
    probed = ModelConfig.hidden if hidden is None else hidden
    choice = budget.batch_for(lambda rows: _measure(
        dataclasses.replace(c, batch_size=rows), cell, layers, probed, vocab_size, group,
        progress))
    if progress:
        print(f"charrnn: batch size {choice.batch_size}: {choice.reason} (--batch-size to "
              "choose)", file=sys.stderr, flush=True)
    return dataclasses.replace(c, batch_size=choice.batch_size), choice.chars_per_second


def _budget_case(config, group) -> bool:
    """Whether a run's budget rules may choose its rows and rate: a fresh text-mode --time-limit
    run on one process without --auto (which sizes its model at BATCH_SIZE and config.LR),
    --epochs or --max-steps (with which fewer rows would train fewer characters). The rules
    were measured so; elsewhere the plain defaults hold."""
    c = config
    return not (c.time_limit is None or c.records or c.auto or c.epochs is not None
                or c.max_steps is not None or group.distributed)


def _budget_lr(config, cell, layers, hidden, group, progress) -> TrainConfig:
    """The options with lr resolved: the one given (or saved); else LR, except in a budget case
    (_budget_case) training the defaults' model (cell, layers and hidden not given) with Adam,
    which takes budget.lr_for its --time-limit and says so."""
    c = config
    if c.lr is not None:
        return c
    lr = LR
    if (_budget_case(c, group) and hidden is None and (cell, layers) == (ModelConfig.cell,
                                                                         ModelConfig.layers)
            and c.optimizer in ("adam", "adamw")):
        lr = budget.lr_for(c.time_limit)
    if progress and lr != LR:
        print(f"charrnn: learning rate {lr:g} for a {c.time_limit:g} s budget (short budgets "
              f"learned more at it than at {LR:g}; --lr to choose)", file=sys.stderr, flush=True)
    return dataclasses.replace(c, lr=lr)


def _budget_hidden(config, cell, layers, hidden, vocab_size, train_chars, group,
                   progress, cps=None) -> tuple[int, float | None]:
    """A fresh run's hidden size, and its measured chars/s where measured: the one given, or
    ModelConfig.hidden, except in a --time-limit run whose budget would train that size on few
    or on many characters (budget.hidden_for; when --epochs or --max-steps stop it first, the
    default stays: a smaller model would not see more, and a larger one was not measured so).
    cps: the speed already measured of the given size (or of ModelConfig.hidden where hidden is
    None), at this batch."""
    c = config
    if hidden is not None or c.time_limit is None:
        return ModelConfig.hidden if hidden is None else hidden, cps
    cps = cps or _measure(c, cell, layers, ModelConfig.hidden, vocab_size, group, progress)
    chars = budget.planned_chars(c.time_limit, cps)
    if _trained_chars(c, cps, train_chars) < chars:  # --max-steps or --epochs ends it first
        return ModelConfig.hidden, cps
    hidden = budget.hidden_for(chars, train_chars, vocab_size, cell, layers)
    if hidden == ModelConfig.hidden:
        return hidden, cps
    if progress:
        line = (f"fewer than {budget.SMALL_BELOW_CHARS:,}" if chars < budget.SMALL_BELOW_CHARS
                else f"at least {budget.LARGE_FROM_CHARS:,}")
        print(f"charrnn: hidden {hidden}: at {cps:,.0f} chars/s here {layers}x"
              f"{ModelConfig.hidden} would train on {chars:,.0f} characters in "
              f"{c.time_limit:g} s, {line} (--hidden to choose)", file=sys.stderr, flush=True)
    return hidden, _measure(c, cell, layers, hidden, vocab_size, group, progress)


def _budget_dropout(config, cell, layers, hidden, vocab_size, train_chars, group,
                    progress, cps=None) -> tuple[float, TrainConfig]:
    """A fresh run's dropout when none was given, and its config: none, unless it has a
    --time-limit and will read its training text often in it (budget.dropout_for; the passes at
    the speed rank 0 measures on its share of the batch, as --auto does; --epochs and
    --max-steps bound them). A model large for its text (budget.is_large) is regularised as
    --auto's is: dropout budget.DROPOUT and AdamW's decay (_with_decay's terms). cps: this
    model's chars/s when already measured."""
    c = config
    if c.time_limit is None:
        return 0.0, config
    params = num_params(ModelConfig(vocab_size, cell, hidden, layers))
    if budget.is_large(params, train_chars):
        config, why = _with_decay(config, budget.WEIGHT_DECAY,
                                  budget.large_reason(params, train_chars))
        if progress:
            print(f"charrnn: {why} (--dropout to choose)", file=sys.stderr, flush=True)
        return budget.DROPOUT, config
    cps = cps or _measure(c, cell, layers, hidden, vocab_size, group, progress)
    passes = _trained_chars(c, cps, train_chars) / train_chars
    dropout = budget.dropout_for(passes)
    if progress:
        print(f"charrnn: dropout {dropout:g}: about {passes:.1f} passes over the {train_chars:,} "
              f"training characters in {c.time_limit:g} s at {cps:,.0f} chars/s "
              f"({budget.PASSES_DROPOUT:g} from {budget.DROPOUT_FROM_PASSES:g}; --dropout to "
              "choose)", file=sys.stderr, flush=True)
    return dropout, config


def _val_size(config: TrainConfig, saved) -> TrainConfig:
    """The options with val_max_chars resolved (budget.val_max_chars; on resume the run's own),
    so that the options saved with the run hold it and a resumed run validates on the same text."""
    if config.val_max_chars is not None:
        return config
    size = saved.train.val_max_chars if saved is not None else None
    return dataclasses.replace(config, val_max_chars=size or budget.val_max_chars(config))


def _say_val_size(data, config):
    """A --time-limit run's notice when its held-out text was cut to budget.val_max_chars's size
    (text mode: a records run's held-out sample is rarely that large)."""
    held_out = len(split(data.ids, config.val_fraction)[1])
    if not config.records and held_out > config.val_max_chars:
        print(f"charrnn: validating on the first {config.val_max_chars:,} of the {held_out:,} "
              "held-out characters, so that validation takes little of the budget "
              "(--val-max-chars to choose)", file=sys.stderr, flush=True)


def _eval_every(config: TrainConfig, saved, val_chars: int, progress: bool) -> TrainConfig:
    """The options with eval_every resolved (budget.eval_every; on resume the run's own), saved
    with the run; a fresh run says so where the budget stretched it."""
    if config.eval_every is not None:
        return config
    if saved is not None and saved.train.eval_every is not None:
        return dataclasses.replace(config, eval_every=saved.train.eval_every)
    steps = budget.eval_every(config, val_chars)
    if progress and steps > EVAL_EVERY:
        print(f"charrnn: validating every {steps:,} steps, so that validating {val_chars:,} "
              f"held-out characters takes about {budget.VAL_SHARE:.0%} of the budget "
              "(--eval-every to choose)", file=sys.stderr, flush=True)
    return dataclasses.replace(config, eval_every=steps)


def _step_strategy(model, config, batches, group, progress, saved) -> TrainConfig:
    """The model's step strategy: --strategy; on resume with auto, the run's own (the same bits);
    else this machine's measured choice, measured by rank 0 alone (on its rows), and written into
    the options saved with the run."""
    chosen = config.strategy
    if chosen == "wave" and model.cfg.layers != 2:
        raise CharrnnError(f"--strategy wave runs a 2-layer model, one layer a thread; this one "
                           f"has {model.cfg.layers}: choose --strategy shards, whole or auto")
    if chosen == "auto" and saved is not None and saved.train.strategy != "auto":
        chosen = saved.train.strategy
    if chosen == "auto":
        if progress:  # the probe's first step compiles the kernels on a first run
            jit.notice(jit.train_kernels(wave=strategy.wave_fits(model.cfg, model.threads)),
                       lambda m: print(m, file=sys.stderr, flush=True))
        choice = group.on_root(strategy.choose, model.cfg, batches.batch_size // group.size,
                               max(1, round(batches.seq_len)), model.threads)
        chosen = choice.strategy
        if progress and choice.measured:
            print(f"charrnn: step strategy {choice.reason} (measured once for this model and "
                  "batch; --strategy to choose)", file=sys.stderr, flush=True)
    model.strategy = chosen
    return dataclasses.replace(config, strategy=chosen)


def _check_vocab_size(vocab: Vocab, corpus: str) -> Vocab:
    if len(vocab) > MAX_VOCAB:
        raise CharrnnError(f"{corpus}: {len(vocab):,} distinct characters; charrnn models at most "
                           f"{MAX_VOCAB:,} (the one-hot input and the output layer grow with the "
                           "vocabulary); use --encoding bytes for a 256-symbol vocabulary")
    return vocab


def _text_data(data, config, corpus, group):
    """Text mode: (training batches, validation ids, vocabulary, corpus identity, training
    characters, (V,) how often each character is a training target). The last val_fraction of
    the text validates."""
    vocab = _check_vocab_size(Vocab(data.vocab.chars, config.encoding), corpus)
    train_ids, val_ids = split(data.ids, config.val_fraction)
    val_ids = val_ids[: config.val_max_chars]
    require_windows(len(train_ids), config.batch_size, config.seq_len, "training", corpus)
    if len(val_ids) < 2:
        raise CharrnnError(f"{corpus}: the validation part (--val-fraction "
                           f"{config.val_fraction}) has fewer than 2 characters; use a longer "
                           "text or a larger fraction")
    batches = group.batches(train_ids, config.batch_size, config.seq_len)  # this process's rows
    return batches, val_ids, vocab, data.identity(), len(train_ids), \
        target_counts(train_ids, len(vocab))


def _records_data(data, config, corpus, group):
    """Records mode: as _text_data, with records (validation: a seeded random sample)."""
    recs, vocab, _ = rec.from_corpus(data.ids, data.vocab.chars, corpus)
    if len(recs) < 2:
        what = "only one record" if len(recs) else "no records: every line is empty"
        raise CharrnnError(f"{corpus}: {what}; records mode needs at least 2 non-empty lines "
                           "(one of them validates)")
    train_recs, val_recs = rec.split(recs, config.val_fraction, config.val_max_chars, config.seed)
    vocab = _check_vocab_size(Vocab(vocab.chars, config.encoding), corpus)
    batches = group.record_batches(  # this process's records of each batch
        rec.RecordBatches(train_recs, config.batch_size, config.seed, vocab.end))
    counts = np.bincount(train_recs.ids, minlength=len(vocab))
    counts[vocab.end] += len(train_recs)  # every record's last target is its end
    return batches, val_recs, vocab, {**data.identity(), "records": len(recs)}, \
        train_recs.predictions, counts


# -- resume helpers --------------------------------------------------------------------------------

def _load_resume(resume, run_dir: Path) -> ckpt.Record | None:
    """The checkpoint a run continues from, read once: resume is None/False (a fresh run),
    True or "" (run_dir's last.npz), a path (a file, or a run directory's last.npz) or a Record
    already read (what the CLI passes, having read it for its checks)."""
    if resume is None or resume is False:
        return None
    if isinstance(resume, ckpt.Record):
        return resume
    path = run_dir / "last.npz" if resume is True or resume == "" else Path(resume)
    if path.is_dir():
        path = path / "last.npz"
    if not path.exists():
        raise CharrnnError(f"--resume: {path} does not exist; train without --resume first, or "
                           "give --checkpoint-dir of the run to continue")
    if path.is_file() and not zipfile.is_zipfile(path):  # e.g. `--resume corpus.txt`
        raise CharrnnError(f"--resume took {path} as the checkpoint to continue from, and it is "
                           "not one; to continue the run in --checkpoint-dir, put --resume last "
                           "(charrnn train CORPUS ... --resume) or give it the run: --resume RUN")
    return ckpt.read(path)


def resume_record(corpus, checkpoint_dir, resume) -> ckpt.Record:
    """The checkpoint that `train(corpus, checkpoint_dir=..., resume=resume)` would continue;
    pass it back as `resume` so that it is read only once."""
    run_dir = Path(checkpoint_dir) if checkpoint_dir is not None else \
        default_run_dir(_sources(corpus))
    return _load_resume(True if resume in ("", True) else resume, run_dir)


def _resume_config(saved: ckpt.Record, given: TrainConfig | None) -> TrainConfig:
    if given is None:
        return saved.train
    if given.batch_size is None:  # not given: the run's own
        given = dataclasses.replace(given, batch_size=saved.train.batch_size)
    if given.lr is None:  # not given: the run's own
        given = dataclasses.replace(given, lr=saved.train.lr)
    return resume_config(saved.train, to_dict(given))


def _check_same_corpus(record: ckpt.Record, corpus_id: dict, corpus):
    saved = record.corpus
    if saved.get("hash") != corpus_id["hash"]:
        raise CharrnnError(f"cannot resume: {corpus} differs from the corpus this run was trained "
                           f"on ({saved.get('path')}, {saved.get('chars')} characters; this one "
                           f"has {corpus_id['chars']})")


def _model_from(saved: ckpt.Record, vocab) -> Model:
    return Model(saved.model, params=saved.arrays["params"], vocab=vocab)
