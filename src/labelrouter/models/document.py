"""A message's *document*: the text the head's lexical features are read from, stored beside the embedded
text (so training never needs the mailbox), and the features `analyze` reads from it:

    from: alice@example.com
    to: bob@example.org, team@example.org

    <subject>
    <body, capped>

Features: lowercase word uni- and bi-grams of subject and body (the whole capped body, not just the part
the encoder sees), subject words once more as `subject:<word>`, the thread (the subject without reply
prefixes), and the sender's and each recipient's address and domain (`from:alice@example.com`,
`from:@example.com`, `to:…`). `models.lexicon` weights them; `models.analysis` caches them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from email.utils import getaddresses

DOCUMENT_CHARS = 5_000  # body characters a document keeps: the long tail of a long mail adds little
# Words of 2 to 30 characters: longer "words" are base64, hashes, URLs run together (noise, and vocabulary
# bloat). A longer run of word characters has no \b inside it, so it is skipped whole, as a length filter
# after the match would — in the regex engine rather than a Python loop (a fifth of analysing).
_WORD = re.compile(r"(?u)\b\w{2,30}\b")
_REPLY_PREFIX = re.compile(r"^\s*((re|fw|fwd|aw|wg|sv|tr)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE)


def _addresses(value: str | Iterable[str]) -> list[str]:
    items = [value] if isinstance(value, str) else list(value)
    found = []
    for _name, address in getaddresses([str(v) for v in items if v]):
        address = address.strip().lower()
        if "@" in address:
            found.append(address)
    return found


def message_document(sender: str, recipients: Iterable[str], subject: str, body: str,
                     body_chars: int = DOCUMENT_CHARS) -> str:
    """The document of one message (see the module docstring)."""
    lines = []
    senders = _addresses(sender)
    if senders:
        lines.append("from: " + ", ".join(senders))
    to = _addresses(recipients)
    if to:
        lines.append("to: " + ", ".join(to[:50]))  # a mailing list's thousand Cc's say no more than fifty
    head = "\n".join(lines)
    text = "\n".join(part for part in (subject.strip(), body[:body_chars].strip()) if part)
    return f"{head}\n\n{text}"


def parse_document(document: str) -> tuple[str, list[str], str, str]:
    """(sender, recipients, subject, body) back from a document: how replay rebuilds a stored message."""
    head, sep, text = document.partition("\n\n")
    if not sep:
        head, text = "", document
    fields = dict(line.partition(": ")[::2] for line in head.splitlines())
    subject, _, body = text.partition("\n")
    recipients = [a for a in fields.get("to", "").split(", ") if a]
    return fields.get("from", "").split(", ")[0], recipients, subject, body


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def analyze(document: str) -> list[str]:
    """A document's features (a term may repeat: counts are term frequencies)."""
    head, sep, text = document.partition("\n\n")
    if not sep:  # not a document: plain text (e.g. an old example stored before documents existed)
        head, text = "", document
    features = []
    for line in head.splitlines():
        field, _, value = line.partition(": ")
        if field not in ("from", "to"):
            continue
        for address in value.split(", "):
            features += [f"{field}:{address}", f"{field}:@{address.rpartition('@')[2]}"]
    subject, _, _ = text.partition("\n")
    features += ["subject:" + w for w in _words(subject)]
    thread = " ".join(_words(_REPLY_PREFIX.sub("", subject)))
    if thread:  # a reply is filed where its thread was: the whole subject, reply prefixes off, is one feature
        features.append("thread:" + thread)
    words = _words(text)
    features += words
    features += map(" ".join, zip(words, words[1:], strict=False))
    return features
