"""Run model-written Python in a separate, limited process (book §6.5: program-aided reasoning and a ``python`` tool).

`execute_python(code)` never runs the code in this process. It starts a fresh interpreter
(``python -I -S -X utf8``: isolated mode, no site-packages, no user site, no ``PYTHON*`` variables, the script's folder
not on ``sys.path``) and returns a `SandboxResult` with what the program printed. The program gets:

=======================  ===============================================================================================
wall time                ``timeout_s``; then the whole process group is killed (SIGKILL) and ``timed_out`` is True
CPU time                 ``RLIMIT_CPU`` = ``ceil(timeout_s) + 1`` s: the kernel kills a busy loop even if we die
memory                   ``RLIMIT_AS`` = ``memory_mb`` of address space: big allocations raise ``MemoryError``
processes                ``RLIMIT_NPROC`` = 1 (no new process or thread; ``os.fork`` raises ``BlockingIOError``) and an
                         audit hook that refuses ``os.fork``/``os.system``/``subprocess``/``os.exec*``/``os.kill``/
                         ``ctypes`` before they reach the kernel. RLIMIT_NPROC does not bind root (nor a process with
                         CAP_SYS_RESOURCE or CAP_SYS_ADMIN), so when this process runs as root the program runs as the
                         user ``nobody`` (uid/gid 65534, no supplementary groups), with an interpreter that user can
                         execute (``sys.executable`` when it can, else the first ``python3`` on the system PATH: the
                         program only needs the standard library). Where no uid can be dropped to, only the audit hook
                         and the process-group kill stand between a fork loop and the machine; `limits()` says which
                         holds.
files                    ``RLIMIT_FSIZE`` = ``max_file_mb`` per written file; ``RLIMIT_NOFILE`` = 64; no core dumps
working directory        a fresh empty temporary folder, removed afterwards (with whatever the program wrote)
environment              empty but for ``PATH`` and ``LC_ALL=C.UTF-8``: no token (``HF_TOKEN``…) of ours leaks
stdin                    ``/dev/null``
output                   stdout and stderr read incrementally; past ``max_output_bytes`` the program is killed and the
                         output cut there (``truncated`` is True), so printing gigabytes costs us nothing
=======================  ===============================================================================================

What it does NOT protect against: this is a guard against model-written code that is buggy, greedy or naive, not a
security boundary against a determined attacker. The program runs under the same kernel with access to the
network and to every world-readable file (this package's sources, ``/etc``), and can be read by other processes; a
kernel exploit, a bug in CPython or a side channel escape it; the audit hook is Python-level and best effort. For
untrusted users (as opposed to an untrusted small model) run the whole evaluation in a container or a VM with no
network and no secrets (gVisor, Firecracker, nsjail, a throwaway cloud sandbox).
"""

from __future__ import annotations

import functools
import math
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass


NOBODY = 65534

# Runs in the child before the model's code: limits that the code cannot raise back, then the audit hook. The code
# arrives as argv[1] (never a file in the working directory, which must stay empty).
_BOOTSTRAP = r"""
import resource, sys
cpu, memory, fsize, nproc = (int(v) for v in sys.argv[2:6])
for limit, value in ((resource.RLIMIT_CPU, cpu), (resource.RLIMIT_AS, memory), (resource.RLIMIT_FSIZE, fsize),
                     (resource.RLIMIT_NOFILE, 64), (resource.RLIMIT_CORE, 0), (resource.RLIMIT_NPROC, nproc)):
    if value >= 0:
        resource.setrlimit(limit, (value, value))
code = sys.argv[1]
del sys.argv[1:], resource
if __BLOCK__:
    _refused = ("os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.exec", "os.system", "os.kill", "os.killpg",
                "subprocess.Popen", "pty.spawn", "ctypes.dlopen", "ctypes.dlsym", "ctypes.cdata", "os.startfile")
    def _audit(event, args, _refused=_refused):
        if event in _refused:
            raise PermissionError(f"the sandbox refuses {event}")
    sys.addaudithook(_audit)
    del _audit, _refused
exec(compile(code, "<program>", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
"""


@dataclass
class SandboxResult:
    """What `execute_python` saw.

    Attributes:
        stdout: what the program printed (UTF-8, undecodable bytes replaced), cut at ``max_output_bytes``.
        stderr: its standard error (a traceback on an exception), cut likewise.
        returncode: the exit status; negative for a signal (``-9``: killed by us or the kernel), None if unknown.
        timed_out: the wall-time limit was reached and the process group killed.
        truncated: the output went past ``max_output_bytes`` and the program was killed there.
        error: None for a clean exit, else one line: the exception (``ZeroDivisionError: division by zero``), the
            limit that stopped it, or the signal.
        duration_s: wall time from start to the end of the process.
    """

    stdout: str
    stderr: str
    returncode: int | None
    timed_out: bool
    truncated: bool
    error: str | None
    duration_s: float

    @property
    def ok(self) -> bool:
        """The program exited with status 0 within its limits."""
        return self.returncode == 0 and not self.timed_out and not self.truncated


def _dropped_ids() -> tuple[int, int] | None:
    """The uid/gid to run the program as: ``nobody`` when we are root (so RLIMIT_NPROC binds), else None (our own)."""
    return (NOBODY, NOBODY) if hasattr(os, "geteuid") and os.geteuid() == 0 else None


@functools.lru_cache(maxsize=4)
def _interpreter_for(ids: tuple[int, int] | None) -> str | None:
    """An interpreter that runs as `ids`: ``sys.executable`` if it can, else a ``python3`` on the system PATH. None
    when none can (then we keep our uid)."""
    candidates = [sys.executable] + [shutil.which(name, path=os.defpath) for name in ("python3", "python")]
    for exe in dict.fromkeys(c for c in candidates if c):
        try:
            kwargs = {"user": ids[0], "group": ids[1], "extra_groups": []} if ids else {}
            done = subprocess.run([exe, "-I", "-S", "-c", "import resource"], env={}, stdin=subprocess.DEVNULL,
                                  capture_output=True, timeout=30, **kwargs)
        except (OSError, subprocess.SubprocessError):
            continue
        if done.returncode == 0:
            return exe
    return None


def limits() -> dict:
    """How the sandbox isolates on this machine: ``{"user": uid the program runs as, "interpreter": path,
    "nproc_binds": whether RLIMIT_NPROC applies to that user}``."""
    ids = _dropped_ids()
    exe = _interpreter_for(ids) if ids else None
    if ids and exe:
        return {"user": ids[0], "interpreter": exe, "nproc_binds": True}
    uid = os.geteuid() if hasattr(os, "geteuid") else None
    return {"user": uid, "interpreter": sys.executable, "nproc_binds": uid != 0}


def _kill_group(process: subprocess.Popen) -> None:
    for kill in (lambda: os.killpg(process.pid, signal.SIGKILL), process.kill):
        try:
            kill()
        except (ProcessLookupError, PermissionError, OSError):
            pass


def _exited(process: subprocess.Popen) -> bool:
    """Whether the process has exited, without reaping it where the OS allows (Linux ``waitid(WNOWAIT)``): its zombie
    keeps the process-group id from being reused until we have killed the group."""
    if not hasattr(os, "waitid"):  # macOS: Popen reaps it
        return process.poll() is not None
    try:
        return os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _error_line(stderr: str, returncode: int | None, timed_out: bool, truncated: bool, timeout_s: float,
                max_output_bytes: int) -> str | None:
    if timed_out:
        return f"timed out after {timeout_s:g} s (wall-time limit)"
    if truncated:
        return f"output over {max_output_bytes} bytes: killed"
    if returncode == 0:
        return None
    if returncode is not None and returncode < 0:
        name = signal.Signals(-returncode).name if -returncode in signal.valid_signals() else str(-returncode)
        reason = {"SIGXCPU": " (CPU-time limit)", "SIGXFSZ": " (file-size limit)", "SIGKILL": " (killed)"}.get(name, "")
        return f"killed by {name}{reason}"
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else f"exit status {returncode}"


def execute_python(code: str, timeout_s: float = 5.0, memory_mb: int = 256, max_output_bytes: int = 65536, *,
                   max_file_mb: int = 8, block_process_creation: bool = True) -> SandboxResult:
    """Run `code` in a fresh, limited Python process and return what it printed (see the module docstring for the
    limits and for what this does not protect against).

    Args:
        code: a Python program (model-written: untrusted).
        timeout_s: wall-time limit in seconds (the CPU-time limit is one second above its ceiling).
        memory_mb: address-space limit of the process, in MiB (the interpreter itself needs about 30).
        max_output_bytes: the most bytes kept of stdout, and of stderr; more kills the program.
        max_file_mb: the largest file the program may write (in its temporary working directory, removed afterwards).
        block_process_creation: install the audit hook that refuses fork/exec/subprocess/ctypes. RLIMIT_NPROC applies
            either way (where it binds); False is for testing that the OS limit holds on its own.

    Returns:
        A `SandboxResult`; limits reached are reported in it (``timed_out``, ``truncated``, ``error``), never raised.
    """
    if os.name != "posix":
        raise OSError("execute_python needs a POSIX system (resource limits, process groups); it is tested on Linux")
    if not isinstance(code, str):
        raise TypeError(f"code must be a string, got {type(code).__name__}")
    if timeout_s <= 0 or memory_mb <= 0 or max_output_bytes <= 0 or max_file_mb < 0:
        raise ValueError(f"timeout_s={timeout_s}, memory_mb={memory_mb}, max_output_bytes={max_output_bytes} must be "
                         f"positive and max_file_mb={max_file_mb} not negative")
    if len(code.encode("utf-8", "surrogatepass")) > 100_000:
        raise ValueError("code is over 100 kB: the sandbox runs programs, not data files")
    if "\x00" in code:
        raise ValueError("code contains a NUL character")
    ids = _dropped_ids()
    exe = _interpreter_for(ids) if ids else sys.executable
    if ids and exe is None:  # root, and nothing that `nobody` can run: keep root (RLIMIT_NPROC then does not bind)
        ids, exe = None, sys.executable
    bootstrap = _BOOTSTRAP.replace("__BLOCK__", "True" if block_process_creation else "False")
    numbers = [math.ceil(timeout_s) + 1, memory_mb * 2**20, max_file_mb * 2**20, 1]  # CPU: the wall limit fires first
    argv = [exe, "-I", "-S", "-X", "utf8", "-c", bootstrap, code, *map(str, numbers)]
    workdir = tempfile.mkdtemp(prefix="hf-hundredpage-sandbox-")
    kwargs = {}
    if ids:
        os.chown(workdir, *ids)
        kwargs = {"user": ids[0], "group": ids[1], "extra_groups": []}
    start = time.monotonic()
    deadline = start + timeout_s
    chunks: dict[str, list[bytes]] = {"stdout": [], "stderr": []}
    sizes = {"stdout": 0, "stderr": 0}
    timed_out = truncated = False
    try:
        process = subprocess.Popen(argv, cwd=workdir, env={"PATH": os.defpath, "LC_ALL": "C.UTF-8"},
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   close_fds=True, start_new_session=True, **kwargs)
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(process.stdout, selectors.EVENT_READ, "stdout")
                selector.register(process.stderr, selectors.EVENT_READ, "stderr")
                while selector.get_map():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        timed_out = True
                        break
                    for key, _ in selector.select(timeout=min(remaining, 0.5)):
                        data = os.read(key.fd, 65536)
                        if not data:
                            selector.unregister(key.fileobj)
                            continue
                        room = max_output_bytes - sizes[key.data]
                        chunks[key.data].append(data[:room])
                        sizes[key.data] += min(len(data), max(room, 0))
                        if len(data) > room:
                            truncated = True
                    if truncated:
                        break
            # Pipes closed (or a limit reached): wait for the exit within the deadline, then kill the group.
            while not (timed_out or truncated) and not _exited(process):
                if time.monotonic() >= deadline:
                    timed_out = True
                    break
                time.sleep(0.005)
            _kill_group(process)  # before reaping: any process left in the group goes too
            returncode = process.wait()
        finally:
            _kill_group(process)
            for stream in (process.stdout, process.stderr):
                stream.close()
            if process.returncode is None:
                process.wait()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    duration = time.monotonic() - start
    stdout = b"".join(chunks["stdout"]).decode("utf-8", "replace")
    stderr = b"".join(chunks["stderr"]).decode("utf-8", "replace")
    return SandboxResult(stdout=stdout, stderr=stderr, returncode=returncode, timed_out=timed_out, truncated=truncated,
                         error=_error_line(stderr, returncode, timed_out, truncated, timeout_s, max_output_bytes),
                         duration_s=duration)
