"""What a newcomer trips on: their own config via `init`, a data set's taxonomy as the label list, the
packaged list never edited in place, label changes that reach every Maildir `run` labeled."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from labelrouter.cli.app import app
from labelrouter.labels import load_label_set
from labelrouter.mail.maildir import LocalMaildir
from labelrouter.settings import PACKAGED_LABELS, load_settings
from tests.conftest import DATA

runner = CliRunner()


def test_init_writes_the_users_own_labels_and_settings_prefer_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_settings().labels_path == PACKAGED_LABELS  # nothing local yet: the packaged list is read
    result = runner.invoke(app, ["init"])
    assert result.exit_code == 0, result.output
    mine = tmp_path / "config" / "labels.json"
    assert load_label_set(mine) == load_label_set(PACKAGED_LABELS)
    assert load_settings().labels_path.resolve() == mine.resolve()
    again = runner.invoke(app, ["init"])
    assert again.exit_code == 2 and "already exists" in again.stderr
    assert runner.invoke(app, ["init", "--force"]).exit_code == 0


def test_label_changes_refuse_to_edit_the_packaged_list(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = PACKAGED_LABELS.read_bytes()
    result = runner.invoke(app, ["labels", "add", "x-new", "--description", "new things"],
                           env={"LABELROUTER_HOME": str(tmp_path / "home")})
    assert result.exit_code == 2 and "labelrouter init" in result.stderr
    assert PACKAGED_LABELS.read_bytes() == before


def test_a_taxonomy_becomes_a_label_list_with_a_fallback(tmp_path):
    taxonomy = tmp_path / "taxonomy.json"
    taxonomy.write_text(json.dumps({"dataset": "t", "nodes": [{"name": "money", "parent": None}],
                                    "labels": [{"name": "bills", "parent": "money"}, {"name": "oos", "parent": None},
                                               {"name": "trips", "parent": None}]}))
    result = runner.invoke(app, ["init", "--dir", str(tmp_path), "--taxonomy", str(taxonomy), "--fallback", "oos"])
    assert result.exit_code == 0, result.output
    labels = load_label_set(tmp_path / "config" / "labels.json")
    assert labels.names == ["bills", "oos", "trips"] and labels.fallback == "oos"
    assert labels.get("bills").parent == "money"
    added = runner.invoke(app, ["init", "--dir", str(tmp_path), "--taxonomy", str(taxonomy), "--force"])
    assert added.exit_code == 0 and load_label_set(tmp_path / "config" / "labels.json").names[-1] == "other"
    # Used directly as a labels file, a taxonomy's missing fallback says how to get one.
    direct = runner.invoke(app, ["label", "-", "--labels", str(taxonomy)], input=b"Subject: x\n\nhello\n")
    assert direct.exit_code == 2 and "init --taxonomy" in direct.stderr


@pytest.mark.data
@pytest.mark.slow
def test_the_documented_import_of_a_data_set_with_its_own_taxonomy_works(tmp_path, monkeypatch, encoder):
    clinc = DATA / "clinc150"
    small = tmp_path / "messages.jsonl"
    import gzip

    with gzip.open(clinc / "messages.jsonl.gz", "rt") as fh:
        rows = [json.loads(line) for line in fh]
    small.write_text("".join(json.dumps(r) + "\n" for r in rows[::60]))  # every 60th row: all kinds, quickly
    monkeypatch.chdir(tmp_path)
    env = {"LABELROUTER_HOME": str(tmp_path / "home")}
    args = ["import", "--messages", str(small), "--taxonomy", str(clinc / "taxonomy.json"), "--oos-label", "oos"]
    refused = runner.invoke(app, args, env=env)  # the packaged list shares no label with clinc150
    assert refused.exit_code == 2 and "labelrouter init --taxonomy" in refused.stderr
    assert runner.invoke(app, ["init", "--taxonomy", str(clinc / "taxonomy.json"), "--fallback", "oos"]).exit_code == 0
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    n_in_scope = sum(1 for r in rows[::60] if r["label"] != "oos")
    assert f"imported {n_in_scope} gold examples from clinc150" in result.stdout


@pytest.mark.slow
def test_rename_and_merge_reach_the_maildir_run_labeled(tmp_path, monkeypatch, encoder):
    from labelrouter.demo import create_sample_mailbox

    monkeypatch.chdir(tmp_path)
    assert runner.invoke(app, ["init"]).exit_code == 0
    elsewhere = tmp_path / "Mail" / "work"
    expected = create_sample_mailbox(elsewhere)
    env = {"LABELROUTER_HOME": str(tmp_path / "home")}
    assert runner.invoke(app, ["run", "--mailbox", str(elsewhere), "--json"], env=env).exit_code == 0
    box = LocalMaildir(elsewhere, create=False)
    old, new = "🛒-shopping-orders", "🛒-shopping-purchases"
    filed = [mid for mid in expected if old in box.label_ids(mid)]
    assert filed
    result = runner.invoke(app, ["labels", "rename", old, new], env=env)
    assert result.exit_code == 0, result.output
    assert "in 1 mailbox(es)" in result.stdout
    assert all(new in box.label_ids(mid) for mid in filed)
    merged = runner.invoke(app, ["labels", "merge", new, "🛒-shopping-promotions"], env=env)
    assert merged.exit_code == 0, merged.output
    assert all("🛒-shopping-promotions" in box.label_ids(mid) for mid in filed)
    assert not (elsewhere / f".{new}").exists() or not any((elsewhere / f".{new}" / "cur").iterdir())
    # A Maildir named only on the command line must be one.
    bogus = runner.invoke(app, ["labels", "rename", "🛒-shopping-promotions", "x", "--mailbox", str(tmp_path)], env=env)
    assert bogus.exit_code == 2 and "not a Maildir" in bogus.stderr
    shutil.rmtree(elsewhere)  # a remembered Maildir that is gone is skipped, not an error
    assert runner.invoke(app, ["labels", "rename", "🛒-shopping-promotions", "🛒-shopping-deals"], env=env).exit_code == 0
