"""The table a reliability script ends with: one row per check, whether it held as claimed; exit 1 if any did not."""

from __future__ import annotations

import datetime
import sys


def report(run: str, seconds: float, rows: list[tuple[str, str, bool]]) -> None:
    print(f"\n{datetime.date.today()}, {run}, {seconds:.0f} s\n")
    print("| check | result | as claimed |")
    print("|---|---|---|")
    for check, result, ok in rows:
        print(f"| {check} | {result} | {'yes' if ok else '**no**'} |")
    if not all(ok for *_, ok in rows):
        sys.exit(1)
