"""`charrnn show`: one self-contained HTML page that shows what a model makes of a text.

The text is coloured by the model's surprise at each character (hover or tap one: its top-5
guesses there, with probabilities); a panel recolours it by one unit's activation, for any layer
and unit (LSTM: tanh of the cell state, as in "The Unreasonable Effectiveness of Recurrent Neural
Networks", 2015; GRU and RNN: the hidden state). `find` ranks the units by how well they track
where a regular expression matches (text inside quotes, say), and the page opens on the best.

The page needs nothing from the network: the data sits in the file, activations quantised to one
byte and deflated (the browser inflates them with its DecompressionStream), so 20,000 characters
of an LSTM 2x256 take a few MB. A URL fragment picks the view: #layer=1&unit=42, #pos=17 (show the
guesses at character 17).
"""
from __future__ import annotations

import base64
import html
import json
import math
import re
import zlib

import numpy as np

from .data import unknown_characters
from .errors import CharrnnError
from .fileio import write_bytes
from .score import log_probs

MAX_CHARS = 20_000
WINDOW = 500  # characters per forward pass (the state carried)
TOP = 5
RANKED = 10  # units listed for --find


def analyse(model, text: str, max_chars: int = MAX_CHARS, find: str | None = None) -> dict:
    """What the page shows, as JSON-ready data: the text (cut at max_chars), each character's
    surprisal (bits) and the model's TOP guesses before it, every unit's activation quantised to
    a byte (deflated, base64) and, for `find`, the units that track its matches best."""
    vocab = model.vocab
    if vocab is None:
        raise CharrnnError("the model has no vocabulary: load it with charrnn.load(...)")
    if not isinstance(text, str) or not text:
        raise CharrnnError("show needs some text")
    if not isinstance(max_chars, int) or max_chars < 1:
        raise CharrnnError(f"--max-chars must be >= 1, got {max_chars!r}")
    pattern = _compile(find)
    text = vocab.from_user(text)
    full = len(text)
    text = text[:max_chars]
    missing = vocab.unknown(text.replace("\n", "") if vocab.end is not None else text)
    if missing:
        raise unknown_characters(missing, hint=False)
    logp, acts, ids = [], [], []
    for x, y in _segments(vocab, text):
        lp, a = _run(model, x[:, None].astype(np.int32))  # (t, V), (L, t, H)
        logp.append(lp)
        acts.append(a)
        ids.append(y)
    logp, acts, ids = np.concatenate(logp), np.concatenate(acts, axis=1), np.concatenate(ids)
    bits = -logp[np.arange(len(ids)), ids] / math.log(2)
    top = np.argsort(-logp, axis=1, kind="stable")[:, :TOP]  # (T, TOP)
    prob = np.exp(np.take_along_axis(logp, top, 1))
    data = {
        "model": f"{model.cfg.cell.upper()} {model.cfg.layers}x{model.cfg.hidden}",
        "what": "tanh(c), the cell state" if model.cfg.cell == "lstm" else "h, the hidden state",
        "text": text, "total_chars": full, "vocab": vocab.chars,
        "bits": [round(float(b), 3) for b in bits],
        "top": top.astype(int).tolist(), "prob": np.round(prob, 3).tolist(),
        "layers": model.cfg.layers, "hidden": model.cfg.hidden,
        "acts": base64.b64encode(zlib.compress(_quantise(acts).tobytes(), 9)).decode("ascii"),
        "find": find, "ranked": [], "start": {"layer": 0, "unit": 0, "mode": "surprise"},
    }
    if pattern is not None:
        data["ranked"] = rank_units(acts, text, pattern)
        if data["ranked"]:
            best = data["ranked"][0]
            data["start"] = {"layer": best["layer"], "unit": best["unit"], "mode": "unit"}
    return data


def _segments(vocab, text: str):
    """(inputs, targets) id arrays whose targets, joined, are the text's characters one for one.
    A text model reads the text as one sequence after a newline; a records model reads each
    line as a record from the zero state, its newline standing for the end symbol (so the page
    shows how sure the model was that the record ends there)."""
    if vocab.end is None:
        ids = vocab.encode(text).astype(np.int64)
        yield np.concatenate([[vocab.index.get("\n", 0)], ids[:-1]]), ids
        return
    lines = text.split("\n")
    for k, line in enumerate(lines):
        ids = vocab.encode(line).astype(np.int64) if line else np.zeros(0, np.int64)
        y = np.concatenate([ids, [vocab.end]]) if k < len(lines) - 1 else ids
        if len(y):
            yield np.concatenate([[vocab.end], ids])[: len(y)], y


def _compile(find):
    if find is None:
        return None
    try:
        return re.compile(find)
    except re.error as e:
        raise CharrnnError(f"--find {find!r} is not a regular expression: {e}") from None


def _run(model, x):
    """log-probabilities (T, V) of the next character and activations (L, T, H) for inputs x
    (T, 1), from the zero state."""
    acts = np.empty((model.cfg.layers, x.shape[0], 1, model.cfg.hidden), np.float32)
    logp = log_probs(model, x, WINDOW, acts)
    return logp[:, 0], acts[:, :, 0]


def _quantise(acts) -> np.ndarray:
    """Activations in [-1, 1] as bytes 0..254 (127 is zero), laid out (L, H, T) so that one
    unit's time series is contiguous, each stored as its differences from the step before (mod
    256; the page adds them up again): a unit changes slowly, so most differences are small and
    deflate well."""
    q = np.rint((np.clip(acts, -1.0, 1.0) + 1.0) * 127.0).astype(np.uint8)  # (L, T, H)
    q = np.ascontiguousarray(q.transpose(0, 2, 1))  # (L, H, T)
    d = q.copy()
    d[:, :, 1:] -= q[:, :, :-1]  # uint8 arithmetic wraps: differences mod 256
    return d


def rank_units(acts, text: str, pattern) -> list[dict]:
    """The RANKED units whose activation correlates best (Pearson, either sign) with the
    indicator of characters inside a match of pattern. Empty when nothing matches."""
    inside = np.zeros(len(text))
    for m in pattern.finditer(text):
        inside[m.start(): m.end()] = 1.0
    if inside.std() == 0:
        return []
    L, T, H = acts.shape
    a = acts.reshape(L, T, H).transpose(0, 2, 1).reshape(L * H, T).astype(np.float64)
    a -= a.mean(axis=1, keepdims=True)
    m = inside - inside.mean()
    norm = np.sqrt((a * a).sum(axis=1)) * np.sqrt((m * m).sum())
    corr = np.divide(a @ m, norm, out=np.zeros(L * H), where=norm > 0)
    best = np.argsort(-np.abs(corr), kind="stable")[:RANKED]
    return [{"layer": int(k // H), "unit": int(k % H), "corr": round(float(corr[k]), 4)}
            for k in best]


def page(data: dict) -> str:
    """The HTML page for analyse()'s data: one file, no network."""
    blob = json.dumps(data, ensure_ascii=True).replace("</", "<\\/")
    cut = data["total_chars"] > len(data["text"])
    note = (f"Showing the first {len(data['text']):,} of {data['total_chars']:,} characters "
            "(--max-chars)." if cut else "")
    return (_PAGE.replace("__TITLE__", html.escape(f"charrnn show: {data['model']}"))
            .replace("__NOTE__", html.escape(note)).replace("__DATA__", blob))


def show(model, text: str, path, max_chars: int = MAX_CHARS, find: str | None = None) -> dict:
    """Write the page for `text` to path (atomically); returns analyse()'s data."""
    data = analyse(model, text, max_chars, find)
    write_bytes(path, page(data).encode("utf-8"))
    return data


_PAGE = r"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>
body { font: 15px/1.45 system-ui, sans-serif; margin: 0; color: #222; background: #fafafa; }
header { padding: 10px 16px; background: #fff; border-bottom: 1px solid #ddd; position: sticky;
         top: 0; z-index: 2; }
header h1 { font-size: 17px; margin: 0 0 6px 0; }
.controls label { margin-right: 14px; }
#note { color: #a40; margin: 4px 0 0 0; }
#ranked { margin: 6px 0 0 0; font-size: 13px; }
#ranked button { margin: 0 4px 4px 0; font: inherit; cursor: pointer; }
#text { font: 14px/1.6 ui-monospace, Menlo, Consolas, monospace; white-space: pre-wrap;
        word-wrap: break-word; padding: 14px 16px; }
#text span { cursor: pointer; }
#text span.sel { outline: 2px solid #222; }
#tip { position: fixed; display: none; background: #fff; border: 1px solid #999;
       padding: 6px 8px; font: 13px ui-monospace, monospace; z-index: 3;
       box-shadow: 0 2px 6px rgba(0,0,0,.2); white-space: pre; }
#legend { font-size: 13px; color: #555; }
</style></head><body>
<header>
<h1>__TITLE__</h1>
<div class="controls">
<label><input type="radio" name="mode" value="surprise" id="m-surprise"> surprise</label>
<label><input type="radio" name="mode" value="unit" id="m-unit"> one unit:</label>
<label>layer <select id="layer"></select></label>
<label>unit <input type="number" id="unit" min="0" value="0" style="width: 5em"></label>
<span id="legend"></span>
</div>
<div id="ranked"></div>
<p id="note">__NOTE__</p>
</header>
<div id="text"></div>
<div id="tip"></div>
<script type="application/json" id="data">__DATA__</script>
<script>
"use strict";
const D = JSON.parse(document.getElementById("data").textContent);
const textEl = document.getElementById("text"), tip = document.getElementById("tip");
const layerEl = document.getElementById("layer"), unitEl = document.getElementById("unit");
const legend = document.getElementById("legend");
let acts = null, spans = [], view = {mode: D.start.mode, layer: D.start.layer, unit: D.start.unit};

function show(ch) { return ch === "" ? "<end>" : JSON.stringify(ch); }

function build() {
  const frag = document.createDocumentFragment();
  for (let i = 0; i < D.text.length; i++) {
    const s = document.createElement("span");
    s.textContent = D.text[i];
    s.dataset.i = i;
    frag.appendChild(s);
    spans.push(s);
  }
  textEl.appendChild(frag);
  for (let k = 0; k < D.layers; k++) layerEl.add(new Option(String(k), String(k)));
  unitEl.max = D.hidden - 1;
  if (D.find !== null) {
    const r = document.getElementById("ranked");
    r.appendChild(document.createTextNode(D.ranked.length ?
      "Units that track /" + D.find + "/ (correlation): " : "/" + D.find + "/ matches nothing."));
    for (const u of D.ranked) {
      const b = document.createElement("button");
      b.textContent = "layer " + u.layer + " unit " + u.unit + " (" + u.corr.toFixed(2) + ")";
      b.className = "rank";
      b.onclick = () => { view = {mode: "unit", layer: u.layer, unit: u.unit}; paint(); };
      r.appendChild(b);
    }
  }
}

function surpriseColour(bits) {  // white (expected) to red (surprising), 0..8 bits
  const t = Math.min(bits / 8, 1), g = Math.round(255 - 190 * t);
  return "rgb(255," + g + "," + g + ")";
}

function unitColour(q) {  // q in 0..254, 127 = 0: blue for negative, red for positive
  const v = (q - 127) / 127, a = Math.round(255 - 200 * Math.abs(v));
  return v >= 0 ? "rgb(255," + a + "," + a + ")" : "rgb(" + a + "," + a + ",255)";
}

function paint() {
  document.getElementById("m-" + view.mode).checked = true;
  layerEl.value = String(view.layer);
  unitEl.value = view.unit;
  document.body.dataset.mode = view.mode;
  document.body.dataset.layer = view.layer;
  document.body.dataset.unit = view.unit;
  if (view.mode === "surprise" || acts === null) {
    for (let i = 0; i < spans.length; i++) spans[i].style.background = surpriseColour(D.bits[i]);
    legend.textContent = "white: expected, red: surprising (bits; hover for the model's guesses)";
  } else {
    const T = D.text.length, off = (view.layer * D.hidden + view.unit) * T;
    for (let i = 0; i < T; i++) spans[i].style.background = unitColour(acts[off + i]);
    legend.textContent = D.what + ": blue -1, white 0, red +1";
  }
}

function tipAt(i, x, y) {
  let rows = "char " + i + ": " + show(D.text[i]) + "  " + D.bits[i].toFixed(2) + " bits\n";
  for (let k = 0; k < D.top[i].length; k++)
    rows += "  " + show(D.vocab[D.top[i][k]]).padEnd(7) + " " +
            (100 * D.prob[i][k]).toFixed(1) + "%\n";
  if (acts !== null && view.mode === "unit") {
    const q = acts[(view.layer * D.hidden + view.unit) * D.text.length + i];
    rows += "unit " + view.layer + "/" + view.unit + ": " + ((q - 127) / 127).toFixed(2);
  }
  tip.textContent = rows;
  tip.style.display = "block";
  tip.style.left = Math.min(x + 12, window.innerWidth - 260) + "px";
  tip.style.top = Math.min(y + 12, window.innerHeight - 160) + "px";
  spans.forEach(s => s.classList.remove("sel"));
  spans[i].classList.add("sel");
  tip.dataset.i = i;
}

function onPoint(ev) {
  const s = ev.target.closest("span[data-i]");
  if (s) tipAt(Number(s.dataset.i), ev.clientX, ev.clientY);
}
textEl.addEventListener("mouseover", onPoint);
textEl.addEventListener("click", onPoint);  // a tap on a touch screen
textEl.addEventListener("mouseleave", () => { tip.style.display = "none"; });
document.getElementById("m-surprise").onchange = () => { view.mode = "surprise"; paint(); };
document.getElementById("m-unit").onchange = () => { view.mode = "unit"; paint(); };
layerEl.onchange = () => { view.layer = Number(layerEl.value); view.mode = "unit"; paint(); };
unitEl.oninput = () => {
  const u = Number(unitEl.value);
  if (u >= 0 && u < D.hidden) { view.unit = u; view.mode = "unit"; paint(); }
};

function fromHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  if (p.has("layer") || p.has("unit"))
    view = {mode: "unit", layer: Number(p.get("layer") || 0), unit: Number(p.get("unit") || 0)};
  paint();
  if (p.has("pos")) {
    const i = Number(p.get("pos")), r = spans[i].getBoundingClientRect();
    tipAt(i, r.left, r.bottom);
  }
}

async function inflate(b64) {
  const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

build();
paint();
inflate(D.acts).then(a => {
  const T = D.text.length;  // undo the differences along each unit's time series (mod 256)
  for (let off = 0; off < a.length; off += T)
    for (let i = off + 1; i < off + T; i++) a[i] = (a[i] + a[i - 1]) & 255;
  acts = a;
  fromHash();
  document.body.dataset.ready = "yes";
});
window.addEventListener("hashchange", fromHash);
</script>
</body></html>
"""
