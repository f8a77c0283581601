"""`labelrouter report`: the figures (exact, on decisions written by hand), and the page itself on a store
filled by the real loop, rendered in headless Chromium (Playwright) and asserted on, offline and whole."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from labelrouter.cli.app import app
from labelrouter.labels import load_label_set
from labelrouter.report.quality import build_report, head_version, js_divergence
from tests.browser import chromium
from tests.conftest import LABELS_JSON

runner = CliRunner()
LABELS = load_label_set(LABELS_JSON)
HEAD = "all-MiniLM-L6-v2@abc+head:h20240610T010000-aa"


def _row(mid: str, when: str, label: str, **extra):
    return {"message_id": mid, "status": "labeled", "message_date": when, "processed_at": "2024-07-01T00:00:00+00:00",
            "label_applied": label, "fallback": label == "other", "shadow": 0, "feedback": None,
            "effective_label": None, "model_version": "all-MiniLM-L6-v2@abc", "labels_synced_at": None, **extra}


def test_weekly_figures_pairs_and_models_from_the_stored_decisions():
    rows = [
        # week of 2024-06-03: 4 labeled (one fallback, which the user filed), one corrected to a sibling,
        # one rejected
        _row("a", "2024-06-03T09:00:00+00:00", "💼-work-projects", feedback="correction",
             effective_label="💼-work-meetings", labels_synced_at="x"),
        _row("b", "2024-06-04T09:00:00+00:00", "💼-work-projects", feedback="rejection", labels_synced_at="x"),
        _row("c", "Wed, 05 Jun 2024 10:00:00 +0000", "💰-finance-bills"),  # an RFC 2822 date is read too
        _row("d", "2024-06-09T23:00:00+00:00", "other", feedback="correction", effective_label="💰-finance-taxes"),
        _row("e", "2024-06-05T09:00:00+00:00", "💰-finance-bills", shadow=1),
        {**_row("f", "2024-06-05T09:00:00+00:00", ""), "status": "failed"},
        # week of 2024-06-10: a promoted head labels; one correction to a distant label
        _row("g", "2024-06-10T09:00:00+00:00", "💼-work-projects", model_version=HEAD, feedback="correction",
             effective_label="💰-finance-taxes"),
        _row("h", "2024-06-11T09:00:00+00:00", "💼-work-projects", model_version=HEAD + "+rerank:r1"),
        _row("i", None, "💼-work-projects", processed_at=None),  # no date at all: counted apart
    ]
    models = [{"version": "h20240610T010000-aa", "created_at": "2024-06-10T01:00:00", "current": True,
               "metrics": {"validation": {"top1": 0.91}, "n_train": 120}}]
    report = build_report(rows, LABELS, models, history=["h20240610T010000-aa"], source="test")
    first, second = report.weeks
    assert (first.name, first.labeled, first.fallback, first.shadow, first.failed) == ("2024-W23", 4, 1, 1, 1)
    assert first.coverage == 0.75 and first.correction_rate == 0.75 and first.read_back_share == 0.5
    assert first.drift is None and first.new_models == ["all-MiniLM-L6-v2@abc"]
    assert second.name == "2024-W24" and second.correction_rate == 0.5
    assert second.new_models == ["h20240610T010000-aa", "h20240610T010000-aa +rerank"]
    # week 2 predicted only work-projects; week 1: projects 2, bills 1, other 1 → JS divergence
    assert second.drift == pytest.approx(js_divergence(Counter({"p": 2}), Counter({"p": 2, "b": 1, "o": 1})))
    sibling, distant = sorted(report.pairs, key=lambda p: p.theirs)[::-1]
    assert (sibling.ours, sibling.theirs, sibling.sibling, sibling.parent) == ("💼-work-projects", "💼-work-meetings", True, "work")
    assert distant.theirs == "💰-finance-taxes" and not distant.sibling and len(report.pairs) == 2
    assert report.from_fallback == [("💰-finance-taxes", 1)]  # a coverage question, apart from the confusions
    assert (report.totals["label_corrections"], report.totals["sibling_corrections"]) == (2, 1)
    assert report.models[0]["promoted"] and report.models[0]["first_week"].isoformat() == "2024-06-10"
    assert report.totals["undated"] == 1 and report.totals["labeled"] == 6 and report.totals["promotions"] == 1
    by_processing = build_report(rows, LABELS, [], by="processed")
    assert [w.name for w in by_processing.weeks] == ["2024-W27"]


def test_drift_is_zero_for_the_same_distribution_and_one_for_disjoint_ones():
    assert js_divergence(Counter(a=2, b=2), Counter(a=5, b=5)) == pytest.approx(0.0)
    assert js_divergence(Counter(a=3), Counter(b=1)) == pytest.approx(1.0)
    assert js_divergence(Counter(), Counter(a=1)) is None
    assert head_version("enc@1+head:h1-x+rerank:r") == "h1-x +rerank" and head_version(None) == "cold-start"


def _filled_home(tmp_path, settings, stub_encoder):
    """Three weeks of the sample mail labeled by the real loop, then the user corrects five messages."""
    from labelrouter.demo import sample_messages
    from labelrouter.feedback import sync_and_mine
    from labelrouter.graph.labeler import Labeler
    from labelrouter.graph.mailbox_run import MailboxRun
    from labelrouter.graph.wiring import build_context
    from labelrouter.mail.maildir import LocalMaildir
    from labelrouter.store import SQLiteStore
    from tests.feedback.test_feedback import move

    box = LocalMaildir(tmp_path / "Mail")
    for week in range(3):
        for _, raw in sample_messages(datetime(2024, 6, 3, 8, tzinfo=UTC) + timedelta(weeks=week)):
            box.deliver(raw)
    store = SQLiteStore(settings.resolved_db_path)
    report = MailboxRun(Labeler(build_context(settings, mode="apply", mailbox=box, store=store), settings)).run_mailbox()
    assert report.count("applied") == 3 * 38
    applied = {r["message_id"]: r["label_applied"] for r in store.rows("labeled")}
    moved = [m for m, label in applied.items() if label not in ("other", "💼-work-meetings")][:5]
    for mid in moved:
        move(box, mid, applied[mid], "💼-work-meetings")
    sync_and_mine(store, box, LABELS, nightly_days=3650)
    store.close()
    return len(moved)


def test_the_report_page_renders_in_chromium_whole_and_offline(tmp_path, settings, stub_encoder, monkeypatch):
    browser_path, why = chromium()
    if browser_path is None:
        pytest.skip(f"REPORT PAGE NOT RENDERED: {why}")
    from playwright.sync_api import sync_playwright

    corrected = _filled_home(tmp_path, settings, stub_encoder)
    monkeypatch.setenv("LABELROUTER_HOME", str(settings.home))
    monkeypatch.setenv("LABELROUTER_LABELS_PATH", str(settings.labels_path))
    page_path = tmp_path / "out" / "report.html"
    made = runner.invoke(app, ["report", "--out", str(page_path)])
    assert made.exit_code == 0 and "114 messages labeled over 3 weeks" in made.stdout, made.output
    html = page_path.read_text(encoding="utf-8")
    assert "Ça va" not in html and "Lottery" not in html  # no message text in the page
    requests, errors = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("request", lambda r: requests.append(r.url))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(page_path.as_uri())
        assert page.title() == "labelrouter quality report"
        cards = page.locator("#summary .card").all_inner_texts()
        assert any("114" in c and "messages labeled" in c for c in cards), cards
        assert page.locator("#weeks-table tbody tr").count() == 3
        newest = page.locator("#weeks-table tbody tr").first.locator("td").all_inner_texts()
        assert newest[0] == "2024-W25" and newest[1] == "38"
        for plot in ("volume", "drift", "labels"):
            box = page.locator(f"#plot-{plot} svg").bounding_box()
            assert box is not None and box["width"] > 500 and box["height"] > 100, (plot, box)
        assert "coverage" in page.locator("#plot-volume svg").text_content()  # the legend, as text
        pairs = page.locator("#pairs-table tbody tr").all_inner_texts()
        assert sum(int(r.split("\t")[2]) for r in pairs) == corrected
        assert all("💼-work-meetings" in r for r in pairs)
        for row in pairs:  # a sibling confusion is flagged exactly when our label was another work label
            assert ("yes (under work)" in row) == row.split("\t")[0].startswith("💼-work-"), row
        assert "No model trained yet" in page.locator("#models").inner_text()
        shot = page.screenshot(full_page=True)
        browser.close()
    assert requests == [page_path.as_uri()]  # self-contained: nothing else fetched
    assert errors == []
    assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 50_000


def test_report_on_a_home_with_nothing_labeled_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("LABELROUTER_HOME", str(tmp_path / "home"))
    out = tmp_path / "r.html"
    made = runner.invoke(app, ["report", "--out", str(out)])
    assert made.exit_code == 0, made.output
    assert "Nothing labeled yet" in out.read_text(encoding="utf-8")
    bad = runner.invoke(app, ["report", "--by", "yesterday"])
    assert bad.exit_code == 2 and "--by takes arrived or processed" in bad.output
