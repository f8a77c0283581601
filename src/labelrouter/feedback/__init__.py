"""Learning from what the user does to our labels: label syncs read the mailbox back, mining turns what
changed into training examples (docs/feedback.md)."""

from labelrouter.feedback.loop import sync_and_mine
from labelrouter.feedback.mining import MiningPolicy, MiningReport, mine
from labelrouter.feedback.sync import SyncReport, sync

__all__ = ["MiningPolicy", "MiningReport", "SyncReport", "mine", "sync", "sync_and_mine"]
