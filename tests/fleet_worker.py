"""`labelrouter worker` as the fleet tests run it: the real command with the stub encoder. With
LR_TEST_HANG_AFTER_LABEL=<message id> the worker stops dead right after that message got its label in
the Maildir, before the store recorded it (it writes LR_TEST_MARKER first), so a test can SIGKILL it
at the worst moment."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import labelrouter.models.encoder
from labelrouter.mail.maildir import LocalMaildir
from tests.stub_encoder import StubEncoder

STUB = StubEncoder()
labelrouter.models.encoder.encoder_for = lambda settings: STUB

victim = os.environ.get("LR_TEST_HANG_AFTER_LABEL")
if victim:
    real_apply_label = LocalMaildir.apply_label

    def apply_label_then_hang(self, message_id, label_id, **kwargs):
        change = real_apply_label(self, message_id, label_id, **kwargs)
        if message_id == victim and not kwargs.get("dry_run"):
            Path(os.environ["LR_TEST_MARKER"]).write_text(str(os.getpid()))
            time.sleep(3600)  # the test kills this process here
        return change

    LocalMaildir.apply_label = apply_label_then_hang

if __name__ == "__main__":
    from labelrouter.cli.app import main

    sys.argv = ["labelrouter", "worker", *sys.argv[1:]]
    main()
