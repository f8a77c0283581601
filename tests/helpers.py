"""Helpers shared by tests."""

from __future__ import annotations


def eml(subject: str, body: str, *, sender: str = "Ann <ann@example.com>", extra_headers: str = "",
        content_type: str = "text/plain; charset=utf-8") -> bytes:
    return (
        f"From: {sender}\r\nTo: you@example.org\r\nSubject: {subject}\r\nDate: Mon, 3 Jun 2024 10:00:00 +0000\r\n"
        f"Message-ID: <{abs(hash((subject, body)))}@example.com>\r\n{extra_headers}"
        f"MIME-Version: 1.0\r\nContent-Type: {content_type}\r\n\r\n{body}\r\n"
    ).encode()
