"""Messages in (parsing, cleaning) and labels out (mailbox adapters)."""

from labelrouter.mail.mailbox import INBOX, Mailbox, MailboxChange
from labelrouter.mail.maildir import LocalMaildir
from labelrouter.mail.parse import parse_message, split_messages

__all__ = ["INBOX", "LocalMaildir", "Mailbox", "MailboxChange", "parse_message", "split_messages"]
