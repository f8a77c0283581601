"""Dependencies point one way: nodes never import graphs or the CLI; state imports only itself; the store
and mail packages need no torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "labelrouter"


def _imports(folder: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted((PACKAGE / folder).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[str(path.relative_to(PACKAGE))] = names
    return found


def test_nodes_import_nothing_from_graph_or_cli():
    for module, names in _imports("nodes").items():
        bad = sorted(n for n in names if n.startswith(("labelrouter.graph", "labelrouter.cli")))
        assert not bad, f"{module} imports {bad}"


def test_state_imports_only_itself():
    for module, names in _imports("state").items():
        bad = sorted(n for n in names if n.startswith("labelrouter") and not n.startswith("labelrouter.state"))
        assert not bad, f"{module} imports {bad}"


@pytest.mark.parametrize("folder", ["store", "mail"])
def test_store_and_mail_do_not_import_torch(folder):
    for module, names in _imports(folder).items():
        bad = sorted(n for n in names if n.split(".")[0] in ("torch", "sentence_transformers", "transformers"))
        assert not bad, f"{module} imports {bad}"
    code = (f"import sys, labelrouter.{folder}; "
            "heavy = [m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules]; "
            "print(','.join(heavy))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "", f"importing labelrouter.{folder} loads {loaded}"


def test_the_graph_refuses_a_run_without_its_context():
    from labelrouter.graph.inference import build_inference_graph
    from labelrouter.state import EmailMessage

    graph = build_inference_graph().compile()
    with pytest.raises(TypeError, match="needs a LabelerContext"):
        graph.invoke({"message": EmailMessage(id="m", subject="s", body="b")})


BACKEND_BUILDERS = ("labelrouter.store", "labelrouter.artifacts", "labelrouter.graph.wiring",
                    "labelrouter.models.encoder", "labelrouter.models.registry",
                    "labelrouter.models.encoder_store", "labelrouter.models.current", "labelrouter.mail.maildir",
                    "labelrouter.mail.backends")


def test_cli_commands_build_backends_only_through_cli_backends():
    for module, names in _imports("cli").items():
        if module == "cli/backends.py":
            continue
        bad = sorted(n for n in names if n.startswith(BACKEND_BUILDERS))
        assert not bad, f"{module} imports {bad}: build it in cli/backends.py"


def test_only_the_registry_knows_the_bundle_layout():
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "registry.py" and path.parent.name == "models":
            continue
        text = path.read_text(encoding="utf-8")
        for key in ('"versions/', '"candidates/', '"current.json"', '"history.json"', '"bundle.json"'):
            assert key not in text and key.replace('"', "f\"") not in text, f"{path.relative_to(PACKAGE)} uses {key}"


def test_the_cli_and_the_fleet_run_mailbox_jobs_only_through_the_use_cases():
    """Polling, syncing and training are written once (`labelrouter.usecases`), so the two cannot drift."""
    jobs = ("labelrouter.graph.mailbox_run", "labelrouter.feedback.loop")
    for folder in ("cli", "fleet"):
        for module, names in _imports(folder).items():
            bad = sorted(n for n in names if n.startswith(jobs))
            assert not bad, f"{module} imports {bad}: call labelrouter.usecases instead"
        for path in sorted((PACKAGE / folder).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            for call in ("sync_and_mine(", "run_training(", "MailboxRun("):
                assert call not in text, f"{path.relative_to(PACKAGE)} calls {call[:-1]}: use labelrouter.usecases"


def test_only_a_few_modules_are_loose_at_the_top_and_none_is_long():
    loose = sorted(p.name for p in PACKAGE.glob("*.py") if not p.name.startswith("__"))
    assert len(loose) <= 5, loose
    long = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                  if len(p.read_text(encoding="utf-8").splitlines()) > 470)
    assert not long, f"split these: {long}"
