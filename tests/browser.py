"""Find (or install from Debian's packages) the Chromium the page tests render in; skip loudly when impossible."""

from __future__ import annotations

import shutil

from tests.debian import apt_install


def chromium() -> tuple[str | None, str]:
    """(path to a Chromium, '') or (None, why not). Installs Debian's `chromium` when root and apt-get can."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found, ""
    problem = apt_install("chromium")
    found = shutil.which("chromium")
    if found:
        return found, ""
    return None, f"no Chromium on PATH: {problem}"
