import json
from pathlib import Path

import pytest

from labelrouter.errors import ConfigError
from labelrouter.labels import humanize, load_label_set, load_mailbox_ids, parse_label_set
from tests.conftest import LABELS_JSON


def test_default_taxonomy_is_valid_and_has_fallback():
    labels = load_label_set(LABELS_JSON)
    assert labels.fallback == "other"
    assert len(labels) >= 15
    assert labels.fallback not in [labels.names[i] for i in labels.routable]
    assert labels.siblings("💼-work-projects", "💼-work-meetings")
    assert not labels.siblings("💼-work-projects", "👤-personal-family")
    assert labels.get("🛒-shopping-promotions").archive is True


def test_retrieval_text_uses_the_parent_path_and_description():
    labels = load_label_set(LABELS_JSON)
    text = labels.retrieval_texts()[labels.index("💰-finance-taxes")]
    assert text.startswith("finance / finance taxes: ")
    assert "tax returns" in text.lower()
    assert humanize("comp.sys.mac.hardware") == "comp sys mac hardware"


def test_fingerprint_changes_with_order_and_descriptions():
    base = {"fallback": "b", "labels": [{"name": "a", "description": "x"}, {"name": "b"}]}
    reordered = {"fallback": "b", "labels": [{"name": "b"}, {"name": "a", "description": "x"}]}
    redescribed = {"fallback": "b", "labels": [{"name": "a", "description": "y"}, {"name": "b"}]}
    fps = {parse_label_set(d).fingerprint() for d in (base, reordered, redescribed)}
    assert len(fps) == 3


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"fallback": "a", "labels": [{"name": "a"}, {"name": "a"}]}, "labels[1] ('a'): duplicate name"),
        ({"fallback": "a", "labels": [{"name": "a", "parent": "ghost"}]}, "labels[0] ('a'): unknown parent 'ghost'"),
        ({"labels": [{"name": "a"}]}, "'fallback' is required"),
        ({"fallback": "zzz", "labels": [{"name": "a"}]}, "fallback 'zzz' is not one of the labels"),
        ({"fallback": "a", "labels": [{"name": "a"}, {"description": "no name"}]}, "labels[1]: missing or empty 'name'"),
        ({"fallback": "a", "labels": [{"name": "a", "archive": "yes"}]}, "'archive' must be true or false"),
        ({"fallback": "a", "labels": []}, "'labels' must be a non-empty list"),
        ([1, 2], "expected a JSON object"),
    ],
)
def test_invalid_label_documents_name_the_offending_entry(doc, message):
    with pytest.raises(ConfigError) as info:
        parse_label_set(doc, "labels.json")
    assert message in str(info.value)
    assert str(info.value).startswith("labels.json")


def test_broken_json_reports_line_and_column(tmp_path: Path):
    path = tmp_path / "labels.json"
    path.write_text('{"fallback": "other",\n "labels": [ {"name": "a"},, ]}')
    with pytest.raises(ConfigError, match=r"invalid JSON at line 2 column"):
        load_label_set(path)
    with pytest.raises(ConfigError, match="labels file not found"):
        load_label_set(tmp_path / "missing.json")


def test_mailbox_id_mapping_rejects_unknown_labels(tmp_path: Path):
    labels = load_label_set(LABELS_JSON)
    path = tmp_path / "gmail_labels.json"
    assert load_mailbox_ids(path, labels) == {}  # absent: nothing mapped yet
    path.write_text(json.dumps({"other": "Label_1", "no-such-label": "Label_2"}))
    with pytest.raises(ConfigError, match="unknown label"):
        load_mailbox_ids(path, labels)
    path.write_text(json.dumps({"other": "Label_1"}))
    assert load_mailbox_ids(path, labels) == {"other": "Label_1"}


def test_a_label_may_also_be_a_parent_as_gmail_nests_labels():
    from labelrouter.labels import parse_label_set

    labels = parse_label_set({"fallback": "other", "labels": [
        {"name": "Clients", "description": "mail from clients"},
        {"name": "Clients/Acme", "parent": "Clients", "description": "Acme Corp"},
        {"name": "Clients/Globex", "parent": "Clients"},
        {"name": "other"},
    ]})
    assert labels.siblings("Clients/Acme", "Clients/Globex")
    assert labels.retrieval_texts()[1] == "Clients / Clients/Acme: Acme Corp"
    with_node = parse_label_set({"fallback": "other", "nodes": [{"name": "Clients", "description": "clients"}],
                                 "labels": [{"name": "Clients"}, {"name": "Clients/Acme", "parent": "Clients"},
                                            {"name": "other"}]})
    assert with_node.get("Clients/Acme").parent == "Clients"
    # A label whose parent is the node of its own name (the Enron taxonomies: a folder holding mail and
    # subfolders) is that node, not a cycle.
    folder = parse_label_set({"nodes": [{"name": "top", "parent": None}, {"name": "top/egm", "parent": "top"}],
                              "labels": [{"name": "top/egm", "parent": "top/egm"},
                                         {"name": "top/egm_hall", "parent": "top/egm"}]}, require_fallback=False)
    assert folder.get("top/egm").parent == "top" and folder.get("top/egm_hall").parent == "top/egm"


def test_parent_cycles_are_refused():
    from labelrouter.labels import parse_label_set

    with pytest.raises(ConfigError, match="cycle"):
        parse_label_set({"fallback": "c", "labels": [{"name": "a", "parent": "b"}, {"name": "b", "parent": "a"},
                                                     {"name": "c"}]})
