"""Reliability claim 4 (issue 16): a folder of good files mixed with every bad kind is ingested — every good file
indexed, each bad one failed with its typed reason, memory and time bounded, exit code 1 — and the loaders and the
example/evaluation readers survive a fuzz run without one unhandled exception.

    .venv/bin/python benchmarks/reliability/bad_inputs.py [--good 200] [--fuzz 5000] [--seed 16]

The ingest is the real CLI (`assistant ingest FOLDER --json`) with the bundled embedder, in a child process whose
peak RSS is read back (getrusage). The fuzz run is tests/test_fuzz_inputs.py with FUZZ_EXAMPLES inputs per target.
Prints Markdown tables for docs/RELIABILITY.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.reliability.kill_ingest import text, write_corpus  # noqa: E402
from tests import docmaker  # noqa: E402

ASSISTANT = str(Path(sys.executable).with_name("assistant"))
GUARD_S = 1800
RSS_LIMIT_MB = 2048


def bad_files(folder: Path, rng: random.Random) -> dict[str, str | None]:
    """Writes each bad kind; returns file name → the failure reason expected (None: it should be indexed)."""
    expected: dict[str, str | None] = {}

    def put(name: str, reason: str | None, data: bytes | None = None) -> Path:
        path = folder / name
        if data is not None:
            path.write_bytes(data)
        expected[name] = reason
        return path

    docmaker.encrypted_pdf(put("encrypted.pdf", "encrypted"), text(rng))
    good_pdf = docmaker.pdf(folder / "whole.tmp", [text(rng)] * 3).read_bytes()
    (folder / "whole.tmp").unlink()
    put("truncated.pdf", "corrupt", good_pdf[: len(good_pdf) // 2])
    put("zero-bytes.md", "empty", b"")
    put("binary-as.txt", "decode_error", rng.randbytes(4096) + b"\0")
    put("cp1252.txt", None, f"Caf\u00e9 \u2013 {text(rng)} \u20ac5".encode("cp1252"))
    put("utf16.txt", None, f"UTF-16 with a BOM: {text(rng)}".encode("utf-16"))
    docmaker.docx_bomb(put("zip-bomb.docx", "too_large"), unpacked_mib=1024)
    with put("sparse-2gb.txt", "too_large").open("wb") as sparse:
        sparse.truncate(2 * 2**30)  # 2 GiB of holes: no disk used
    put("nested.json", "corrupt", b"[" * 200_000 + b"]" * 200_000)
    put("huge-cell.csv", "corrupt", b"question,answer\nwhat," + b"x" * 10 * 2**20 + b"\n")
    blank = docmaker.pdf(put("5000-blank-pages.pdf", "empty"), [""] * 5000)
    assert blank.stat().st_size > 0
    put("archive.zip.txt", "unsupported", b"PK\x03\x04" + rng.randbytes(512))
    put("program.xyz", "unsupported", b"#!/bin/sh\necho hi\n")
    (folder / "loop-a.md").symlink_to(folder / "loop-b.md")
    (folder / "loop-b.md").symlink_to(folder / "loop-a.md")
    expected["loop-a.md"] = expected["loop-b.md"] = "unreadable"
    (folder / "dangling.md").symlink_to(folder / "nowhere.md")
    expected["dangling.md"] = "unreadable"
    os.mkfifo(folder / "pipe.txt")
    expected["pipe.txt"] = "not_a_file"
    locked = put("no-permission.md", "unreadable", f"# Locked\n{text(rng)}".encode())
    locked.chmod(0)
    if os.geteuid() == 0:  # root reads every file whatever its mode: then it is simply indexed
        expected[locked.name] = None
    return expected


def ingest(folder: Path, home: Path) -> tuple[int, dict, float, float]:
    """Exit code, the --json report, wall seconds and the child's peak RSS in MiB."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    env["ASSISTANT_HOME"] = str(home)
    started = time.perf_counter()
    done = subprocess.run([ASSISTANT, "ingest", str(folder), "--json"], env=env, capture_output=True, text=True,
                          timeout=GUARD_S)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise SystemExit(f"ingest printed no report (exit {done.returncode}): {done.stderr[-2000:]}") from None
    return done.returncode, report, seconds, peak_mb


def fuzz(examples: int) -> dict[str, tuple[int, str]]:
    """Target → (inputs tried, 'none' or the first unhandled exception)."""
    os.environ["FUZZ_EXAMPLES"] = str(examples)
    from tests import test_fuzz_inputs as targets

    results = {}
    for name, key, test in (
            ("loaders (`load_file`, every suffix)", "loaders",
             targets.test_a_loader_returns_sections_or_a_typed_failure),
            ("example and evaluation readers", "readers",
             targets.test_the_example_and_evaluation_readers_return_rows_or_a_clear_error)):
        before = targets.inputs[key]
        try:
            test()
            outcome = "none"
        except Exception as exc:  # noqa: BLE001  (the finding: hypothesis re-raises the shrunk failure)
            outcome = f"{type(exc).__name__}: {str(exc)[:120]}"
        results[name] = (targets.inputs[key] - before, outcome)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--good", type=int, default=200)
    parser.add_argument("--fuzz", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="bad-inputs-") as scratch:
        folder, home = Path(scratch) / "kb", Path(scratch) / "home"
        folder.mkdir()
        good = write_corpus(folder, args.good, rng, prefix="good", digits=3)
        expected = dict.fromkeys(good) | bad_files(folder, rng)
        code, report, seconds, peak_mb = ingest(folder, home)
    got = {f["doc_id"]: (f["reason"] if f["status"] == "failed" else None) for f in report["files"]}
    good = [name for name, reason in expected.items() if reason is None]
    wrong = {name: (want, got.get(name, "not reported")) for name, want in expected.items()
             if got.get(name, "not reported") != want}
    fuzzed = fuzz(args.fuzz)

    print(f"\n{datetime.date.today()}, bad_inputs.py --good {args.good} --fuzz {args.fuzz} --seed {args.seed}\n")
    print("| check | result |")
    print("|---|---|")
    print(f"| good files indexed (incl. cp1252, UTF-16{', a chmod-000 file read as root' if os.geteuid() == 0 else ''})"
          f" | {sum(got.get(n, 'x') is None for n in good)} of {len(good)} |")
    bad = {name: reason for name, reason in expected.items() if reason is not None}
    print(f"| bad files failed with the expected typed reason | {sum(got.get(n) == r for n, r in bad.items())} of "
          f"{len(bad)} |")
    for name, reason in bad.items():
        note = "" if got.get(name) == reason else f" (expected {reason})"
        print(f"| · `{name}` | {got.get(name, 'not reported')}{note} |")
    print(f"| exit code | {code} (expected 1: some files failed) |")
    print(f"| peak RSS of the ingest | {peak_mb:.0f} MiB (limit {RSS_LIMIT_MB}) |")
    print(f"| wall time | {seconds:.0f} s |")
    print("\n| fuzz target | inputs | unhandled exceptions |")
    print("|---|---|---|")
    for name, (count, outcome) in fuzzed.items():
        print(f"| {name} | {count} | {outcome} |")
    if wrong or code != 1 or peak_mb > RSS_LIMIT_MB or any(o != "none" for _, o in fuzzed.values()):
        for name, (want, have) in wrong.items():
            print(f"wrong: {name}: expected {want}, got {have}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
