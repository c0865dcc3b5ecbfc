"""The README's Python example runs as written (on a small corpus, in a temporary directory)."""
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_example_runs(tiny_corpus, tmp_path, monkeypatch):
    text = README.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    example = next(b for b in blocks if "charrnn.train(" in b)
    monkeypatch.chdir(tmp_path)
    Path("input.txt").write_text(tiny_corpus.read_text())
    # The README trains for 300 steps on input.txt; keep the test fast with a smaller budget.
    example = example.replace("max_steps=300", "max_steps=20").replace("time_limit=60",
                                                                     "time_limit=2")
    Path("girls.txt").write_text("anna\nbella\ncora\ndora\nemma\nfiona\n" * 5)
    Path("boys.txt").write_text("adam\nben\ncarl\ndan\neli\nfred\n" * 5)
    exec(compile(example, "README.md", "exec"), {})  # noqa: S102 (our README)
