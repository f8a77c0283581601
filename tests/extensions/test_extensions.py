"""Users extend the inference graph without forking it: declared place, reads and writes, checked."""

import json
import textwrap

import pytest
from typer.testing import CliRunner

from labelrouter.cli.app import app
from labelrouter.errors import ConfigError
from labelrouter.extensions import Extension, load_extensions
from labelrouter.graph.inference import build_inference_graph
from tests.conftest import LABELS_JSON
from tests.helpers import eml

runner = CliRunner()
EXT_MODULE = textwrap.dedent('''
    from labelrouter.extensions import Extension

    def shout(state, runtime):
        return {"extensions": {"shout": {"subject": state.message.subject.upper(), "saw": state.routing.label}}}

    extension = Extension(name="shout", node=shout, place="after_router", reads=("message", "routing"))
''')


@pytest.fixture
def ext_env(tmp_path, monkeypatch):
    package = tmp_path / "pkgs"
    package.mkdir()
    (package / "my_ext_pkg.py").write_text(EXT_MODULE)
    monkeypatch.syspath_prepend(str(package))
    return {"LABELROUTER_HOME": str(tmp_path / "home"), "LABELROUTER_LABELS_PATH": str(LABELS_JSON),
            "LABELROUTER_EXTENSIONS": "my_ext_pkg:extension"}


def test_an_extension_named_in_the_environment_is_drawn_and_writes_into_label_json(tmp_path, ext_env, encoder):
    mermaid = runner.invoke(app, ["graph", "--format", "mermaid"], env=ext_env)
    assert mermaid.exit_code == 0, mermaid.output
    # After the router, the shipped important head, then the environment's extension, then apply.
    assert "label_router --> important" in mermaid.stdout and "important --> shout" in mermaid.stdout
    assert "shout --> apply" in mermaid.stdout
    path = tmp_path / "m.eml"
    path.write_bytes(eml("Flight booking confirmation", "Your flight to Lisbon is confirmed."))
    result = runner.invoke(app, ["label", str(path)], env=ext_env)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["extensions"]["shout"] == {"subject": "FLIGHT BOOKING CONFIRMATION", "saw": "✈️-travel-bookings"}


def test_an_undeclared_write_is_an_error_naming_the_extension(ctx):
    from labelrouter.mail.parse import parse_message

    def sneaky(state, runtime):
        return {"routing": None}

    graph = build_inference_graph(extensions=[Extension("sneaky", sneaky, "after_router")]).compile()
    with pytest.raises(TypeError, match="extension 'sneaky' wrote \\['routing'\\]"):
        graph.invoke({"message": parse_message(eml("a", "b"))}, context=ctx)


@pytest.mark.parametrize(
    ("extension", "fragment"),
    [
        (Extension("x", lambda s, r: {}, "somewhere"), "place 'somewhere'"),
        (Extension("x", lambda s, r: {}, "after_apply", writes=("nonsense",)), "unknown state fields ['nonsense']"),
        (Extension("x", lambda s, r: {}, "after_apply", writes=("message",)), "may not write the input message"),
        (Extension("apply", lambda s, r: {}, "after_apply"), "must be an identifier other than"),
    ],
)
def test_bad_declarations_are_refused_when_the_graph_is_built(extension, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        build_inference_graph(extensions=[extension])


def test_bad_extension_specs_are_one_line_errors(ext_env):
    with pytest.raises(ConfigError, match="not module:attribute"):
        load_extensions("no_colon_here", installed=False)
    with pytest.raises(ConfigError, match="cannot load extension 'nowhere_pkg:x'"):
        load_extensions("nowhere_pkg:x", installed=False)
    with pytest.raises(ConfigError, match="two extensions are named"):
        load_extensions("my_ext_pkg:extension,my_ext_pkg:extension", installed=False)
    result = runner.invoke(app, ["graph"], env={**ext_env, "LABELROUTER_EXTENSIONS": "my_ext_pkg:EXT_MISSING"})
    assert result.exit_code == 2 and result.stderr.startswith("error:") and "Traceback" not in result.output


def _rules(tmp_path, rules) -> dict[str, str]:
    path = tmp_path / "sender_rules.json"
    path.write_text(json.dumps({"rules": rules}, ensure_ascii=False))
    return {"LABELROUTER_HOME": str(tmp_path / "home"), "LABELROUTER_LABELS_PATH": str(LABELS_JSON),
            "LABELROUTER_SENDER_RULES_PATH": str(path)}


def test_a_sender_rule_overrides_the_router_and_says_so(tmp_path, encoder):
    env = _rules(tmp_path, [{"match": "*@travel-deals.example", "label": "🛒-shopping-promotions"},
                            {"match": "mybank.example", "label": "💰-finance-banking"}])
    path = tmp_path / "m.eml"
    # Reads like a travel booking; the sender rule says it is the bank.
    path.write_bytes(eml("Flight booking confirmation", "Your flight to Lisbon is confirmed.",
                         sender="Alerts <alerts@cards.mybank.example>"))
    data = json.loads(runner.invoke(app, ["label", str(path)], env=env).stdout)
    assert data["label"] == "💰-finance-banking" and data["reason"] == "sender-rule" and data["confidence"] == 1.0
    assert data["extensions"]["sender_rules"] == {"rule": 1, "match": "mybank.example",
                                                  "sender": "alerts@cards.mybank.example"}
    assert data["final_scores"]["💰-finance-banking"] == 100.0
    path.write_bytes(eml("Flight booking confirmation", "Your flight to Lisbon is confirmed.",
                         sender="someone@notmybank.example"))
    data = json.loads(runner.invoke(app, ["label", str(path)], env=env).stdout)
    assert data["label"] == "✈️-travel-bookings" and data["reason"] == "argmax" and data["extensions"] == {}


def test_a_sender_rule_naming_an_unknown_label_is_a_clear_error(tmp_path, encoder):
    env = _rules(tmp_path, [{"match": "x.example", "label": "no-such-label"}])
    path = tmp_path / "m.eml"
    path.write_bytes(eml("hi", "there", sender="a@x.example"))
    result = runner.invoke(app, ["label", str(path)], env=env)
    assert result.exit_code == 1
    assert "rules[0] ('x.example'): unknown label 'no-such-label'" in json.loads(result.stdout)["error"]
