"""Randomized kill -9 during `labelrouter run`, then a clean re-run: nothing unlabeled, doubled, unrecorded or lost.

    python benchmarks/bench_crash.py --runs 5 --messages 300 --kills 4 --out bench-out/crash.json

Each run: a fresh Maildir of N messages we wrote and a fresh store; `labelrouter run` is started and
killed with SIGKILL at a random instant `--kills` times (each restart resumes the previous one's work),
then run once more to completion. The mailbox and store are then checked (benchmarks/mailbox_check.py).
A kill lands after the restarted process stores its first decision (so the model has loaded and it is
labeling): half of them within 0.3 s of that, inside the burst of concurrent applies where the
apply/record window is, half anywhere in the next 3 s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mailbox_check import build_mailbox, check  # noqa: E402


def _rows(store: Path, status: str | None = None) -> int:
    try:
        conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=1)
        sql = "SELECT COUNT(*) FROM processed_messages" + (" WHERE status = ?" if status else "")
        n = conn.execute(sql, (status,) if status else ()).fetchone()[0]
        conn.close()
        return int(n)
    except sqlite3.Error:
        return 0


def one_run(work: Path, n: int, kills: int, rng: random.Random) -> dict:
    mailbox, home = work / "Mail", work / "home"
    ids = build_mailbox(mailbox, n)
    env = {**os.environ, "LABELROUTER_HOME": str(home)}
    cmd = [sys.executable, "-m", "labelrouter", "run", "--mailbox", str(mailbox), "--json", "--wait", "60"]
    store = home / "labelrouter.sqlite3"
    instants = []
    for k in range(kills):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        start = time.monotonic()
        before = _rows(store)
        while _rows(store) == before and proc.poll() is None and time.monotonic() - start < 120:
            time.sleep(0.02)  # wait until this process is labeling (the model has loaded)
        delay = rng.uniform(0.0, 0.3) if k % 2 == 0 else rng.uniform(0.0, 3.0)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            # Intents the killed process left half-applied: the next process must repair each one.
            instants.append({"rows_before": before, "after_labeling_started_s": round(delay, 2),
                             "rows_at_kill": _rows(store), "applying_at_kill": _rows(store, "applying")})
        proc.wait()
    final = subprocess.run(cmd, env=env, capture_output=True, text=True)
    outcomes = [json.loads(line) for line in final.stdout.splitlines() if line.startswith("{")]
    result = check(mailbox, ids, [store])
    return {"messages": n, "kills": len(instants), "kill_instants": instants, "final_exit": final.returncode,
            "half_applied_left_by_kills": sum(i["applying_at_kill"] for i in instants),
            "repaired_by_final_run": sum(o["status"] == "repaired" for o in outcomes), **result}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--kills", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench-out/crash.json"))
    args = parser.parse_args()
    rng = random.Random(args.seed)
    runs = []
    for r in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            runs.append(one_run(Path(tmp), args.messages, args.kills, rng))
            print(json.dumps({"run": r, **{k: v for k, v in runs[-1].items() if k != "kill_instants"}}), flush=True)
    keys = ("unlabeled", "double_labeled", "unrecorded", "lost", "archive_mismatch")
    summary = {"runs": len(runs), "messages_per_run": args.messages, "kills": sum(r["kills"] for r in runs),
               "half_applied_left_by_kills": sum(r["half_applied_left_by_kills"] for r in runs),
               **{k: sum(r[k] for r in runs) for k in keys}, "per_run": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "per_run"}))


if __name__ == "__main__":
    main()
