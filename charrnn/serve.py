"""`charrnn serve`: a model behind HTTP, and a page to play with it in the browser.

Built on Starlette (the ASGI toolkit under FastAPI) served by uvicorn: both are what Python web
users already run, small, and enough for four JSON endpoints and one page; FastAPI's extra layer
(pydantic models, OpenAPI) would double the dependencies for what a dozen lines check here.
They come with the optional extra: pip install 'charrnn[serve]'.

    GET  /            the page: a prime, temperature and length, Generate, the text streaming in
    GET  /v1/info     the model (charrnn.info)
    POST /v1/sample   {prime, length, temperature, top_k, top_p, seed, num_samples, stop,
                       best_of} -> {"samples": [...]} (with best_of: also "nats_per_char")
    POST /v1/score    {lines: [...]} -> {"scores": [{line, nats, chars, bits_per_char}]}
    GET  /v1/stream   ?prime=&length=&temperature=&seed=... one sample as server-sent events

Every request is checked before any work: a body over MAX_BODY bytes, JSON that is not an object,
an unknown field, a wrong type, a value out of range (length and num_samples have limits set at
start) or a character the model does not know is a 4xx with one line of JSON, {"error": ...}.
Generation runs in worker threads (the compiled kernels release the GIL), never on the event
loop, so requests are served side by side and a slow reader holds only its own stream.
"""
from __future__ import annotations

import json
import math

from .api import info as model_info
from .config import SampleConfig
from .errors import CharrnnError
from .sample import check_stops, prime_ids, sample_chunks, sample_many
from .score import best_of, score

MAX_BODY = 64 * 1024
INSTALL = "pip install 'charrnn[serve]'"
SAMPLE_FIELDS = {"prime": (str, type(None)), "length": int, "temperature": (int, float),
                 "top_k": int, "top_p": (int, float), "seed": (int, type(None)),
                 "num_samples": int, "stop": (str, list), "best_of": (int, type(None))}


class Limits:
    """What one request may ask for (set by `charrnn serve --max-length/--max-samples`)."""

    def __init__(self, max_length: int = 2000, max_samples: int = 16):
        self.max_length, self.max_samples = max_length, max_samples


class BadRequest(Exception):
    """A request refused with a 4xx status and one line of JSON."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def check_sample_request(body, model, limits: Limits) -> dict:
    """The sampling options of a request body (or query), defaults filled in; BadRequest for
    anything a user could get wrong."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    unknown = sorted(set(body) - set(SAMPLE_FIELDS))
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(unknown)}; known: "
                         f"{', '.join(SAMPLE_FIELDS)}")
    for name, kinds in SAMPLE_FIELDS.items():
        if name in body and (not isinstance(body[name], kinds) or isinstance(body[name], bool)):
            raise BadRequest(f"{name} has the wrong type: {body[name]!r}")
    d = SampleConfig()
    req = {"prime": body.get("prime"), "length": body.get("length", d.length),
           "temperature": body.get("temperature", d.temperature),
           "top_k": body.get("top_k", d.top_k), "top_p": body.get("top_p", d.top_p),
           "seed": body.get("seed"), "num_samples": body.get("num_samples", 1),
           "stop": body.get("stop", []), "best_of": body.get("best_of")}
    if req["length"] > limits.max_length:
        raise BadRequest(f"length {req['length']} is over this server's limit of "
                         f"{limits.max_length}")
    many = max(req["num_samples"], req["best_of"] or 1)
    if req["num_samples"] < 1 or many > limits.max_samples:
        raise BadRequest(f"num_samples and best_of must be in 1..{limits.max_samples}")
    if req["best_of"] is not None and req["num_samples"] != 1:
        raise BadRequest("best_of picks one sample: leave out num_samples")
    try:
        SampleConfig(req["length"], float(req["temperature"]), req["top_k"],
                     float(req["top_p"]), req["seed"])
        req["stop"] = check_stops(req["stop"])
        prime_ids(model.vocab, req["prime"])
    except CharrnnError as e:
        raise BadRequest(str(e).replace("--", "")) from None
    return req


def run_sample(model, req: dict) -> dict:
    """The response of POST /v1/sample for a checked request."""
    if req["best_of"]:
        text, nats, _ = best_of(model, req["best_of"], req["length"], req["temperature"],
                                req["prime"], req["seed"], req["top_k"], req["top_p"], None,
                                req["stop"])
        return {"samples": [text], "nats_per_char": nats}
    return {"samples": sample_many(model, req["num_samples"], req["length"], req["temperature"],
                                   req["prime"], req["seed"], req["top_k"], req["top_p"], None,
                                   req["stop"])}


def run_score(model, body) -> dict:
    """The response of POST /v1/score: per-line nats (charrnn score)."""
    if not isinstance(body, dict) or set(body) != {"lines"} or not isinstance(body["lines"], list):
        raise BadRequest('the body must be {"lines": [...]}')
    if not all(isinstance(s, str) for s in body["lines"]):
        raise BadRequest("lines must be strings")
    try:
        r = score(model, body["lines"])
    except CharrnnError as e:
        raise BadRequest(str(e).replace(" (use --skip-unknown to ignore them)", "")) from None
    return {"scores": [{"line": s, "nats": float(n), "chars": int(c),
                        "bits_per_char": float(b) if math.isfinite(b) else None}
                       for s, n, c, b in zip(r.lines, r.nats, r.chars, r.bits_per_char)]}


def query_request(params) -> dict:
    """GET /v1/stream's query string as a sample request body (numbers parsed)."""
    body = {}
    for k, v in params.items():
        if k in ("length", "top_k", "seed"):
            try:
                body[k] = int(v)
            except ValueError:
                raise BadRequest(f"{k} must be an integer, got {v!r}") from None
        elif k in ("temperature", "top_p"):
            try:
                body[k] = float(v)
            except ValueError:
                raise BadRequest(f"{k} must be a number, got {v!r}") from None
        else:
            body[k] = v
    return body


def make_app(model, limits: Limits | None = None):
    """The Starlette application serving `model`."""
    try:
        from starlette.applications import Starlette
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import HTMLResponse, JSONResponse, StreamingResponse
        from starlette.routing import Route
    except ImportError:
        raise CharrnnError(f"charrnn serve needs Starlette and uvicorn: {INSTALL}") from None
    limits = limits or Limits()
    description = model_info(model.path) if model.path is not None else {}

    def error(e: BadRequest):
        return JSONResponse({"error": str(e)}, status_code=e.status)

    async def body_of(request):
        if int(request.headers.get("content-length") or 0) > MAX_BODY:
            raise BadRequest(f"the body is over {MAX_BODY // 1024} KB", 413)
        raw = b""
        async for part in request.stream():
            raw += part
            if len(raw) > MAX_BODY:
                raise BadRequest(f"the body is over {MAX_BODY // 1024} KB", 413)
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("the body is not valid JSON") from None

    async def sample_route(request):
        try:
            req = check_sample_request(await body_of(request), model, limits)
            return JSONResponse(await run_in_threadpool(run_sample, model, req))
        except BadRequest as e:
            return error(e)

    async def score_route(request):
        try:
            body = await body_of(request)
            return JSONResponse(await run_in_threadpool(run_score, model, body))
        except BadRequest as e:
            return error(e)

    async def stream_route(request):
        try:
            req = check_sample_request(query_request(dict(request.query_params)), model, limits)
            if req["num_samples"] != 1 or req["best_of"]:
                raise BadRequest("/v1/stream streams one sample")
        except BadRequest as e:
            return error(e)
        chunks = sample_chunks(model, req["length"], req["temperature"], req["prime"],
                               req["seed"], req["top_k"], req["top_p"], req["stop"])

        def events():  # a plain iterator: Starlette runs it in a worker thread
            for text in chunks:
                yield f"data: {json.dumps(text)}\n\n"
            yield "event: end\ndata: {}\n\n"
        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    async def info_route(request):
        return JSONResponse(description)

    async def page_route(request):
        return HTMLResponse(PAGE.replace("__MODEL__", json.dumps(
            f"{model.cfg.cell.upper()} {model.cfg.layers}x{model.cfg.hidden}")))

    return Starlette(routes=[
        Route("/", page_route), Route("/v1/info", info_route),
        Route("/v1/sample", sample_route, methods=["POST"]),
        Route("/v1/score", score_route, methods=["POST"]),
        Route("/v1/stream", stream_route),
    ])


def serve(model, host: str = "127.0.0.1", port: int = 8000, limits: Limits | None = None,
          log: bool = True) -> None:
    """Serve until Ctrl-C or SIGTERM (uvicorn finishes the requests in flight, then returns)."""
    app = make_app(model, limits)
    import uvicorn
    uvicorn.run(app, host=host, port=port, log_level="info" if log else "warning",
                access_log=log)


PAGE = r"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>charrnn</title>
<style>
body { font: 15px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 860px; color: #222;
       padding: 0 12px; }
textarea { width: 100%; font: 14px ui-monospace, monospace; }
#out { font: 14px/1.5 ui-monospace, Menlo, Consolas, monospace; white-space: pre-wrap;
       border: 1px solid #ccc; padding: 10px; min-height: 8em; background: #fafafa; }
.row label { margin-right: 16px; }
#status { color: #666; }
</style></head><body>
<h1>charrnn <span id="model"></span></h1>
<p><textarea id="prime" rows="3" placeholder="a prime: the text to continue"></textarea></p>
<p class="row">
<label>temperature <input id="temperature" type="number" step="0.1" min="0" value="0.8"></label>
<label>length <input id="length" type="number" min="1" value="300"></label>
<button id="go">Generate</button> <span id="status"></span></p>
<div id="out"></div>
<script>
"use strict";
document.getElementById("model").textContent = __MODEL__;
const out = document.getElementById("out"), status = document.getElementById("status");
async function generate() {
  out.textContent = "";
  status.textContent = "generating ...";
  document.body.dataset.state = "generating";
  const q = new URLSearchParams({
    prime: document.getElementById("prime").value,
    temperature: document.getElementById("temperature").value,
    length: document.getElementById("length").value});
  if (location.hash.startsWith("#seed=")) q.set("seed", location.hash.slice(6));
  const r = await fetch("/v1/stream?" + q);
  if (!r.ok) {
    status.textContent = (await r.json()).error;
    document.body.dataset.state = "error";
    return;
  }
  const reader = r.body.getReader(), dec = new TextDecoder();
  let buf = "";
  for (;;) {  // server-sent events: "data: <JSON text>" blocks, then "event: end"
    const {value, done} = await reader.read();
    if (done) break;
    buf += dec.decode(value, {stream: true});
    let k;
    while ((k = buf.indexOf("\n\n")) >= 0) {
      const ev = buf.slice(0, k);
      buf = buf.slice(k + 2);
      if (ev.startsWith("data: ")) out.textContent += JSON.parse(ev.slice(6));
    }
  }
  status.textContent = "done";
  document.body.dataset.state = "done";
}
document.getElementById("go").onclick = generate;
if (location.hash.startsWith("#seed=")) generate();
</script>
</body></html>
"""
