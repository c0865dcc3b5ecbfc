"""charrnn: character-level RNN, GRU and LSTM language models on the CPU.

The library API does everything the CLI does::

    import charrnn
    result = charrnn.train("input.txt", charrnn.TrainConfig(max_steps=500))
    model = charrnn.load(result.run_dir)
    print(model.sample(200, temperature=0.8, prime="ROMEO:"))
    print(charrnn.evaluate(model, open("other.txt").read()).bits_per_char)
"""
from importlib.metadata import PackageNotFoundError, version

from . import evaluate as _evaluate
from . import export as _export
from . import sample as _sample
from . import score as _score
from . import show as _show
from .api import info, load, resolve_checkpoint, taking_a_model
from .config import ModelConfig, TrainConfig
from .data import Vocab, one_hot, read_text
from .errors import CharrnnError
from .evaluate import EvalResult
from .export import from_state_dict
from .model import Model
from .records import known_records
from .train import TrainResult, train

# Each takes a Model or a checkpoint path (a file or run directory) as its first argument.
evaluate = taking_a_model(_evaluate.evaluate)
evaluate_file = taking_a_model(_evaluate.evaluate_file)
export = taking_a_model(_export.export)
state_dict = taking_a_model(_export.state_dict)
sample = taking_a_model(_sample.sample)
sample_chunks = taking_a_model(_sample.sample_chunks)
sample_many = taking_a_model(_sample.sample_many)
score = taking_a_model(_score.score)
score_chars = taking_a_model(_score.score_chars)
best_of = taking_a_model(_score.best_of)
beam = taking_a_model(_score.beam)
show = taking_a_model(_show.show)

try:
    __version__ = version("charrnn")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+src"

__all__ = [
    "CharrnnError",
    "EvalResult",
    "Model",
    "ModelConfig",
    "TrainConfig",
    "TrainResult",
    "beam",
    "best_of",
    "Vocab",
    "__version__",
    "evaluate",
    "evaluate_file",
    "export",
    "from_state_dict",
    "info",
    "known_records",
    "load",
    "one_hot",
    "read_text",
    "resolve_checkpoint",
    "sample",
    "sample_chunks",
    "sample_many",
    "score",
    "score_chars",
    "show",
    "state_dict",
    "train",
]
