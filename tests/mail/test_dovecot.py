"""The real IMAP server the IMAP mailbox is tested against (tests/dovecot_server.py): what the adapter will
rely on holds there — label folders with emoji and a hierarchy, MOVE with the new UID (UIDPLUS), Message-ID
kept across a move, special-use Trash and Junk, a wrong password refused."""

from __future__ import annotations

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import LoginError
from imapclient.imapclient import JUNK, TRASH

MESSAGE = b"From: Ana <ana@example.com>\r\nSubject: Q3 statement\r\nMessage-ID: <q3@example.com>\r\n\r\nHello.\r\n"


@pytest.fixture
def client(dovecot):
    with IMAPClient(dovecot.host, port=dovecot.port, ssl=False, timeout=10) as c:
        c.login(dovecot.user, dovecot.password)
        yield c


def test_a_label_folder_with_emoji_and_a_parent_is_created_listed_and_opened(client):
    name = "Finance/📈 Investments"
    client.create_folder(name)
    client.subscribe_folder(name)
    names = {folder for _flags, _sep, folder in client.list_folders()}
    assert name in names and "Finance" in names
    assert name in {folder for _flags, _sep, folder in client.list_sub_folders()}
    assert client.select_folder(name)[b"EXISTS"] == 0
    client.delete_folder(name)


def test_a_move_keeps_the_message_id_and_the_server_names_the_new_uid(client):
    client.create_folder("Receipts")
    reply = client.append("INBOX", MESSAGE)
    assert b"APPENDUID" in reply  # UIDPLUS: the adapter learns the UID it just wrote
    client.select_folder("INBOX")
    [uid] = client.search(["HEADER", "Message-ID", "<q3@example.com>"])
    assert client.has_capability("MOVE") and client.has_capability("UIDPLUS")
    client.move([uid], "Receipts")
    assert client.search(["HEADER", "Message-ID", "<q3@example.com>"]) == []
    client.select_folder("Receipts")
    [moved] = client.search(["HEADER", "Message-ID", "<q3@example.com>"])
    header = client.fetch([moved], ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])[moved]
    assert b"<q3@example.com>" in next(v for k, v in header.items() if k.startswith(b"BODY"))
    client.delete_folder("Receipts")


def test_trash_and_junk_carry_their_special_use_flags(client):
    flags = {folder: set(f) for f, _sep, folder in client.list_folders()}
    assert TRASH in flags["Trash"] and JUNK in flags["Junk"]


def test_a_wrong_password_is_refused(dovecot):
    with IMAPClient(dovecot.host, port=dovecot.port, ssl=False, timeout=10) as c, pytest.raises(LoginError):
        c.login(dovecot.user, "wrong")
