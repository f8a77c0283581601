"""RFC 822 / .eml / mbox → `EmailMessage`: multipart MIME, any charset, HTML-only bodies, size caps.

Mail is hostile input. Before the email package sees a message, its header section is capped (field
count and field length: Python's structured-header parser is quadratic on a `To:` of commas); the MIME
tree is walked iteratively to a depth cap; a declared charset is only trusted when it is a text codec that
decodes the bytes cleanly; every repair is a `parse_warnings` entry. Anything else the email package
raises becomes a `MessageParseError`, so one message never takes a run down with it.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import email
import email.utils
import hashlib
import mailbox
import re
import tempfile
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from email import policy
from email.message import Message
from pathlib import Path

from charset_normalizer import from_bytes

from labelrouter.errors import MessageParseError
from labelrouter.mail.clean import clean_body, drop_invisible_chars
from labelrouter.state.message import EmailMessage

_KNOWN_HEADERS = {"from", "to", "subject", "date", "message-id", "content-type", "mime-version", "received", "cc"}
# WHATWG Encoding: these labels mean windows-1252, which is what senders who declare them actually write.
_WHATWG_1252 = {"iso8859-1", "ascii", "latin-1"}
# Codecs Python treats as text encodings that no mail body is written in: they decode to something else
# (host names, escape sequences) or raise, so a message declaring one is read as if it declared nothing.
_NOT_BODY_CODECS = {"idna", "punycode", "raw-unicode-escape", "unicode-escape", "undefined"}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class ParseLimits:
    """Caps applied before and during parsing; each turns slow or huge input into a truncation or an error."""

    max_bytes: int = 30_000_000
    max_header_fields: int = 500
    max_header_chars: int = 8_000  # per field, after unfolding
    max_mime_depth: int = 32
    max_mime_parts: int = 500
    max_multipart_headers: int = 200  # multipart containers declared anywhere; more is a MIME bomb
    max_html_chars: int = 2_000_000
    max_body_chars: int = 20_000
    snippet_chars: int = 1_500


def _text_codec(charset: str) -> tuple[str | None, bool | None]:
    """(Python codec, remapped) for a declared MIME charset. The codec is None when the name is unknown
    (remapped None too) or not a text encoding (`rot13`, `base64`, `zlib` are codecs Python knows but
    `bytes.decode` refuses); remapped is True where WHATWG's rule replaced it (iso-8859-1 and us-ascii
    mean windows-1252)."""
    try:
        info = codecs.lookup(charset.strip().strip('"'))
    except (LookupError, ValueError):
        return None, None
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_BODY_CODECS:
        return None, False
    if info.name in _WHATWG_1252:
        return "cp1252", True
    return info.name, False


def _suspicious(text: str) -> bool:
    """Signs the bytes were decoded with the wrong charset: replacement or control characters."""
    return "\ufffd" in text or _CONTROL.search(text) is not None


def _detect(payload: bytes) -> tuple[str, str]:
    try:
        return payload.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    best = from_bytes(payload).best()
    if best is not None:
        return str(best), best.encoding
    return payload.decode("cp1252", errors="replace"), "windows-1252 (with replacements)"


def decode_bytes(payload: bytes, charset: str | None) -> tuple[str, str | None]:
    """Decode with the declared charset when it is trustworthy; otherwise detect. Returns (text, warning)."""
    if charset:
        codec, remapped = _text_codec(charset)
        if codec is None:
            text, found = _detect(payload)
            what = "unknown charset" if remapped is None else "charset that is not a text encoding"
            return text, f"{what} {charset!r}, detected {found} instead"
        try:
            text = payload.decode(codec)
        except Exception as exc:  # noqa: BLE001 - codecs raise UnicodeError, LookupError, ValueError...
            text, found = _detect(payload)
            return text, f"declared charset {charset!r} does not decode this text ({type(exc).__name__}), detected {found}"
        if payload.isascii():
            return text, None
        if codec != "utf-8":
            # Non-ASCII bytes that form valid UTF-8 are almost never meant as a single-byte charset.
            try:
                utf8 = payload.decode("utf-8")
            except UnicodeDecodeError:
                utf8 = None
            if utf8 is not None and not _suspicious(utf8):
                return utf8, f"declared charset {charset!r} but the text is UTF-8; read as UTF-8"
        if _suspicious(text):
            detected, found = _detect(payload)
            if not _suspicious(detected):
                return detected, f"declared charset {charset!r} gives control characters, detected {found}"
            return text, f"declared charset {charset!r} gives control characters; kept"
        if remapped and re.search(rb"[\x80-\x9f]", payload):
            return text, f"{charset!r} read as windows-1252 (WHATWG rule)"
        return text, None
    if payload.isascii():
        return payload.decode("ascii"), None
    text, found = _detect(payload)
    return text, None if found == "utf-8" else f"undeclared charset, detected {found}"


# -- header section -------------------------------------------------------------------------------------
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_MULTIPART_HEADER = re.compile(rb"(?im)^content-type:[ \t]*multipart/")


def cap_headers(raw: bytes, limits: ParseLimits, warnings: list[str]) -> bytes:
    """Cap the top-level header section (field count, field length) before any header is parsed."""
    end = _HEADER_END.search(raw)
    head, rest = (raw[: end.start()], raw[end.start():]) if end else (raw, b"")
    if len(head) <= limits.max_header_chars and head.count(b"\n") < limits.max_header_fields:
        return raw  # the common case: nothing to cap, no copy
    fields: list[bytes] = []
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b"\n" + line
        else:
            fields.append(line)
    if len(fields) > limits.max_header_fields:
        warnings.append(f"{len(fields):,} header fields, kept the first {limits.max_header_fields:,}")
        fields = fields[: limits.max_header_fields]
    capped = []
    for field in fields:
        if len(field) > limits.max_header_chars:
            name = field.split(b":", 1)[0][:40].decode("ascii", "replace")
            warnings.append(f"{name} header of {len(field):,} bytes cut to {limits.max_header_chars:,}")
            field = field[: limits.max_header_chars].rstrip(b"\r")
        capped.append(field)
    return b"\n".join(capped) + rest


def _raw_header(msg: Message, name: str) -> str | None:
    return next((str(v) for k, v in msg.raw_items() if k.lower() == name), None)


def _header(msg: Message, name: str, warnings: list[str]) -> str:
    try:
        value = msg.get(name)
        text = " ".join(str(value).split()) if value is not None else ""
    except Exception as exc:  # malformed encoded words raise deep inside the email package
        warnings.append(f"unreadable {name} header: {type(exc).__name__}")
        text = "\ufffd"
    if "\ufffd" in text:
        # Raw 8-bit bytes in a header (no RFC 2047 encoding): decode them like the body's charset.
        raw = _raw_header(msg, name)
        try:
            raw_bytes = raw.encode("ascii", "surrogateescape") if raw is not None else None
        except UnicodeEncodeError:  # already-decoded text: nothing better to recover
            raw_bytes = None
        if raw_bytes is not None:
            decoded, _ = decode_bytes(raw_bytes, msg.get_content_charset())
            text = " ".join(decoded.split())
            warnings.append(f"8-bit {name} header")
    return text


def _recipients(msg: Message) -> list[str]:
    """Addresses of To and Cc, read with the linear compat32 parser (the structured one is quadratic)."""
    values = [v for k, v in msg.raw_items() if k.lower() in ("to", "cc")]
    text = [str(v).encode("ascii", "surrogateescape").decode("utf-8", "replace") if isinstance(v, str) else str(v)
            for v in values]
    return [addr for _, addr in email.utils.getaddresses(text) if addr]


# -- MIME tree ------------------------------------------------------------------------------------------
def walk(msg: Message, limits: ParseLimits, warnings: list[str]) -> Iterator[Message]:
    """Leaf parts in document order, iteratively, to `max_mime_depth` and `max_mime_parts`."""
    stack: list[tuple[Message, int]] = [(msg, 0)]
    seen = 0
    while stack:
        part, depth = stack.pop()
        seen += 1
        if seen > limits.max_mime_parts:
            warnings.append(f"more than {limits.max_mime_parts} MIME parts; the rest ignored")
            return
        payload = part.get_payload()
        if part.is_multipart() and isinstance(payload, list):
            if depth >= limits.max_mime_depth:
                warnings.append(f"MIME nested deeper than {limits.max_mime_depth}; deeper parts ignored")
                continue
            stack.extend((child, depth + 1) for child in reversed(payload))
        else:
            yield part


def _text_parts(msg: Message, limits: ParseLimits, warnings: list[str]) -> tuple[str, str]:
    """The first text/plain and first text/html bodies that are not attachments."""
    plain = html = ""
    for part in walk(msg, limits, warnings):
        ctype = part.get_content_type()
        if part.get_content_maintype() == "multipart":
            # A multipart whose boundary never appears: its "parts" are one block of text; read it.
            warnings.append(f"{ctype} without a usable boundary; body read as plain text")
            ctype = "text/plain"
        if ctype not in ("text/plain", "text/html"):
            continue
        if part.get_content_disposition() == "attachment":
            continue
        try:
            payload = part.get_payload(decode=True)
        except Exception as exc:  # noqa: BLE001
            warnings.append(f"undecodable {ctype} part: {type(exc).__name__}")
            continue
        if not isinstance(payload, bytes):
            continue
        if part.get("content-transfer-encoding", "").strip().lower() == "base64" and any(
                "Base64" in type(d).__name__ for d in part.defects):
            payload = _lenient_base64(part, payload, warnings)
        text, warning = decode_bytes(payload, part.get_content_charset())
        if warning:
            warnings.append(warning)
        if ctype == "text/plain" and not plain:
            plain = text
        elif ctype == "text/html" and not html:
            html = text
    return plain, html


def _lenient_base64(part: Message, payload: bytes, warnings: list[str]) -> bytes:
    """Damaged base64 (stray characters, bad length): decode what is decodable instead of the raw text."""
    raw = part.get_payload(decode=False)
    if not isinstance(raw, str):
        return payload
    cleaned = re.sub(r"[^A-Za-z0-9+/]", "", raw)
    cleaned = cleaned[: len(cleaned) - len(cleaned) % 4]
    try:
        repaired = base64.b64decode(cleaned)
    except (binascii.Error, ValueError):
        return payload
    warnings.append("damaged base64 body: decoded what could be decoded")
    return repaired


def _defects(msg: Message, limits: ParseLimits) -> list[str]:
    """Defects the email package recorded, read after payloads are decoded (decoding adds some)."""
    found = []
    for part in walk(msg, limits, []):
        for defect in part.defects:
            found.append(type(defect).__name__)
    for defect in msg.defects:
        found.append(type(defect).__name__)
    return found


def parse_message(
    raw: bytes,
    *,
    message_id: str | None = None,
    label_ids: list[str] | None = None,
    limits: ParseLimits | None = None,
) -> EmailMessage:
    """Parse one raw message. Raises MessageParseError when there is nothing usable that is an email."""
    limits = limits or ParseLimits()
    if not raw or not raw.strip():
        raise MessageParseError("empty message: no headers and no body")
    if len(raw) > limits.max_bytes:
        raise MessageParseError(f"message is {len(raw):,} bytes, over the {limits.max_bytes:,}-byte cap")
    try:
        return _parse(raw, message_id, label_ids, limits)
    except MessageParseError:
        raise
    except RecursionError:
        raise MessageParseError("MIME structure nested too deeply to parse") from None
    except Exception as exc:  # noqa: BLE001 - the email package has many ways to fail on hostile input
        raise MessageParseError(f"unparseable message ({type(exc).__name__}: {str(exc)[:120]})") from None


def _parse(raw: bytes, message_id: str | None, label_ids: list[str] | None, limits: ParseLimits) -> EmailMessage:
    warnings: list[str] = []
    raw_for_parser = cap_headers(raw, limits, warnings)
    containers = len(_MULTIPART_HEADER.findall(raw))
    if containers > limits.max_multipart_headers:
        raise MessageParseError(f"{containers:,} nested or repeated multipart containers "
                                f"(cap {limits.max_multipart_headers}): refused as a MIME bomb")
    msg = email.message_from_bytes(raw_for_parser, policy=policy.default)
    if not {key.lower() for key in msg} & _KNOWN_HEADERS:
        raise MessageParseError("not an RFC 822 message: no From/To/Subject/Date/Content-Type header found")

    plain, html = _text_parts(msg, limits, warnings)
    if plain.strip():
        body = clean_body(plain, warnings=warnings)
    elif html.strip():
        if len(html) > limits.max_html_chars:
            warnings.append(f"HTML body of {len(html):,} characters cut to {limits.max_html_chars:,}")
            html = html[: limits.max_html_chars]
        body = clean_body(html, is_html=True, warnings=warnings)
    else:
        body = ""
        if msg.is_multipart() or msg.get_content_maintype() == "text":
            warnings.append("no readable text part")
    warnings = _defects(msg, limits) + warnings

    truncated = len(body) > limits.max_body_chars
    if truncated:
        body = body[: limits.max_body_chars]

    date = None
    date_header = _header(msg, "date", warnings)
    if date_header:
        try:
            date = email.utils.parsedate_to_datetime(date_header)
        except (TypeError, ValueError, IndexError, OverflowError):
            warnings.append(f"unparseable Date header {date_header[:40]!r}")

    rfc822_id = _printable(_header(msg, "message-id", warnings))[:998] or None
    stable_id = message_id or rfc822_id or "sha256:" + hashlib.sha256(raw).hexdigest()[:24]
    return EmailMessage(
        id=stable_id,
        thread_id=_printable(_header(msg, "thread-index", warnings))[:998] or None,
        rfc822_id=rfc822_id,
        subject=_printable(_header(msg, "subject", warnings)),
        sender=_printable(_header(msg, "from", warnings)),
        recipients=_recipients(msg),
        date=date,
        body=body,
        snippet=body[: limits.snippet_chars],
        label_ids=list(label_ids or []),
        truncated=truncated,
        parse_warnings=list(dict.fromkeys(warnings)),
    )


def _printable(text: str) -> str:
    """Header text without invisible characters (as bodies, clean.drop_invisible_chars) or control
    characters (a header is one line)."""
    return "".join(c for c in drop_invisible_chars(text) if unicodedata.category(c) != "Cc").strip()


def is_mbox(raw: bytes) -> bool:
    return raw.startswith(b"From ") and b"\n" in raw


def iter_mbox(path: Path) -> Iterator[bytes]:
    box = mailbox.mbox(str(path), create=False)
    try:
        for key in box.iterkeys():
            # mboxrd quoting: a body line ">From " (or ">>From ") was escaped on write; undo one level.
            yield re.sub(rb"(?m)^>(>*From )", rb"\1", box.get_bytes(key))
    finally:
        box.close()


def split_messages(raw: bytes) -> list[bytes]:
    """One .eml → [raw]; an mbox (a file or stdin) → each message's raw bytes."""
    if not is_mbox(raw):
        return [raw]
    with tempfile.TemporaryDirectory() as tmp:  # the stdlib mbox reader wants a path
        path = Path(tmp) / "in.mbox"
        path.write_bytes(raw)
        return list(iter_mbox(path))
