"""`labelrouter eval` on a real subset (clinc150, one domain + out-of-scope rows): every config in one run."""

import gzip
import json
import random

import pytest
from typer.testing import CliRunner

from labelrouter.cli.app import app
from tests.conftest import DATA

CLINC = DATA / "clinc150"
runner = CliRunner()
pytestmark = [pytest.mark.data,
              pytest.mark.skipif(not (CLINC / "messages.jsonl.gz").exists(), reason="needs ../shared/data/clinc150")]


@pytest.fixture(scope="module")
def subset(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("eval")
    taxonomy = json.loads((CLINC / "taxonomy.json").read_text())
    labels = [lb for lb in taxonomy["labels"] if lb["parent"] == "banking"]
    names = {lb["name"] for lb in labels}
    with gzip.open(CLINC / "messages.jsonl.gz", "rt") as fh:
        rows = [r for r in map(json.loads, fh) if r["label"] in names or r["label"] == "oos"]
    oos = [r for r in rows if r["label"] == "oos"]
    random.Random(3).shuffle(oos)
    rows = [r for r in rows if r["label"] != "oos"] + oos[:150]
    messages = tmp / "m.jsonl.gz"
    with gzip.open(messages, "wt") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    (tmp / "taxonomy.json").write_text(json.dumps({"dataset": "clinc-banking", "labels": labels,
                                                   "nodes": [n for n in taxonomy["nodes"] if n["name"] == "banking"]}))
    return tmp, messages, tmp / "taxonomy.json"


def _eval(subset, *args):
    tmp, messages, taxonomy = subset
    out = tmp / ("out-" + "-".join(a.strip("-").replace(",", "_") for a in args))
    result = runner.invoke(app, ["eval", "--messages", str(messages), "--taxonomy", str(taxonomy), "--oos-label", "oos",
                                 "--out", str(out), *args])
    assert result.exit_code == 0, result.output
    return out, json.loads((out / "metrics.json").read_text())


def test_full_protocol_reports_every_config_and_baseline(subset, encoder):
    out, report = _eval(subset, "--protocol", "full", "--no-cache")  # measured, so throughput is a real figure
    configs = report["configs"]
    assert set(configs) == {"router_only", "head_only", "router_x_head", "blend", "dense_head_only",
                            "dense_router_x_head"}
    assert set(report["baselines"]) == {"tfidf_svm", "frozen_lr"}
    for metrics in [*configs.values(), *report["baselines"].values()]:
        for key in ("top1", "recall@5", "macro_f1"):
            assert 0 <= metrics[key] <= 1
    assert configs["router_x_head"]["top1"] > configs["router_only"]["top1"] + 0.1  # the head learned
    assert 0 <= configs["router_x_head"]["oos_recall"] <= 1 and "threshold" in configs["router_x_head"]
    assert configs["router_only"]["sibling_chance_rate"] == pytest.approx(1.0, abs=0.1)  # one parent → all siblings
    assert "| router_x_head |" in (out / "report.md").read_text()
    curve = configs["router_x_head"]["risk_coverage"]
    assert curve[-1][0] == 1.0 and curve[0][1] <= curve[-1][1]  # the most confident decisions err least
    assert report["throughput_msgs_per_s"] > 0 and report["latency_ms_p95"] >= report["latency_ms_p50"] > 0
    for plot in ("risk_coverage.png", "errors_by_parent.png"):
        assert (out / plot).read_bytes()[:4] == b"\x89PNG"


def test_fewshot_draws_several_samples_and_plots_the_curve(subset, encoder):
    out, report = _eval(subset, "--protocol", "fewshot", "--k", "1,8")
    curve = report["fewshot"]
    assert curve["1"]["router_x_head"]["runs"] == 5 and curve["1"]["tfidf_svm"]["runs"] == 5
    assert curve["8"]["router_x_head"]["top1_mean"] > curve["1"]["router_x_head"]["top1_mean"]
    assert curve["1"]["router_x_head"]["top1_sd"] >= 0
    assert (out / "fewshot.png").read_bytes()[:4] == b"\x89PNG"


def test_cold_protocol_has_only_the_router(subset, encoder):
    _, report = _eval(subset, "--protocol", "cold")
    assert list(report["configs"]) == ["router_only"]


@pytest.mark.parametrize(("args", "fragment"), [
    (["--protocol", "warm"], "unknown protocol"),
    (["--k", "a,b"], "--k takes"),
    (["--fallback-on", "entropy"], "'entropy': use auto, confidence or margin"),
    ([], "150 rows have labels not in"),  # the oos rows, unless named by --oos-label
])
def test_bad_options_are_one_line(subset, args, fragment, encoder):
    tmp, messages, taxonomy = subset
    result = runner.invoke(app, ["eval", "--messages", str(messages), "--taxonomy", str(taxonomy), *args])
    assert result.exit_code == 2 and fragment in result.stderr
