"""Hostile and malformed messages, one per class the labeler must survive (written for these tests).

Each entry: name → (raw bytes, outcome) where outcome is "failed" (recorded as that message's failure)
or "labeled" (a usable result, possibly with parse warnings).
"""

from __future__ import annotations

import base64


def _msg(headers: str, body: bytes | str, *, content_type: str = "text/plain; charset=utf-8") -> bytes:
    body_bytes = body.encode() if isinstance(body, str) else body
    return (f"From: Sender <sender@example.com>\r\nTo: you@example.org\r\nDate: Mon, 3 Jun 2024 10:00:00 +0000\r\n"
            f"{headers}MIME-Version: 1.0\r\nContent-Type: {content_type}\r\n\r\n").encode() + body_bytes


def non_text_charset(codec: str) -> bytes:
    return _msg("Subject: Your parcel is on its way\r\n", "Your order has shipped, tracking number 1Z999.",
                content_type=f"text/plain; charset={codec}")


def deep_mime(depth: int = 1000) -> bytes:
    head = "".join(f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n' for i in range(depth))
    tail = "".join(f"--b{i}--\r\n" for i in reversed(range(depth)))
    return ("From: a@example.com\r\nSubject: deep\r\nMIME-Version: 1.0\r\n" + head
            + "Content-Type: text/plain\r\n\r\nhello from the bottom\r\n" + tail).encode()


def comma_bomb(commas: int = 200_000) -> bytes:
    return (f"From: a@example.com\r\nTo: {',' * commas}\r\nSubject: Team lunch on Friday\r\n"
            "Content-Type: text/plain\r\n\r\nLunch with the team on Friday at noon, who is in?").encode()


def header_flood(fields: int = 100_000) -> bytes:
    flood = "".join(f"X-Filler-{i}: x\r\n" for i in range(fields))
    return _msg(f"Subject: Weekly digest\r\n{flood}", "This week's newsletter digest: five stories.")


def hidden_text_alert() -> bytes:
    """A security alert whose invisible HTML is stuffed with newsletter words."""
    stuffing = "weekly newsletter digest subscribe unsubscribe magazine blog mailing list " * 30
    html = (f'<html><body><div style="display:none">{stuffing}</div>'
            f'<span style="font-size:0px">{stuffing}</span><p style="color:#ffffff">{stuffing}</p>'
            "<p>New sign-in to your account from an unrecognised device in Lisbon. If this was not you, reset "
            "your password now and review your two-factor authentication settings.</p></body></html>")
    return _msg("Subject: Security alert\r\n", html, content_type="text/html; charset=utf-8")


def alert_below_reply_marker() -> bytes:
    body = ("Hello,\r\nOn Monday at 09:14, our monitoring system wrote:\r\n"
            "A new sign-in to your account was detected from an unknown device. If this was not you, change "
            "your password immediately and turn on two-factor authentication.\r\n")
    return _msg("Subject: Account notice\r\n", body)


def bad_base64() -> bytes:
    payload = base64.b64encode(b"Your invoice for April is attached, amount due 84 EUR.").decode()
    return _msg("Subject: Invoice\r\nContent-Transfer-Encoding: base64\r\n", payload[:-3] + "!!*@")


def no_boundary() -> bytes:
    return _msg("Subject: Boarding pass\r\n", "Your boarding pass for flight TP123 to Lisbon is ready. Check in now.",
                content_type="multipart/mixed")


def lying_charset() -> bytes:
    """Declares latin-1, is UTF-8."""
    return _msg("Subject: Grüße\r\n", "Grüße aus München: die Rechnung für April ist da.".encode(),
                content_type="text/plain; charset=iso-8859-1")


def zero_width_words() -> bytes:
    return _msg("Subject: Hi\r\n", "Your pass\u200bword re\u200dset co\ufeffde is 481 516.")


def hostile_messages() -> dict[str, tuple[bytes, str]]:
    return {
        "charset-rot13": (non_text_charset("rot13"), "labeled"),
        "charset-base64": (non_text_charset("base64"), "labeled"),
        "charset-idna": (non_text_charset("idna"), "labeled"),
        "mime-1000-deep": (deep_mime(), "failed"),
        "to-200k-commas": (comma_bomb(), "labeled"),
        "100k-header-fields": (header_flood(), "labeled"),
        "hidden-html-text": (hidden_text_alert(), "labeled"),
        "alert-below-reply-marker": (alert_below_reply_marker(), "labeled"),
        "bad-base64": (bad_base64(), "labeled"),
        "multipart-no-boundary": (no_boundary(), "labeled"),
        "lying-charset": (lying_charset(), "labeled"),
        "zero-width-chars": (zero_width_words(), "labeled"),
        "binary-junk": (b"\x00\x01\x02\xff\xfe binary junk", "failed"),
        "only-whitespace": (b" \r\n \r\n", "failed"),
    }
