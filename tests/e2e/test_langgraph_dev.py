"""`langgraph dev` serves both graphs from langgraph.json and answers runs over its HTTP API: a real
server on a free port (no browser, no reload, tracing off), one message labeled by the inference graph,
one run of the training graph, then stopped. Dependencies are the server's, built from its environment."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
LANGGRAPH = Path(sys.executable).with_name("langgraph")

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    if not LANGGRAPH.exists() and shutil.which("langgraph") is None:
        pytest.fail("langgraph-cli[inmem] is not installed: it is in the test extra (pip install -e '.[test]')")
    port = _free_port()
    env = {**os.environ, "LABELROUTER_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1",
           "LANGSMITH_TRACING": "false", "LANGCHAIN_TRACING_V2": "false", "LANGGRAPH_CLI_NO_ANALYTICS": "1"}
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [str(LANGGRAPH if LANGGRAPH.exists() else shutil.which("langgraph")), "dev", "--config",
         str(ROOT / "langgraph.json"), "--port", str(port), "--no-browser", "--no-reload"],
        cwd=ROOT, env=env,  # langgraph.json's paths are read from the working directory (.langgraph_api/ is ignored)
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:  # a real server starting: polled, bounded
            if process.poll() is not None:
                pytest.fail(f"langgraph dev exited ({process.returncode}):\n{(tmp_path / 'server.log').read_text()[-3000:]}")
            try:
                if httpx.get(f"{base}/ok", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"langgraph dev did not answer in 120 s:\n{(tmp_path / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield base, tmp_path / "server.log"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def test_langgraph_dev_serves_both_graphs_and_labels_a_message(server):
    base, log = server
    graphs = {a["graph_id"] for a in httpx.post(f"{base}/assistants/search", json={}, timeout=30).json()}
    assert {"labelrouter", "labelrouter-train"} <= graphs
    message = {"id": "dev-1", "subject": "Your invoice for March", "sender": "billing@shop.example",
               "recipients": ["me@example.org"],
               "body": "Please find attached the invoice for your March order. Amount due: 42 EUR by April 5."}
    reply = httpx.post(f"{base}/runs/wait", json={"assistant_id": "labelrouter", "input": {"message": message}},
                       timeout=180)
    assert reply.status_code == 200, reply.text
    out = reply.json()
    assert "__error__" not in out, out
    routing = out["routing"]
    assert routing["label"] == "💰-finance-bills" and routing["reason"] == "argmax", routing
    assert routing["model_version"].endswith("+head:cold-start")
    assert out["applied"] is None or not out["applied"].get("applied")  # decide mode: the mailbox is not touched

    trained = httpx.post(f"{base}/runs/wait", json={"assistant_id": "labelrouter-train", "input": {}}, timeout=180)
    assert trained.status_code == 200, trained.text
    assert trained.json()["decision"] == "not trained: not enough data", trained.json()
    assert "Traceback" not in log.read_text()
