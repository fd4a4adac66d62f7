"""Background jobs: an `assistant` command run as a detached process, with its state on disk under the data home.

The app starts training and comparisons here so that they outlive the Streamlit script run that started them, a
browser that disconnects, and a restart of the server. Each job is a folder `<home>/jobs/<id>/`:
- `job.json`  what was started (kind, argv, label, meta) and the supervisor's pid;
- `log.txt`   the command's stdout and stderr;
- `stop`      present once a stop was asked for (by any process: the file is the message);
- `exit_code` written by the supervisor when the command has ended.

The supervisor is this module run as `python -m assistant.jobs FOLDER ARGV…`, in its own session (no terminal's
Ctrl-C or hang-up reaches it). It runs `python -m assistant ARGV…` and records its exit code. A stop request is
carried out gracefully: a local LoRA run is given its own stop file (it checkpoints at its next step and can be
resumed), an OpenAI job is cancelled and its follower left to notice; anything else, or whatever outlasts the
grace period, gets SIGINT (the CLI's Ctrl-C), then SIGKILL. A supervisor that died without writing an exit code
(the machine restarted, someone sent SIGKILL) is told apart by its pid.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from assistant.errors import AssistantError

if TYPE_CHECKING:
    from assistant.config import Settings

RUNNING, SUCCEEDED, FAILED, STOPPED = "running", "succeeded", "failed", "stopped"
POLL_SECONDS = 0.25
SIGNAL_GRACE_SECONDS = 30.0  # after SIGINT, before SIGKILL
STOP_FILE_GRACE_SECONDS = 300.0  # a stop file is read between training steps; a model still loading takes a while
FOLLOW_GRACE_SECONDS = 30.0  # an OpenAI job's follower sees the cancel at its next poll and ends by itself
_PROGRESS = re.compile(r"(\d+)/(\d+) \[")  # tqdm's "12/30 [00:04<00:08, …]"


@dataclass
class Job:
    id: str
    kind: str
    argv: list[str]
    label: str
    started: str
    pid: int | None = None
    meta: dict = field(default_factory=dict)
    folder: Path = field(default=Path(), repr=False, compare=False)

    @property
    def log_path(self) -> Path:
        return self.folder / "log.txt"

    @property
    def exit_code(self) -> int | None:
        try:
            return int((self.folder / "exit_code").read_text().strip())
        except (OSError, ValueError):
            return None

    @property
    def stop_requested(self) -> bool:
        return (self.folder / "stop").exists()

    @property
    def running(self) -> bool:
        return self.exit_code is None and self.pid is not None and _alive(self.pid, self.id)

    @property
    def status(self) -> str:
        """running, succeeded (exit 0), stopped (a stop was asked for) or failed (any other end)."""
        code = self.exit_code
        if code is None and self.running:
            return RUNNING
        if self.stop_requested:
            return STOPPED
        return SUCCEEDED if code == 0 else FAILED

    @property
    def detail(self) -> str:
        """One line on how it ended, for the page."""
        code, status = self.exit_code, self.status
        if status == RUNNING:
            return "stopping…" if self.stop_requested else "running"
        if code is None:
            return f"{status}: the job's process ended without recording an exit code (killed, or the machine " \
                   "restarted)"
        return f"{status} (exit code {code})"

    @property
    def ended(self) -> str | None:
        try:
            stamp = (self.folder / "exit_code").stat().st_mtime
        except OSError:
            return None
        return datetime.fromtimestamp(stamp, UTC).isoformat(timespec="seconds")

    def log_tail(self, lines: int = 40) -> str:
        """The end of the log as a terminal would show it: a progress bar's redraws (\\r) keep only the last."""
        text = self._tail().replace("\r\n", "\n")
        shown = [line.rsplit("\r", 1)[-1] for line in text.split("\n")]
        return "\n".join([line for line in shown if line.strip()][-lines:])

    def progress(self) -> tuple[int, int] | None:
        """(done, total) from the last progress bar in the log (training steps, comparison answers), if any."""
        found = _PROGRESS.findall(self._tail())
        return (int(found[-1][0]), int(found[-1][1])) if found else None

    def _tail(self, size: int = 64_000) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - size))
                return log.read().decode("utf-8", errors="replace")
        except OSError:
            return ""


def start(settings: Settings, kind: str, argv: list[str], label: str = "", meta: dict | None = None) -> Job:
    """Run `assistant ARGV…` in the background and return at once. `kind` groups jobs for a page ("finetune",
    "compare"); `meta` is kept for the page (a fine-tune's {"name", "provider"} also tells `stop` how to stop it)."""
    now = datetime.now(UTC)
    job_id = f"{now:%Y%m%d-%H%M%S}-{now.microsecond // 1000:03d}-{_slug(kind)}-{secrets.token_hex(3)}"  # sortable
    folder = jobs_dir(settings) / job_id
    folder.mkdir(parents=True)
    job = Job(job_id, kind, [str(a) for a in argv], label or " ".join(map(str, argv))[:120],
              now.isoformat(timespec="seconds"), None, dict(meta or {}), folder)
    with job.log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "assistant.jobs", str(folder), *job.argv],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=_environment(settings),
            start_new_session=True, close_fds=True)
    job.pid = process.pid
    _write_json(folder / "job.json", {k: v for k, v in asdict(job).items() if k != "folder"})
    return job


def get(settings: Settings, job_id: str) -> Job:
    folder = jobs_dir(settings) / job_id
    if not re.fullmatch(r"[\w.-]+", job_id) or not (folder / "job.json").is_file():
        raise AssistantError(f"No background job {job_id!r} under {jobs_dir(settings)}.")
    return _read(folder)


def list_jobs(settings: Settings, kind: str | None = None) -> list[Job]:
    """Newest first. A folder whose job.json is missing or unreadable (a start cut short) is skipped."""
    found = []
    for path in sorted(jobs_dir(settings).glob("*/job.json"), reverse=True):
        try:
            job = _read(path.parent)
        except (OSError, ValueError, TypeError):
            continue
        if kind is None or job.kind == kind:
            found.append(job)
    return found


def stop(settings: Settings, job: Job, force: bool = False) -> None:
    """Ask a job to stop gracefully. A local fine-tune checkpoints at its next step (resume it later); an OpenAI
    fine-tune is cancelled on OpenAI; anything else gets SIGINT (Ctrl-C) from its supervisor. `force` kills the
    job's whole process group at once (no checkpoint). A job that has ended is left as it is."""
    if not job.running:
        return
    name = job.meta.get("name") if job.kind == "finetune" else None
    local = name is not None and job.meta.get("provider", "local") == "local"
    # The supervisor reads this file within a poll. It lets the command end by itself for `grace` seconds, keeping
    # a local run's own stop file in place meanwhile (a run deletes a stale one when it starts, so one asked for
    # while the model loads would otherwise be lost); then SIGINT.
    grace = STOP_FILE_GRACE_SECONDS if local else FOLLOW_GRACE_SECONDS if name is not None else 0.0
    _write_json(job.folder / "stop", {"requested": datetime.now(UTC).isoformat(timespec="seconds"),
                                      "touch": _run_stop_file(settings, name) if local else None, "grace": grace})
    if name is not None:
        _stop_fine_tune(settings, name)
    if force and job.pid is not None:
        try:
            os.killpg(job.pid, signal.SIGKILL)  # the supervisor leads its own process group
        except (ProcessLookupError, PermissionError):
            pass


def jobs_dir(settings: Settings) -> Path:
    return settings.home / "jobs"


def cli_flags(options: dict) -> list[str]:
    """{"lora_r": 8, "resume": True, "model": None} → ["--lora-r", "8", "--resume"]: None and False are left out."""
    flags: list[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif value is not None and value is not False:
            flags += [flag, str(value)]
    return flags


# -- internals --------------------------------------------------------------------------------------------------
def _run_stop_file(settings: Settings, name: str) -> str:
    from assistant.finetune.registry import Registry

    return str(Registry.from_settings(settings).run_dir(name) / "STOP")


def _stop_fine_tune(settings: Settings, name: str) -> None:
    """What `assistant finetune cancel` does: request_stop for a local run, cancel for an OpenAI job."""
    from assistant.finetune.registry import Registry

    registry = Registry.from_settings(settings)
    try:
        record = registry.get(name)
    except AssistantError:
        return  # not registered yet: the process is still starting; the supervisor takes care of it
    if record.provider == "openai":
        from assistant.finetune import openai_jobs

        try:
            openai_jobs.cancel(settings, registry, name)
        except AssistantError:
            pass  # unreachable server: the follower is interrupted all the same; `finetune cancel` can retry
    else:
        from assistant.finetune.lora import request_stop

        request_stop(registry, name)


def _environment(settings: Settings) -> dict[str, str]:
    """The job sees the settings the page saw: the inherited environment plus every explicitly set field."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    for name in settings.model_fields_set:
        value = getattr(settings, name)
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"ASSISTANT_{name.upper()}"] = str(value)
    env["ASSISTANT_HOME"] = str(Path(settings.home).resolve())
    return env


def _alive(pid: int, tag: str) -> bool:
    """Is `pid` still this job's supervisor (not a zombie, not a reused pid)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # another user's process has the pid now
    proc = Path("/proc", str(pid))
    if not proc.is_dir():  # not Linux: reap it if it is our finished child
        return not _reaped(pid)
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        if state in ("Z", "X"):
            _reaped(pid)
            return False
        cmdline = (proc / "cmdline").read_bytes()
    except FileNotFoundError:
        return False  # it ended just now
    except (OSError, IndexError):
        return True  # alive, as far as kill() can tell
    return not cmdline or tag.encode() in cmdline  # another program with a reused pid is not the job


def _reaped(pid: int) -> bool:
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:
        return False


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:24] or "job"


def _read(folder: Path) -> Job:
    data = json.loads((folder / "job.json").read_text(encoding="utf-8"))
    return Job(**{k: v for k, v in data.items() if k in Job.__dataclass_fields__ and k != "folder"}, folder=folder)


def _write_json(path: Path, data: dict) -> None:
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    temp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(temp, path)


# -- the supervisor ---------------------------------------------------------------------------------------------
def _supervise(folder: Path, argv: list[str]) -> int:
    terminated = []
    signal.signal(signal.SIGTERM, lambda *_: terminated.append(True))
    signal.signal(signal.SIGINT, lambda *_: None)  # a handler, not SIG_IGN: the command must keep its Ctrl-C
    code = 127
    try:
        child = subprocess.Popen([sys.executable, "-m", "assistant", *argv], stdin=subprocess.DEVNULL)
        code = _watch(folder, child, terminated)
    except BaseException as exc:  # noqa: BLE001  (whatever happened, the exit code gets written)
        print(f"job supervisor: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
    finally:
        temp = folder / f".exit_code.{os.getpid()}"
        temp.write_text(str(code))
        os.replace(temp, folder / "exit_code")
    return code


def _watch(folder: Path, child: subprocess.Popen, terminated: list) -> int:
    interrupted_at = stop_seen_at = None
    while True:
        try:
            return child.wait(timeout=POLL_SECONDS)
        except subprocess.TimeoutExpired:
            pass
        now = time.monotonic()
        request = _stop_request(folder) if not terminated else {}  # SIGTERM: interrupt now
        if request is None:
            continue
        stop_seen_at = stop_seen_at or now
        if interrupted_at is None and now - stop_seen_at < float(request.get("grace") or 0):
            if request.get("touch"):
                Path(request["touch"]).parent.mkdir(parents=True, exist_ok=True)
                Path(request["touch"]).touch()  # kept in place until the run reads it
            continue
        if interrupted_at is None:
            child.send_signal(signal.SIGINT)
            interrupted_at = now
        elif now - interrupted_at > SIGNAL_GRACE_SECONDS:
            child.kill()


def _stop_request(folder: Path) -> dict | None:
    try:
        return json.loads((folder / "stop").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


if __name__ == "__main__":
    sys.exit(_supervise(Path(sys.argv[1]), sys.argv[2:]))
