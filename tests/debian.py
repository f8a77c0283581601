"""Installing a Debian package a test needs (a browser, a mail server), as root with apt-get."""

from __future__ import annotations

import os
import shutil
import subprocess


def apt_install(package: str) -> str:
    """'' once `package` is installed, else why not. Refreshes the package lists when a fresh machine has none."""
    if not (shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0):
        return f"no apt-get (as root) to install Debian's {package}"
    install = ["apt-get", "install", "-y", "--no-install-recommends", package]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    done = subprocess.run(install, capture_output=True, text=True, env=env)
    if done.returncode != 0:  # a fresh machine may have no package lists yet
        subprocess.run(["apt-get", "update"], capture_output=True, text=True, env=env)
        done = subprocess.run(install, capture_output=True, text=True, env=env)
    return "" if done.returncode == 0 else f"apt-get install {package} failed: {done.stderr.strip()[-300:]}"
