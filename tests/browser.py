"""Find (or install from Debian's packages) the Chromium the page tests render in; skip loudly when impossible."""

from __future__ import annotations

import os
import shutil
import subprocess


def chromium() -> tuple[str | None, str]:
    """(path to a Chromium, '') or (None, why not). Installs Debian's `chromium` when root and apt-get can."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found, ""
    if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        install = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        done = subprocess.run(install, capture_output=True, text=True, env=env)
        if done.returncode != 0:  # a fresh machine may have no package lists yet
            subprocess.run(["apt-get", "update"], capture_output=True, text=True, env=env)
            done = subprocess.run(install, capture_output=True, text=True, env=env)
        found = shutil.which("chromium")
        if found:
            return found, ""
        return None, f"apt-get install chromium failed: {done.stderr.strip()[-300:]}"
    return None, "no Chromium on PATH and no apt-get (as root) to install Debian's"
