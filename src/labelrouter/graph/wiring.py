"""Building the inference graph's run context from settings (labels, encoder, label vectors, head, summarizer)."""

from __future__ import annotations

from functools import lru_cache

from labelrouter.artifacts import open_artifacts
from labelrouter.labels import LabelSet, load_label_set
from labelrouter.mail.mailbox import Mailbox
from labelrouter.models.current import CurrentHead
from labelrouter.models.encoder import Encoder
from labelrouter.models.encoder_store import serving_encoder
from labelrouter.models.label_index import LabelIndex
from labelrouter.models.registry import ModelRegistry
from labelrouter.models.reranker import Rerankers
from labelrouter.models.router import Router
from labelrouter.nodes.context import LabelerContext, Mode
from labelrouter.settings import Settings
from labelrouter.store.base import Store
from labelrouter.summarize import OfflineSummarizer, Summarizer, gemini_summarizer


def build_summarizer(settings: Settings) -> Summarizer:
    if settings.use_gemini():
        assert settings.google_api_key is not None
        return gemini_summarizer(
            settings.gemini_model, settings.google_api_key.get_secret_value(), attempts=settings.llm_attempts,
            backoff_s=settings.llm_backoff_s, timeout_s=settings.llm_timeout_s,
        )
    return OfflineSummarizer()


def build_router(settings: Settings, labels: LabelSet, encoder: Encoder) -> Router:
    """Label vectors, the current head (reloaded on promotion) and its reranker, for this encoder."""
    registry = ModelRegistry(open_artifacts(settings))
    head = CurrentHead(registry, embedder=encoder.version, dim=encoder.dim)
    router = Router.from_settings(settings, labels, LabelIndex.build(labels, encoder, cache_dir=settings.resolved_cache_dir),
                                  head)
    router.reranker_for = Rerankers(registry.encoders, settings.resolved_cache_dir, device=settings.encoder_device)
    if router.rerank_spec is not None:  # the current bundle reranks: load it now, so a broken one fails here
        router.reranker_for(router.rerank_spec.version)
    return router


def mailbox_context(settings: Settings, router: Router, encoder: Encoder, summarizer: Summarizer, *,
                    mode: Mode = "decide", mailbox: Mailbox | None = None, store: Store | None = None) -> LabelerContext:
    """A run context around a router already built (the worker fleet keeps one per mailbox)."""
    # Only a real run creates missing labels; a dry run must leave the mailbox exactly as it was.
    mailbox_ids = mailbox.ensure_labels(router.labels.names, create=mode == "apply") if mailbox is not None else {}
    known = set(mailbox_ids.values()) | (mailbox.our_label_ids() if mailbox is not None else set())
    return LabelerContext(
        router=router, encoder=encoder, summarizer=summarizer, mode=mode, mailbox=mailbox,
        mailbox_ids=mailbox_ids, known_label_ids=known, store=store, settings=settings,
    )


def build_context(settings: Settings, *, mode: Mode = "decide", mailbox: Mailbox | None = None,
                  store: Store | None = None, labels: LabelSet | None = None,
                  encoder: Encoder | None = None) -> LabelerContext:
    """Everything from settings: labels, encoder (cached per process), label vectors, head, summarizer.
    `encoder` replaces the settings' one (tests pass a stub)."""
    labels = labels or load_label_set(settings.labels_path)
    encoder = encoder or serving_encoder(settings, ModelRegistry(open_artifacts(settings)))
    return mailbox_context(settings, build_router(settings, labels, encoder), encoder, build_summarizer(settings),
                           mode=mode, mailbox=mailbox, store=store)


@lru_cache(maxsize=1)
def default_context() -> LabelerContext:
    """Context from the environment's settings, for hosts that cannot pass one (e.g. `langgraph dev`)."""
    from labelrouter.settings import load_settings

    return build_context(load_settings(), mode="decide")
