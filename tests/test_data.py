"""Reading, the vocabulary, and the truncated-BPTT batcher (property-based where it matters)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charrnn.data import Batches, Vocab, one_hot, read_text
from charrnn.errors import CharrnnError


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1))
def test_vocab_round_trip_any_unicode(text):
    v = Vocab.from_text(text)
    ids = v.encode(text)
    assert ids.dtype == v.dtype and v.decode(ids) == text


@settings(max_examples=100, deadline=None)
@given(n=st.integers(2, 400), B=st.integers(1, 8), T=st.integers(1, 12))
def test_batcher_targets_once_per_epoch(n, B, T):
    data = np.arange(n)  # each character is its own position, so positions can be told apart
    b = Batches(data, B, T)
    if b.windows == 0:
        return
    seen = []
    for w in range(b.windows):
        x, y = b.window(w)
        assert x.shape == y.shape == (T, B)
        np.testing.assert_array_equal(y, x + 1)  # the input at each position is the previous char
        seen.extend(y.ravel().tolist())
    assert len(seen) == len(set(seen))  # every target at most once per epoch
    R = (n - 1) // B
    assert len(seen) == B * T * (R // T)
    assert (n - 1) - len(seen) < B * (T + 1)  # all but the documented tail


def test_windows_chain_within_a_row():
    b = Batches(np.arange(101), 2, 5)
    x0, _ = b.window(0)
    x1, _ = b.window(1)
    np.testing.assert_array_equal(x1[0], x0[-1] + 1)


def test_one_hot():
    np.testing.assert_array_equal(one_hot([2, 0], 3), [[0, 0, 1], [1, 0, 0]])


def test_unknown_characters_are_listed():
    v = Vocab("abc")
    with pytest.raises(CharrnnError, match="'x'"):
        v.encode("abxc")
    assert v.decode(v.encode("abxc", skip_unknown=True)) == "abc"


def test_read_errors(tmp_path):
    with pytest.raises(CharrnnError, match="no such file"):
        read_text(tmp_path / "nope.txt")
    with pytest.raises(CharrnnError, match="directory"):
        read_text(tmp_path)
    (tmp_path / "e.txt").write_bytes(b"")
    with pytest.raises(CharrnnError, match="empty"):
        read_text(tmp_path / "e.txt")
    (tmp_path / "u.txt").write_bytes(b"abc\xffdef")
    with pytest.raises(CharrnnError, match="byte offset 3.*--encoding bytes"):
        read_text(tmp_path / "u.txt")
    (tmp_path / "b.bin").write_bytes(b"ab\x00\x01")
    with pytest.raises(CharrnnError, match="binary"):
        read_text(tmp_path / "b.bin")
    assert read_text(tmp_path / "u.txt", "bytes") == "abc\xffdef"
