"""labelrouter: one label per email, from a content router × a head learned from your corrections."""

from labelrouter.errors import (
    ConfigError,
    LabelRouterError,
    MailboxError,
    MessageParseError,
    ModelArtifactError,
    StoreError,
)
from labelrouter.graph import LabelerContext, build_context, build_inference_graph
from labelrouter.graph.labeler import Labeler
from labelrouter.labels import Label, LabelSet, load_label_set
from labelrouter.mail import LocalMaildir, parse_message
from labelrouter.settings import Settings, load_settings
from labelrouter.state import EmailMessage, LabelingState, Routing

__version__ = "0.1.0"

__all__ = [
    "ConfigError", "EmailMessage", "Label", "LabelRouterError", "LabelSet", "Labeler", "LabelerContext",
    "LabelingState", "LocalMaildir", "MailboxError", "MessageParseError", "ModelArtifactError", "Routing",
    "Settings", "StoreError", "build_context", "build_inference_graph", "load_label_set", "load_settings",
    "parse_message",
]
