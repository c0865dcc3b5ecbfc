"""The command line: each command turns its options into a config, makes one library call, echoes.

Errors in the user's input arrive as CharrnnError and are printed as one line, exit status 2;
`--debug` (or CHARRNN_DEBUG=1) shows the traceback instead.
"""
from __future__ import annotations

import dataclasses
import errno
import json
import math
import os
import signal
import sys

import click
import numpy as np

from .api import info as get_info
from .api import load, resolve_checkpoint
from .config import ModelConfig, SampleConfig, TrainConfig, flag, resume_config
from .checkpoint import check_output
from .demo import format_steps, hello
from .distributed import connect, current, launched_rank_and_size
from .errors import CharrnnError
from .data import decode_text
from .evaluate import MIN_ROW_CHARS, eval_rows, evaluate_file
from .export import export as run_export
from .fileio import write_bytes
from .jit import SAMPLE, SAMPLE_MANY, forward_kernels, notice, runs_phased, train_kernels
from .plot import plot_png, plot_text, read_metrics
from .records import known_records
from .sample import Stream, check_sampling, check_stops, prime_ids, sample_chunks, sample_many
from .score import beam as beam_search
from .score import best_of as best_of_k
from .score import score as score_lines
from .serve import Limits, make_app
from .serve import serve as run_server
from .show import MAX_CHARS as MAX_SHOW_CHARS
from .show import show as write_show
from .score import score_chars
from .train import resume_record
from .train import train as run_train

MODEL_OPTIONS = [f.name for f in dataclasses.fields(ModelConfig) if "help" in f.metadata]


def config_options(cls, exclude=()):
    """Click options for every field of a config declared with config.option: the flag, default,
    choices and help come from there."""
    def decorate(command):
        for f in reversed([f for f in dataclasses.fields(cls)
                           if "help" in f.metadata and f.name not in exclude]):
            command = _click_option(f)(command)
        return command
    return decorate


def _field(cls, name: str) -> dataclasses.Field:
    return next(f for f in dataclasses.fields(cls) if f.name == name)


def _click_option(f: dataclasses.Field):
    kinds = [k.strip() for k in str(f.type).split("|")]
    help, choices = f.metadata["help"], f.metadata["choices"]
    if kinds[0] == "bool":
        return click.option(flag(f), f.name, is_flag=True, help=help)
    kind = click.Choice(choices) if choices else {"int": int, "float": float, "str": str}[kinds[0]]
    return click.option(flag(f), f.name, type=kind, default=f.default,
                        show_default=f.default is not None, help=help)


class _Group(click.Group):
    """Turns CharrnnError into `error: ...` on stderr and exit status 2 (traceback with --debug);
    click's usage errors become one such line too."""

    def main(self, *args, **kwargs):
        kwargs.pop("standalone_mode", None)
        try:
            rv = super().main(*args, standalone_mode=False, **kwargs)
        except click.UsageError as e:
            where = f" (see {e.ctx.command_path if e.ctx else 'charrnn'} --help)"
            click.echo(f"error: {e.format_message()}{where}", err=True)
            sys.exit(e.exit_code)
        except click.ClickException as e:
            click.echo(f"error: {e.format_message()}", err=True)
            sys.exit(e.exit_code)
        except click.Abort:
            click.echo("aborted", err=True)
            sys.exit(1)
        except _OutputError as e:  # --help or --version, written before any command runs
            _silence(e.stream)
            click.echo(f"error: {e}", err=True)
            sys.exit(2)
        sys.exit(rv if isinstance(rv, int) else 0)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except CharrnnError as e:
            if ctx.params.get("debug") or os.environ.get("CHARRNN_DEBUG") == "1":
                raise
            if isinstance(e, _OutputError):
                _silence(e.stream)  # so the flush at exit does not fail again
            if getattr(e, "report", True):  # under MPI, rank 0 alone reports shared errors
                click.echo(f"error: {e}", err=True)
            ctx.exit(2)


@click.group(cls=_Group,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="charrnn", prog_name="charrnn")
@click.option("--debug", is_flag=True, help="Show full tracebacks for errors.")
def cli(debug):
    """Character-level RNN/GRU/LSTM language models: train, sample, evaluate.

    \b
    Example:
      charrnn train --time-limit 300      # the bundled tinyshakespeare
      charrnn sample --temp 0.8 --prime "ROMEO:"
    """
    # --debug is read by _Group.invoke, which catches the errors.


@cli.command()
@click.argument("corpus", nargs=-1, type=click.Path(dir_okay=True, allow_dash=True))
@config_options(ModelConfig, exclude=("dropout",))
@click.option("--dropout", type=float, default=None,
              help=_field(ModelConfig, "dropout").metadata["help"] + " [default: 0; with "
              "--time-limit, chosen from how often the budget reads the text]")
@config_options(TrainConfig)
@click.option("--checkpoint-dir", type=click.Path(file_okay=False), default=None,
              help="Run directory [default: checkpoints/<corpus name>].")
@click.option("--resume", is_flag=False, flag_value="", default=None, metavar="[PATH]",
              help="Continue the run in --checkpoint-dir (or from PATH) exactly where it stopped.")
@click.option("--sample-every", type=int, default=0, show_default=True,
              help="Print a sample every N steps (0: never).")
@click.option("--sample-length", type=int, default=200, show_default=True,
              help="Characters in each --sample-every sample.")
@click.option("--overwrite", is_flag=True,
              help="Start afresh in a --checkpoint-dir that already holds a run, replacing it.")
@click.option("--quiet", is_flag=True, help="No progress output.")
@click.option("--distributed", is_flag=True,
              help="Data-parallel over MPI ranks: launch with `mpiexec -n R`; --batch-size is the "
              "global batch, split evenly across the ranks.")
@click.pass_context
def train(ctx, corpus, checkpoint_dir, resume, quiet, sample_every, sample_length, distributed,
          overwrite, **options):
    """Train a model on CORPUS (default: the bundled tinyshakespeare).

    CORPUS is a text file, several (joined with a newline), a directory (every text file under
    it, in sorted order) or - for standard input.

    \b
    Example:
      charrnn train input.txt --model gru --hidden 256 --time-limit 600
      charrnn train names.txt --records --patience 5     # one name per line
      cat notes/*.txt | charrnn train - --checkpoint-dir runs/notes
      mpiexec -n 2 charrnn train input.txt --distributed --batch-size 64
    Ctrl-C saves last.npz; continue with --resume.
    """
    corpus = list(corpus) or None

    def announce(model):
        phased = distributed and runs_phased(model, current().overlap)
        names = (train_kernels(model.cfg.cell, phased, model.strategy == "wave")
                 + (SAMPLE if sample_every else ()))
        notice(names, lambda m: click.echo(m, err=True))
    def explicit(name):
        return ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT

    model_opts = {k: options.pop(k) for k in MODEL_OPTIONS}
    if not explicit("hidden"):  # the default, or the budget's size (train's hidden=None)
        model_opts["hidden"] = None
    given = {k: v for k, v in options.items() if explicit(k)}
    chosen = [flag(_field(ModelConfig, k)) for k in model_opts if explicit(k)]
    if options.get("auto") and chosen:
        raise CharrnnError(f"--auto chooses the model; leave out {', '.join(chosen)} (or drop "
                           "--auto)")
    saved = None
    if resume is not None:  # read once; under MPI by rank 0, which sends it (no shared disk)
        saved = connect().on_root(resume_record, corpus, checkpoint_dir, resume) \
            if distributed else resume_record(corpus, checkpoint_dir, resume)
    if saved is not None:
        _check_resume_model(saved, {k: v for k, v in model_opts.items() if explicit(k)})
    config = None if saved is not None and not given else _train_config(options, given, saved)
    result = run_train(corpus, config, **model_opts, checkpoint_dir=checkpoint_dir,
                       resume=saved, overwrite=overwrite,
                       progress=not quiet,
                       sample_every=sample_every, sample_length=sample_length, on_start=announce,
                       distributed=distributed)
    if not quiet and (not distributed or _mpi_rank() == 0):  # under MPI, rank 0 alone reports
        why = " (no better validation within --patience validations)" \
            if result.stopped == "stopped early" else ""
        click.echo(f"{result.stopped} at step {result.step}{why}: best validation loss "
                   f"{result.best_val_loss:.4f} nats/char "
                   f"({result.best_val_loss / 0.6931471805599453:.3f} bits/char) at step "
                   f"{result.best_step}, in {result.run_dir / 'best.npz'}", err=True)
    if result.signal is not None:  # saved; now exit as a signal-stopped program does (130, 143)
        # A further Ctrl-C while Python shuts down (its exit handlers) would print a traceback
        # (seen in CI: the second of two quick Ctrl-Cs after the save): it ends the process
        # as the signal does instead, the work already saved.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        ctx.exit(128 + result.signal)


def _mpi_rank() -> int:
    return launched_rank_and_size()[0]


def _check_resume_model(record, given: dict) -> None:
    """A resumed run keeps its model; model options given explicitly must agree with it."""
    saved = record.model
    flags = {f.name: flag(f) for f in dataclasses.fields(ModelConfig)}
    diff = [f"{flags[k]} {getattr(saved, k)} -> {v}" for k, v in given.items()
            if getattr(saved, k) != v]
    if diff:
        raise CharrnnError("cannot resume with a different model: " + "; ".join(diff)
                           + " (leave the model options out, or start a new --checkpoint-dir)")


def _train_config(options, given, record) -> TrainConfig:
    """TrainConfig from the options; when resuming, the saved one with the given options over it
    (config.resume_config: the one merge, also train()'s)."""
    return TrainConfig(**options) if record is None else resume_config(record.train, given)


@cli.command()
@click.argument("checkpoint", required=False)
@click.option("--temp", "temps", default=str(SampleConfig.temperature), show_default=True,
              help=_field(SampleConfig, "temperature").metadata["help"])
@config_options(SampleConfig, exclude=("temperature",))  # --temp takes a list
@click.option("--prime", default=None, help="Text to start from (printed first).")
@click.option("--num-samples", type=int, default=1, show_default=True,
              help="Samples per temperature, generated together (sample k uses seed + k).")
@click.option("--threads", type=int, default=None,
              help="Worker threads for many samples [default: every core this process may use].")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write to this file instead of stdout.")
@click.option("--force", is_flag=True,
              help="Replace the --output file even if it is a charrnn checkpoint.")
@click.option("--novel", is_flag=True,
              help="Records models: print only samples that are not lines of the training corpus "
                   "(a count goes to stderr).")
@click.option("--show", "show_to", type=click.Path(dir_okay=False), default=None,
              help="Also write the `charrnn show` page of the generated text to this file.")
@click.option("--stop", multiple=True,
              help="End a sample right after this string appears (repeatable; kept in the "
                   "output unless --stop-exclude).")
@click.option("--stop-exclude", is_flag=True, help="Leave the --stop string out of the output.")
@click.option("--best-of", type=int, default=None,
              help="Generate K candidates together and print the most likely (lowest mean "
                   "surprisal per character, said on stderr).")
@click.option("--beam", "beam_k", type=int, default=None,
              help="Beam search of width K: a records model prints the K most likely records "
                   "(probabilities on stderr); a text model the most likely --length characters.")
@click.option("--interactive", is_flag=True,
              help="A prompt: type text, the continuation streams back; the state carries "
                   "across turns (/reset, /temp, /length, /seed, /help; Ctrl-D leaves).")
def sample(checkpoint, temps, length, prime, seed, top_k, top_p, num_samples, threads, output,
           force, novel, show_to, stop, stop_exclude, best_of, beam_k, interactive):
    """Generate text from CHECKPOINT (a file or run directory; default: the newest run).

    \b
    Example:
      charrnn sample checkpoints/tinyshakespeare --temp 0.8 --prime "ROMEO:" --length 300
      charrnn sample --temp 0.5,1.0 --num-samples 2 --seed 1
      charrnn sample checkpoints/names --num-samples 20 --novel   # a records model
    A records model prints whole records (the prime is their beginning), one per line.
    """
    temperatures = _parse_temps(temps)
    for t in temperatures:
        check_sampling(length, t, top_k, top_p, seed)
    if num_samples < 1:
        raise CharrnnError(f"--num-samples must be >= 1, got {num_samples}")
    if threads is not None and threads < 1:
        raise CharrnnError(f"--threads must be >= 1, got {threads}")
    check_stops(stop)
    if best_of is not None and (num_samples > 1 or len(temperatures) > 1 or novel):
        raise CharrnnError("--best-of picks one sample: leave out --num-samples, --novel and a "
                           "list of temperatures")
    if checkpoint is None:
        checkpoint = resolve_checkpoint(None)
        click.echo(f"using {checkpoint}", err=True)
    model = load(checkpoint)
    encoding = model.vocab.encoding
    prime_ids(model.vocab, prime)  # checks the prime before anything compiles or prints
    for path in (output, show_to):
        if path:
            check_output(path, model.path, force)
    if interactive:
        return _interactive(model, temperatures[0], length, seed, top_k, top_p)
    if beam_k is not None:
        found = beam_search(model, beam_k, length, prime)
        shown = found if model.vocab.end is not None else found[:1]
        for text, logp in shown:
            click.echo(f"{math.exp(logp):.3g}\t{logp:.3f} nats\t{text!r}", err=True)
        text = "".join(t + "\n" for t, _ in shown)
        if output:
            _write_atomic(output, text, encoding)
            click.echo(f"wrote {output}", err=True)
        else:
            _text_writer(encoding)(text)
        return
    if best_of is not None:
        text, nats, i = best_of_k(model, best_of, length, temperatures[0], prime, seed, top_k,
                                  top_p, threads, stop, stop_exclude)
        click.echo(f"best of {best_of}: candidate {i + 1}, {nats:.4f} nats/char "
                   f"({nats / math.log(2):.3f} bits/char)", err=True)
        text += "\n" if model.vocab.end is not None or not text.endswith("\n") else ""
        if output:
            _write_atomic(output, text, encoding)
            click.echo(f"wrote {output}", err=True)
        else:
            _text_writer(encoding)(text)
        if show_to:
            _write_show(model, text, show_to, MAX_SHOW_CHARS, None)
        return
    if model.vocab.end is not None:
        text = _sample_records(model, temperatures, num_samples, length, prime, seed, top_k,
                               top_p, threads, output, novel, stop, stop_exclude)
        if show_to:
            _write_show(model, text, show_to, MAX_SHOW_CHARS, None)
        return
    if novel:
        raise CharrnnError("--novel is for records models (trained with --records); this model "
                           "generates running text")
    runs = [(t, k) for t in temperatures for k in range(num_samples)]
    if num_samples == 1:  # one stream per temperature: streamed as it is generated
        streams = [sample_chunks(model, length, t, prime, seed, top_k, top_p, stop, stop_exclude)
                   for t in temperatures]
    else:  # K streams advanced together (lazily, after the notice); sample k is seed + k's
        streams = ([text] for t in temperatures for text in sample_many(
            model, num_samples, length, t, prime, seed, top_k, top_p, threads, stop,
            stop_exclude))
    notice(SAMPLE if num_samples == 1 else SAMPLE_MANY, lambda m: click.echo(m, err=True))
    parts, generated = [], []
    out = _collect(parts) if output else _text_writer(encoding)
    for (t, k), stream in zip(runs, streams):
        if len(runs) > 1:
            out(f"{'' if (t, k) == runs[0] else chr(10)}--- temperature {t}, sample {k + 1} ---\n")
        text = ""
        for text in stream:
            out(text)
            generated.append(text)
    if show_to:  # the samples themselves, without the headers between them
        _write_show(model, "".join(generated), show_to, MAX_SHOW_CHARS, None)
    if output:
        _write_atomic(output, "".join(parts), encoding)
        click.echo(f"wrote {output}", err=True)
    elif not text.endswith("\n"):  # end the text so the shell prompt starts on its own line
        out("\n")


REPL_HELP = ("type text and press Enter: the model continues it. /temp T, /length N, /seed N, "
             "/reset (forget the conversation), /help; Ctrl-C stops a generation, Ctrl-D leaves")


def _interactive(model, temperature, length, seed, top_k, top_p):
    """The prompt of `sample --interactive`: one Stream for the session, so the model reads the
    whole conversation (a records model starts a record each turn)."""
    stream, echo = Stream(model, seed), _text_writer(model.vocab.encoding)
    click.echo(f"charrnn {model.cfg.cell} {model.cfg.layers}x{model.cfg.hidden}: {REPL_HELP}",
               err=True)
    while True:
        try:
            line = input("> ")
        except EOFError:
            click.echo("", err=True)
            return
        except KeyboardInterrupt:  # at the prompt: a fresh prompt
            click.echo("", err=True)
            continue
        if line.startswith("/"):
            temperature, length, seed = _repl_command(line, stream, temperature, length, seed)
            continue
        try:
            ids = prime_ids(model.vocab, line)[(0 if model.vocab.end is None else 1):] \
                if line else []
        except CharrnnError as e:
            click.echo(f"error: {e}", err=True)
            continue
        if model.vocab.end is not None:
            stream.reset()  # every record from its start
        stream.feed(ids)
        echo(line)
        try:
            for chunk in stream.chunks(length, temperature, top_k, top_p):
                echo(chunk)
        except KeyboardInterrupt:
            echo("\n")
            click.echo("[stopped]", err=True)
            continue
        echo("\n")


def _repl_command(line, stream, temperature, length, seed):
    """One /command of the prompt; returns the new (temperature, length, seed)."""
    cmd, _, arg = line.partition(" ")
    try:
        if cmd == "/reset":
            stream.reset()
            click.echo("[state reset]", err=True)
        elif cmd == "/temp":
            temperature = SampleConfig(temperature=float(arg)).temperature
        elif cmd == "/length":
            length = SampleConfig(length=int(arg)).length
        elif cmd == "/seed":
            seed = SampleConfig(seed=int(arg)).seed
            stream.rng = np.random.default_rng(seed)
        else:
            click.echo(REPL_HELP, err=True)
            return temperature, length, seed
        if cmd != "/reset":
            click.echo(f"[{cmd[1:]} {arg}]", err=True)
    except (ValueError, CharrnnError) as e:
        click.echo(f"error: {cmd} {arg!r}: {e}", err=True)
    return temperature, length, seed


def _sample_records(model, temperatures, num_samples, length, prime, seed, top_k, top_p, threads,
                    output, novel, stop=(), stop_exclude=False):
    """Records: num_samples whole records per temperature, one per line."""

    known = known_records(model.meta["corpus"]["path"], model.vocab.encoding) if novel else None
    notice(SAMPLE_MANY, lambda m: click.echo(m, err=True))
    texts = [s for t in temperatures for s in sample_many(
        model, num_samples, length, t, prime, seed, top_k, top_p, threads, stop, stop_exclude)]
    if novel:
        new = [s for s in texts if s not in known]
        click.echo(f"{len(new)} of {len(texts)} samples are new (not lines of "
                   f"{model.meta['corpus']['path']})", err=True)
        texts = new
    text = "".join(s + "\n" for s in texts)
    if output:
        _write_atomic(output, text, model.vocab.encoding)
        click.echo(f"wrote {output}", err=True)
    else:
        _text_writer(model.vocab.encoding)(text)
    return text


def _parse_temps(temps: str) -> list[float]:
    try:
        return [float(t) for t in temps.split(",")]
    except ValueError:
        raise CharrnnError(f"--temp must be a number or a comma-separated list, got {temps!r}") \
            from None


def _collect(parts: list):
    return parts.append


def _write_atomic(path: str, text: str, encoding: str) -> None:
    """Write the whole output or nothing (fileio.write_file)."""
    write_bytes(path, text.encode("latin-1" if encoding == "bytes" else "utf-8"))


def _text_writer(encoding: str):
    """Streams text to stdout; a bytes-level model writes its bytes back unchanged."""
    if encoding == "bytes":
        def write(s):
            sys.stdout.buffer.write(s.encode("latin-1"))
            sys.stdout.buffer.flush()
    else:
        def write(s):
            sys.stdout.write(s)
            sys.stdout.flush()
    return write


@cli.command(name="eval")
@click.argument("checkpoint")
@click.argument("textfile", type=click.Path())
@click.option("--batch-size", type=int, default=50, show_default=True,
              help="Parallel rows; 1 evaluates the text as one unbroken sequence.")
@click.option("--skip-unknown", is_flag=True, help="Ignore characters not in the vocabulary.")
@click.option("--threads", type=int, default=None,
              help="Worker threads [default: every core this process may use].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def evaluate(checkpoint, textfile, batch_size, skip_unknown, threads, as_json):
    """Perplexity and bits per character of CHECKPOINT on TEXTFILE.

    \b
    Example:
      charrnn eval checkpoints/tinyshakespeare data/tinyshakespeare.txt --json
    """
    if batch_size < 1:
        raise CharrnnError(f"--batch-size must be >= 1, got {batch_size}")
    if threads is not None and threads < 1:
        raise CharrnnError(f"--threads must be >= 1, got {threads}")
    model = load(checkpoint)
    model.threads = threads
    r = evaluate_file(model, textfile, batch_size=batch_size, skip_unknown=skip_unknown,
                      on_start=lambda: notice(forward_kernels(model.cfg.cell),
                                              lambda m: click.echo(m, err=True)))
    rows = eval_rows(r.chars + 1, batch_size)
    asked = click.get_current_context().get_parameter_source("batch_size").name != "DEFAULT"
    if asked and rows < batch_size and model.vocab.end is None:  # text; records: whole lines
        click.echo(f"note: --batch-size {batch_size} capped at {rows} rows for "
                   f"{r.chars:,} characters (every row at least {MIN_ROW_CHARS} characters: a row "
                   "starts from a zero state)", err=True)
    if as_json:
        click.echo(json.dumps(r.to_dict()))
    else:
        click.echo(f"nats per char: {r.nats_per_char:.4f}\nbits per char: {r.bits_per_char:.4f}\n"
                   f"perplexity:    {r.perplexity:.4f}\nchars:         {r.chars}")


@cli.command()
@click.argument("checkpoint")
@click.argument("files", nargs=-1, type=click.Path(allow_dash=True))
@click.option("--sort", "sort_lines", is_flag=True, help="Most likely lines first.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
@click.option("--chars", "per_char", is_flag=True,
              help="Each character's surprisal (nats) and the model's top-5 guesses there.")
@click.option("--skip-unknown", is_flag=True, help="Ignore characters not in the vocabulary.")
def score(checkpoint, files, sort_lines, as_json, per_char, skip_unknown):
    """How likely CHECKPOINT finds each line of FILES (default, or -: standard input).

    One row a line: its nats (its characters and its end, as `eval` counts them), bits per
    character, and the line. A records model scores each non-empty line as one record.

    \b
    Example:
      charrnn sample checkpoints/names --num-samples 50 | charrnn score checkpoints/names --sort
      charrnn score checkpoints/tinyshakespeare notes.txt --chars
    """
    model = load(checkpoint)
    lines = [ln for f in (files or ("-",)) for ln in _read_lines(f, model.vocab)]
    if model.vocab.end is not None:
        lines = [ln for ln in lines if ln]  # records: every non-empty line (as eval reads them)
    try:
        r = score_lines(model, lines, skip_unknown)
    except CharrnnError as e:
        raise CharrnnError(f"{', '.join(files) or 'standard input'}: {e}") from None
    order = r.order() if sort_lines else range(len(lines))
    for i in order:
        if per_char:
            _echo_chars(model, lines[i], r, i, as_json, skip_unknown)
        elif as_json:
            click.echo(json.dumps({"line": lines[i], "nats": float(r.nats[i]),
                                   "chars": int(r.chars[i]),
                                   "bits_per_char": _finite(r.bits_per_char[i])}))
        else:
            click.echo(f"{r.nats[i]:10.3f}\t{r.bits_per_char[i]:6.3f}\t{lines[i]}")


def _echo_chars(model, line, r, i, as_json, skip_unknown):
    c = score_chars(model, line, skip_unknown)
    if as_json:
        click.echo(json.dumps({"line": line, "nats": float(r.nats[i]), "positions": [
            {"char": ch, "nats": float(n), "top": [[g, float(p)] for g, p in zip(top, ps)]}
            for ch, n, top, ps in zip(c.targets, c.nats, c.top, c.top_p)]}))
        return
    click.echo(f"{r.nats[i]:.3f} nats, {r.bits_per_char[i]:.3f} bits/char: {line}")
    for ch, n, top, ps in zip(c.targets, c.nats, c.top, c.top_p):
        guesses = "  ".join(f"{_shown(g)} {p:.2f}" for g, p in zip(top, ps))
        click.echo(f"  {_shown(ch):>6} {n:7.3f}   {guesses}")


def _shown(ch: str) -> str:
    """A character as a score row shows it: quoted (so a space or a newline can be seen), the
    end symbol as <end>."""
    return "<end>" if ch == "" else repr(ch)


def _finite(x: float):
    return float(x) if math.isfinite(x) else None


def _read_lines(path: str, vocab) -> list[str]:
    """The lines of a file (- for standard input) without their ends."""
    lines = _read_text(path, vocab).split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line; it does not begin another
    return lines


def _read_text(path: str, vocab) -> str:
    """A file's text (- for standard input), decoded as the model's corpus was; CRLF and a
    byte-order mark are not characters."""
    if path == "-":
        raw = sys.stdin.buffer.read()
    else:
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError as e:
            raise CharrnnError(f"cannot read {path}: {e.strerror or e}") from None
    where = "standard input" if path == "-" else path
    return decode_text(raw, where, vocab.encoding).replace("\r\n", "\n")


@cli.command()
@click.argument("checkpoint", required=False)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Another than 127.0.0.1 lets other machines generate "
                   "with the model (see the README).")
@click.option("--port", type=int, default=8000, show_default=True, help="TCP port to listen on.")
@click.option("--max-length", type=int, default=2000, show_default=True,
              help="The longest sample one request may ask for.")
@click.option("--max-samples", type=int, default=16, show_default=True,
              help="The most samples (num_samples, best_of) one request may ask for.")
@click.option("--quiet", is_flag=True, help="No request log.")
def serve(checkpoint, host, port, max_length, max_samples, quiet):
    """Serve CHECKPOINT over HTTP, with a page to try it at http://HOST:PORT/.

    \b
    Example:
      charrnn serve checkpoints/tinyshakespeare --port 8000
      curl -s localhost:8000/v1/sample -d '{"prime": "ROMEO:", "length": 200, "seed": 1}'
    Needs the serve extra: pip install 'charrnn[serve]'.
    """
    if not 0 < port < 65536:
        raise CharrnnError(f"--port must be in 1..65535, got {port}")
    if max_length < 1 or max_samples < 1:
        raise CharrnnError("--max-length and --max-samples must be >= 1")
    if checkpoint is None:
        checkpoint = resolve_checkpoint(None)
    model = load(checkpoint)
    make_app(model)  # fails here, in one line, when Starlette or uvicorn is missing
    click.echo(f"serving {checkpoint} at http://{host}:{port}/ (Ctrl-C to stop)", err=True)
    try:
        run_server(model, host, port, Limits(max_length, max_samples), log=not quiet)
    except OSError as e:  # the address is taken, or not ours to bind
        raise CharrnnError(f"cannot listen on {host}:{port}: {e.strerror or e}; choose another "
                           "--port") from None


@cli.command(name="show")
@click.argument("checkpoint")
@click.argument("textfile", type=click.Path(allow_dash=True))
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True,
              help="The HTML page to write (self-contained: opens from disk).")
@click.option("--find", default=None,
              help="A regular expression; the page ranks units by how well they track where it "
                   "matches, and opens on the best.")
@click.option("--max-chars", type=int, default=MAX_SHOW_CHARS, show_default=True,
              help="Show at most this many characters (the page says when the text was cut).")
@click.option("--force", is_flag=True,
              help="Replace the --output file even if it is a charrnn checkpoint.")
def show_page(checkpoint, textfile, output, find, max_chars, force):
    """A page that colours TEXTFILE by CHECKPOINT's surprise, and by any single unit.

    Hover (or tap) a character for the model's top-5 guesses there; pick a layer and a unit to
    recolour the text by that unit's activation (LSTM: tanh of the cell state).

    \b
    Example:
      charrnn show checkpoints/tinyshakespeare data/tinyshakespeare.txt -o page.html
      charrnn show checkpoints/tinyshakespeare play.txt -o quotes.html --find "'[^']*'"
    """
    model = load(checkpoint)
    check_output(output, model.path, force)
    _write_show(model, _read_text(textfile, model.vocab), output, max_chars, find)


def _write_show(model, text, output, max_chars, find):
    data = write_show(model, text, output, max_chars, find)
    best = data["ranked"][0] if data["ranked"] else None
    click.echo(f"wrote {output} ({len(data['text']):,} characters"
               + (f"; cut from {data['total_chars']:,} at --max-chars" if
                  data["total_chars"] > len(data["text"]) else "")
               + (f"; /{find}/ is tracked best by layer {best['layer']} unit {best['unit']} "
                  f"(correlation {best['corr']:.2f})" if best else "")
               + (f"; /{find}/ matches nothing" if find is not None and not best else "") + ")",
               err=True)


@cli.command()
@click.argument("checkpoint")
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Replace OUT even if it is a charrnn checkpoint.")
def export(checkpoint, out, force):
    """Write CHECKPOINT's weights to OUT (.npz) under PyTorch state_dict names.

    \b
    Example:
      charrnn export checkpoints/tinyshakespeare model.npz
    See the README for loading it into torch.nn.LSTM/GRU/RNN + nn.Linear.
    """
    model = load(checkpoint)
    run_export(model, out, force)
    click.echo(f"wrote {out} ({model.cfg.cell} {model.cfg.layers}x{model.cfg.hidden}, "
               f"vocabulary {model.cfg.vocab_size})", err=True)


@cli.command()
@click.argument("checkpoint", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info(checkpoint, as_json):
    """Describe CHECKPOINT: model, size, vocabulary, progress and training options.

    \b
    Example:
      charrnn info checkpoints/tinyshakespeare
    """
    d = get_info(checkpoint)
    if as_json:
        click.echo(json.dumps(d))
        return
    bpc = d["best_val_bits_per_char"]
    lines = [
        f"checkpoint:      {d['checkpoint']} (format {d['format_version']})",
        f"model:           {d['cell']} {d['layers']}x{d['hidden']}"
        + (f", {d['activation']}" if d["cell"] == "rnn" else "")
        + (f", dropout {d['dropout']}" if d["dropout"] else ""),
        f"parameters:      {d['parameters']:,}",
        f"vocabulary:      {d['vocab_size']} ({d['encoding']}): {d['vocab_preview']!r}",
        f"steps:           {d['steps']:,} (epoch {d['epoch']:.2f}), {d['chars_seen']:,} characters",
        f"training time:   {d['train_seconds']:.0f} s",
        "best validation: " + ("none yet" if bpc is None else
                               f"{d['best_val_loss']:.4f} nats/char, {bpc:.4f} bits/char"),
        f"corpus:          {d['corpus']}",
    ]
    if d["records"]:
        lines.append(f"records mode:    {d['num_records']:,} records; the end symbol is id "
                     f"{d['end_index']} (the empty string in the vocabulary)")
    lines.append("options:         " + command_line(d["train_options"]))
    click.echo("\n".join(lines))


def command_line(options: dict) -> str:
    """TrainConfig options as flags that can be pasted back into `charrnn train`: a true flag
    bare, a false one or None left out (the defaults), every other value after its flag."""
    flags = {f.name: flag(f) for f in dataclasses.fields(TrainConfig)}
    parts = []
    for k, v in options.items():
        if v is None or v is False or k not in flags:
            continue
        parts.append(flags[k] if v is True else f"{flags[k]} {v}")
    return " ".join(parts)


@cli.command()
@click.argument("run_dir", type=click.Path())
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write an image: PNG, or the format the suffix names (.pdf, .svg); needs "
              "matplotlib: pip install 'charrnn[plot]'.")
def plot(run_dir, output):
    """Plot training and validation loss (bits per char) of RUN_DIR against characters seen.

    \b
    Example:
      charrnn plot checkpoints/tinyshakespeare -o loss.png
      charrnn plot checkpoints/tinyshakespeare          # text plot in the terminal
    """
    metrics = read_metrics(run_dir)
    if metrics["skipped"]:
        click.echo(f"note: skipped {metrics['skipped']} unreadable or non-finite rows of "
                   f"{os.path.join(run_dir, 'metrics.csv')}", err=True)
    if output:
        plot_png(run_dir, output, metrics)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(plot_text(run_dir, metrics=metrics))


@cli.group()
def demo():
    """Live walk-throughs of small models."""


@demo.command(name="hello")
@click.option("--word", default="hello", show_default=True, help="The word to learn.")
@click.option("--hidden", type=int, default=3, show_default=True, help="Hidden size.")
@click.option("--steps", type=int, default=300, show_default=True, help="Training steps.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed of the initial weights.")
def demo_hello(word, hidden, steps, seed):
    """The cs231n example: a vanilla RNN learns to spell "hello" from h, e, l, o.

    \b
    Example:
      charrnn demo hello --word hello --hidden 3
    """
    r = hello(word, hidden, steps, seed)
    v = r["vocab"]
    click.echo(f"vocabulary {v}; vanilla RNN, hidden size {hidden}; input {word[:-1]!r}, "
               f"targets {word[1:]!r}\n")
    click.echo(f"before training (loss {r['losses'][0] if r['losses'] else float('nan'):.3f}):")
    click.echo(format_steps(r["before"], v))
    final = r["losses"][-1] if r["losses"] else float("nan")
    click.echo(f"\nafter {steps} Adam steps (loss {final:.4f}):")
    click.echo(format_steps(r["after"], v))
    click.echo(f"\nsamples from {word[0]!r}:")
    for t, text in r["samples"].items():
        click.echo(f"  temperature {t}: {text!r}")
    click.echo("\nTemperature 0 always takes the most likely next character; higher temperatures "
               "flatten the distribution and let less likely characters through.")


def main():
    """Entry point of the `charrnn` command and `python -m charrnn`."""
    _guard_std_streams()
    cli(prog_name="charrnn")


def _guard_std_streams():
    """Training must go on when its terminal goes away (`2>&-`, `2>/dev/full`, a closed ssh
    session): progress and notices are dropped then. A failed write of the command's output
    (`> /dev/full`) is an error of its own, one line; a reader that went away (`| head`) ends
    the command quietly, with the status of SIGPIPE."""
    if sys.stderr is None:  # started with the descriptor closed
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (for the life of the process)
    if sys.stdout is None:
        sys.stdout = _Closed()
    sys.stderr = _Stream(sys.stderr, on_error=None)
    sys.stdout = _Stream(sys.stdout, on_error="standard output")


class _Stream:
    """A standard stream whose write errors are handled as _guard_std_streams says."""

    def __init__(self, stream, on_error):
        self._s, self._on_error = stream, on_error
        self.buffer = _Stream(stream.buffer, on_error) if hasattr(stream, "buffer") else None

    def write(self, data):
        return self._guarded(self._s.write, data)

    def flush(self):
        return self._guarded(self._s.flush)

    def _guarded(self, action, *args):
        try:
            return action(*args)
        except OSError as e:
            if self._on_error is None:
                return None
            if isinstance(e, BrokenPipeError):
                _silence(self._s)  # so the flush at exit does not fail again
                sys.exit(141)
            raise _OutputError(f"cannot write to {self._on_error}: {e.strerror or e}",
                               self._s) from None

    def __getattr__(self, name):
        return getattr(self._s, name)


class _Closed:
    """Standard output when the process started with it closed (`>&-`)."""
    encoding, errors = "utf-8", "strict"

    def write(self, data):
        raise OSError(errno.EBADF, "it is closed")

    def flush(self):
        pass  # nothing was ever written


class _OutputError(CharrnnError):
    """The command's output could not be written; once reported, the stream is silenced."""

    def __init__(self, message, stream):
        super().__init__(message)
        self.stream = stream


def _silence(stream):
    """Point the stream's descriptor at /dev/null."""
    if isinstance(stream, _Closed):
        return
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, stream.fileno())
        os.close(null)
    except (OSError, ValueError, AttributeError):
        pass
