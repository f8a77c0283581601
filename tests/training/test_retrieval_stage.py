"""The retrieval stage in the training graph, on a clinc150 subset with the real encoder: a fine-tuned
bi-encoder is promoted with its head as one bundle (inference then embeds with it, and the stored examples
carry its vectors); a worse one is refused, leaves nothing behind, and the current bundle keeps serving."""

import json

import pytest

from labelrouter.graph.labeler import Labeler
from labelrouter.graph.wiring import build_context
from labelrouter.models.encoder_store import serving_encoder
from labelrouter.settings import load_settings
from labelrouter.store import SQLiteStore
from labelrouter.training import build_training_context, retrieval_stage, run_training
from labelrouter.training.budget import Budget, StageReport
from labelrouter.training.importer import import_examples, read_labeled_set, row_message
from tests.conftest import registry_at
from tests.training.test_training import CLINC, _write_jsonl, clinc  # noqa: F401 - the module-scoped subset fixture

pytestmark = [pytest.mark.data,
              pytest.mark.skipif(not (CLINC / "messages.jsonl.gz").exists(), reason="needs ../shared/data/clinc150")]


def _import(settings, store, encoder, subset, rows, name):
    path = _write_jsonl(subset["tmp"] / f"{name}.jsonl", rows)
    data = read_labeled_set(path, subset["taxonomy"])
    import_examples(store, encoder, data, snippet_chars=settings.snippet_chars)


def test_a_fine_tuned_encoder_is_promoted_with_its_head_and_a_worse_one_is_refused(clinc, encoder, monkeypatch,  # noqa: F811
                                                                                   tmp_path):
    settings = load_settings(home=tmp_path / "home", labels_path=clinc["labels_json"])
    store = SQLiteStore(settings.resolved_db_path)
    _import(settings, store, encoder, clinc, clinc["train"][:480], "first")
    options = {"stages": frozenset({"head", "retrieval"}), "retrieval_budget": Budget(steps=4, examples=128, minutes=5),
               "min_retrieval": 20}
    first = run_training(build_training_context(settings, store, **options))
    tuned = first.candidate_encoder
    assert first.promoted, first.decision
    assert tuned and tuned.startswith("labelrouter-minilm@") and tuned != encoder.version
    assert first.stage_reports["bi_encoder"]["steps"] == 4 and first.stage_reports["reembed"]["examples"] == 480
    registry = registry_at(settings.resolved_models_dir)
    assert registry.current_encoder() == tuned
    assert len(store.examples(tuned)) == 480 and store.examples(encoder.version) == []
    assert len(store.example_vectors(encoder.version)) == 480  # kept for a rollback
    serving = serving_encoder(settings, registry)
    assert serving.version == tuned
    labeler = Labeler(build_context(settings), settings)
    result = labeler.label_many([row_message(r) for r in clinc["held_out"][:20]])
    assert {r["routing"].encoder_version for r in result} == {tuned}

    # A run whose bi-encoder came out broken: the bundle is refused and the first one keeps serving.
    def broken(base, rows, distances, out_dir, **kwargs):
        import torch
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(base), device="cpu", local_files_only=True)
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.add_(torch.randn_like(parameter) * 0.5)
        model.save(str(out_dir), safe_serialization=True)
        return StageReport("bi_encoder", steps=1, examples=len(rows))

    monkeypatch.setattr(retrieval_stage, "fine_tune", broken)
    _import(settings, store, serving, clinc, clinc["train"][480:], "second")
    second = run_training(build_training_context(settings, store, **options))
    assert second.candidate_encoder and second.candidate_encoder != tuned
    assert not second.promoted, second.decision
    assert second.metrics["candidate"]["top1"] < second.metrics["current"]["top1"]
    assert registry.current_encoder() == tuned and serving_encoder(settings, registry).version == tuned
    assert not registry.encoders.has(second.candidate_encoder)  # nothing of it is left
    assert store.example_vectors(second.candidate_encoder) == {}
    assert len(store.examples(tuned)) == len(clinc["train"])
    print(json.dumps({"first": first.stage_reports, "second_decision": second.decision}))


def test_a_head_only_run_never_touches_the_encoder(clinc, encoder, tmp_path):  # noqa: F811
    settings = load_settings(home=tmp_path / "home", labels_path=clinc["labels_json"])
    store = SQLiteStore(settings.resolved_db_path)
    _import(settings, store, encoder, clinc, clinc["train"], "all")
    state = run_training(build_training_context(settings, store))
    assert state.promoted and state.candidate_encoder is None and "bi_encoder" not in state.stage_reports
    assert registry_at(settings.resolved_models_dir).current_encoder() == encoder.version
    assert store.example_vectors(encoder.version) == {} and len(store.examples(encoder.version)) == 600
