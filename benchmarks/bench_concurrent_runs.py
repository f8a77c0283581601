"""Two `labelrouter run`s at once on one Maildir, with different settings: never a second label.

    python benchmarks/bench_concurrent_runs.py --trials 3 --messages 600 --out bench-out/concurrent.json

Run A: the shipped labels and threshold, its own store. Run B: another labels file (every label renamed),
a fallback threshold of 0 (it decides differently on every message) and another store. Both start
together with `--wait` so the second waits for the mailbox lock instead of exiting; afterwards no message
may carry two of our labels, and every message must be labeled and recorded (by one of the two stores).
A third run without `--wait` during a run shows the one-line refusal.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mailbox_check import build_mailbox, check  # noqa: E402

from labelrouter.settings import PACKAGED_LABELS  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def other_labels(path: Path) -> Path:
    data = json.loads(PACKAGED_LABELS.read_text())
    for entry in data["labels"]:
        if entry["name"] != data["fallback"]:
            entry["name"] = "b-" + entry["name"]
    path.write_text(json.dumps(data, ensure_ascii=False))
    return path


def trial(work: Path, n: int) -> dict:
    mailbox = work / "Mail"
    ids = build_mailbox(mailbox, n)
    base = [sys.executable, "-m", "labelrouter", "run", "--mailbox", str(mailbox), "--json"]
    env_a = {**os.environ, "LABELROUTER_HOME": str(work / "home-a")}
    env_b = {**os.environ, "LABELROUTER_HOME": str(work / "home-b"), "LABELROUTER_FALLBACK_THRESHOLD": "0",
             "LABELROUTER_LABELS_PATH": str(other_labels(work / "labels-b.json"))}
    start = time.monotonic()
    a = subprocess.Popen([*base, "--wait", "900"], env=env_a, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    b = subprocess.Popen([*base, "--wait", "900"], env=env_b, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(15)  # both are running: the lock holder labels, the other waits
    refused = subprocess.run(base, env=env_a, capture_output=True, text=True)
    out_a, _ = a.communicate()
    out_b, _ = b.communicate()
    wall = time.monotonic() - start
    statuses = {}
    for name, out in (("a", out_a), ("b", out_b)):
        outcomes = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        statuses[name] = {s: sum(o["status"] == s for o in outcomes) for s in {o["status"] for o in outcomes}}
    result = check(mailbox, ids, [work / "home-a" / "labelrouter.sqlite3", work / "home-b" / "labelrouter.sqlite3"])
    return {"messages": n, "wall_s": round(wall, 1), "exit_codes": [a.returncode, b.returncode], "statuses": statuses,
            "third_run_without_wait": {"exit": refused.returncode, "stderr": refused.stderr.strip()[-200:]}, **result}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--messages", type=int, default=600)
    parser.add_argument("--out", type=Path, default=Path("bench-out/concurrent.json"))
    args = parser.parse_args()
    trials = []
    for t in range(args.trials):
        with tempfile.TemporaryDirectory() as tmp:
            trials.append(trial(Path(tmp), args.messages))
            print(json.dumps({"trial": t, **trials[-1]}), flush=True)
    summary = {"trials": len(trials), "messages": args.messages,
               "double_labeled": sum(t["double_labeled"] for t in trials),
               "unlabeled": sum(t["unlabeled"] for t in trials), "unrecorded": sum(t["unrecorded"] for t in trials),
               "lost": sum(t["lost"] for t in trials), "per_trial": trials}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "per_trial"}))


if __name__ == "__main__":
    main()
