"""charrnn serve: a real server on a loopback port, real HTTP requests, the page in a browser."""
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

import charrnn
from test_show import CHROMIUM, browser, needs_browser, needs_driver, wait_for  # noqa: F401

pytest.importorskip("starlette", reason="charrnn serve needs the [serve] extra")
pytest.importorskip("uvicorn", reason="charrnn serve needs the [serve] extra")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_run):
    """`charrnn serve` on a free loopback port; stopped with SIGTERM at the end."""
    run = tiny_run[0]
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "charrnn", "serve", str(run),
                             "--port", str(port), "--max-length", "500", "--max-samples", "4",
                             "--quiet"], stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(url + "/v1/info", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    yield url, charrnn.load(run), proc
    if proc.poll() is None:
        proc.kill()


def post(url, body, raw=None):
    data = raw if raw is not None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_sample_score_info_and_stream(server):
    url, model, _ = server
    status, got = post(url + "/v1/sample", {"prime": "First", "length": 40, "seed": 1})
    assert status == 200 and got["samples"] == [charrnn.sample_many(model, 1, 40, prime="First",
                                                                      seed=1)[0]]
    status, got = post(url + "/v1/sample", {"length": 30, "seed": 2, "num_samples": 3,
                                            "stop": ["e"]})
    assert status == 200 and len(got["samples"]) == 3
    assert all(s.count("e") <= 1 for s in got["samples"])
    status, got = post(url + "/v1/sample", {"length": 30, "seed": 2, "best_of": 3})
    assert status == 200 and len(got["samples"]) == 1 and got["nats_per_char"] > 0
    status, got = post(url + "/v1/score", {"lines": ["First Citizen", ""]})
    r = charrnn.score(model, ["First Citizen", ""])
    assert status == 200 and [s["nats"] for s in got["scores"]] == pytest.approx(list(r.nats))
    info = json.loads(urllib.request.urlopen(url + "/v1/info").read())
    assert info["parameters"] == charrnn.info(model.path)["parameters"]
    with urllib.request.urlopen(url + "/v1/stream?prime=Fi&length=150&seed=3") as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        events = r.read().decode().split("\n\n")
    texts = [json.loads(e[6:]) for e in events if e.startswith("data: ") and e != "data: {}"]
    assert "".join(texts) == charrnn.sample(model, 150, prime="Fi", seed=3)
    assert "event: end" in events[-2]


@pytest.mark.parametrize("body, raw, status, message", [
    (None, b"{not json", 400, "not valid JSON"),
    ([1, 2], None, 400, "must be a JSON object"),
    ({"lenght": 5}, None, 400, "unknown field(s): lenght"),
    ({"length": "5"}, None, 400, "length has the wrong type"),
    ({"length": 501}, None, 400, "over this server's limit of 500"),
    ({"num_samples": 5}, None, 400, "must be in 1..4"),
    ({"prime": "Zürich€"}, None, 400, "not in the model's vocabulary"),
    ({"temperature": -1}, None, 400, "temp must be > 0"),
    (None, b'{"prime": "' + b"a" * 70000 + b'"}', 413, "over 64 KB"),
])
def test_bad_requests_are_one_line_of_json_with_a_4xx(server, body, raw, status, message):
    url, _, proc = server
    got_status, got = post(url + "/v1/sample", body, raw)
    assert got_status == status and set(got) == {"error"} and message in got["error"], got
    assert proc.poll() is None  # never a crash


def test_requests_are_served_side_by_side(server):
    url, _, _ = server
    results = []

    def slow_reader():  # reads one event, then sits on the connection
        r = urllib.request.urlopen(url + "/v1/stream?length=500&seed=4", timeout=60)
        r.readline()
        time.sleep(3)
        r.close()

    t = threading.Thread(target=slow_reader)
    t.start()
    time.sleep(0.3)
    t0 = time.perf_counter()
    threads = [threading.Thread(target=lambda k=k: results.append(
        post(url + "/v1/sample", {"length": 100, "seed": k}))) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert [s for s, _ in results] == [200] * 4
    assert time.perf_counter() - t0 < 3  # not held behind the slow reader
    t.join()


@needs_browser
def test_the_page_streams_a_sample_in_a_browser(server, tmp_path):
    url, model, _ = server
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={tmp_path / 'c'}", "--virtual-time-budget=15000",
           "--dump-dom", url + "/#seed=5"]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False).stdout
    assert 'data-state="done"' in dom, dom[-3000:]
    import html
    import re
    out = html.unescape(re.search(r'<div id="out">(.*?)</div>', dom, re.S).group(1))
    assert out == charrnn.sample(model, 300, temperature=0.8, prime="", seed=5)


@needs_driver
def test_typing_a_prime_and_pressing_generate(server, browser):
    from selenium.webdriver.common.by import By
    url, model, _ = server
    browser.get(url + "/#seed=6")  # the fragment seeds the page's requests (and generates once)
    body = browser.find_element(By.TAG_NAME, "body")
    wait_for(browser, lambda d: body.get_attribute("data-state") == "done")
    browser.find_element(By.ID, "prime").send_keys("First")
    length = browser.find_element(By.ID, "length")
    length.clear()
    length.send_keys("120")
    browser.find_element(By.ID, "go").click()
    wait_for(browser, lambda d: body.get_attribute("data-state") == "done"
             and d.find_element(By.ID, "out").text.startswith("First"))
    out = browser.execute_script("return document.getElementById('out').textContent")
    assert out == charrnn.sample(model, 120, temperature=0.8, prime="First", seed=6)


def test_sigterm_ends_the_server_cleanly(server):
    url, _, proc = server
    proc.send_signal(signal.SIGTERM)
    # uvicorn finishes the requests in flight, closes the socket, then ends by the signal it got,
    # as a signal-stopped program does (charrnn train too: 143)
    assert proc.wait(timeout=30) in (-signal.SIGTERM, 128 + signal.SIGTERM)
    assert "Traceback" not in proc.stderr.read()
    port = int(url.rsplit(":", 1)[1])
    with socket.socket() as s:  # nothing listens there any more (closed connections may wait)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
