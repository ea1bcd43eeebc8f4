"""hf_hundredpage.reasoning.sandbox: model-written Python runs in another process and every limit fails closed within
its bound (wall time, memory, processes, output, file size), with an empty working directory removed afterwards, no
stdin, no site-packages and none of our environment."""

import os
import time

import pytest

from hf_hundredpage.reasoning.sandbox import execute_python, limits


def test_normal_code_returns_what_it_prints_from_another_process():
    result = execute_python("import os\nprint(17 + 25)\nprint(os.getpid())")
    lines = result.stdout.splitlines()
    assert lines[0] == "42"
    assert int(lines[1]) != os.getpid()
    assert (result.ok, result.returncode, result.error, result.timed_out, result.truncated) == (True, 0, None, False, False)


def test_an_exception_is_one_error_line_with_the_traceback_on_stderr():
    result = execute_python("print('before')\n1 / 0")
    assert result.stdout == "before\n"
    assert result.returncode == 1 and not result.ok
    assert result.error == "ZeroDivisionError: division by zero"
    assert "Traceback" in result.stderr


def test_a_busy_loop_is_killed_at_the_wall_time_limit():
    start = time.monotonic()
    result = execute_python("while True:\n    pass", timeout_s=1.0)
    elapsed = time.monotonic() - start
    assert result.timed_out and not result.ok
    assert result.returncode == -9
    assert result.error == "timed out after 1 s (wall-time limit)"
    assert 1.0 <= elapsed < 2.5


def test_a_program_that_closes_its_output_and_sleeps_still_times_out():
    result = execute_python("import os, time\nos.close(1)\nos.close(2)\ntime.sleep(60)", timeout_s=0.5)
    assert result.timed_out and result.duration_s < 2.0


def test_a_memory_bomb_fails_with_memory_error_under_the_limit():
    start = time.monotonic()
    result = execute_python("chunks = []\nwhile True:\n    chunks.append(bytearray(10**7))", memory_mb=128, timeout_s=10)
    assert not result.ok and not result.timed_out
    assert result.error == "MemoryError"
    assert time.monotonic() - start < 5


def test_one_huge_allocation_is_refused():
    result = execute_python("x = bytearray(4 * 10**9)\nprint('allocated')", memory_mb=256)
    assert result.stdout == "" and result.error == "MemoryError"


def test_a_fork_loop_fails_closed_at_the_first_fork():
    result = execute_python("import os\nwhile True:\n    os.fork()", timeout_s=5)
    assert not result.ok and not result.timed_out
    assert result.error == "PermissionError: the sandbox refuses os.fork"


@pytest.mark.parametrize("code", ["import subprocess\nsubprocess.run(['true'])", "import os\nos.system('true')",
                                  "import ctypes\nctypes.CDLL(None)"])
def test_subprocesses_and_ctypes_are_refused(code):
    result = execute_python(code)
    assert result.error is not None and result.error.startswith("PermissionError: the sandbox refuses")


def test_the_os_process_limit_holds_without_the_audit_hook():
    """RLIMIT_NPROC alone (the audit hook off): the first fork fails. The program is bounded (50 forks whose children
    exit at once), so it is safe to run even where the limit would not hold."""
    if not limits()["nproc_binds"]:
        pytest.skip("RLIMIT_NPROC does not bind here: running as root with no uid to drop to")
    code = ("import os\nforks = 0\ntry:\n    for _ in range(50):\n        if os.fork() == 0:\n            os._exit(0)\n"
            "        forks += 1\nexcept OSError as err:\n    print('refused after', forks, type(err).__name__)")
    result = execute_python(code, block_process_creation=False)
    assert result.stdout.strip() == "refused after 0 BlockingIOError"


def test_threads_cannot_be_started_either():
    result = execute_python("import threading\nthreading.Thread(target=print).start()")
    if not limits()["nproc_binds"]:
        pytest.skip("RLIMIT_NPROC does not bind here")
    assert result.error == "RuntimeError: can't start new thread"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="only root drops to nobody")
def test_as_root_the_program_runs_as_nobody():
    assert execute_python("import os\nprint(os.getuid(), os.getgid(), os.getgroups())").stdout == "65534 65534 []\n"


def test_megabytes_of_output_are_cut_at_the_limit_and_the_program_killed():
    start = time.monotonic()
    result = execute_python("while True:\n    print('x' * 1000)", max_output_bytes=10_000, timeout_s=10)
    assert result.truncated and not result.ok and not result.timed_out
    assert len(result.stdout) == 10_000 and set(result.stdout) == {"x", "\n"}
    assert result.error == "output over 10000 bytes: killed"
    assert time.monotonic() - start < 3


def test_one_print_of_100_megabytes_is_cut_too():
    result = execute_python("print('y' * 10**8)", max_output_bytes=65536, timeout_s=10)
    assert result.truncated and len(result.stdout) == 65536


def test_our_environment_does_not_leak(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret_should_not_leak")
    monkeypatch.setenv("PYTHONPATH", "/somewhere")
    result = execute_python("import os, sys\nprint(sorted(os.environ))\nprint(sys.path)")
    assert "hf_secret_should_not_leak" not in result.stdout and "HF_TOKEN" not in result.stdout
    assert result.stdout.splitlines()[0] == "['LC_ALL', 'PATH']"
    assert "/somewhere" not in result.stdout and "site-packages" not in result.stdout


def test_site_packages_are_out_of_reach():
    assert execute_python("import torch").error == "ModuleNotFoundError: No module named 'torch'"


def test_the_working_directory_is_empty_and_removed_afterwards():
    code = "import os\nprint(os.getcwd())\nprint(os.listdir('.'))\nopen('left.txt', 'w').write('x')"
    result = execute_python(code)
    cwd, listing = result.stdout.splitlines()
    assert listing == "[]" and result.ok
    assert cwd != os.getcwd() and not os.path.exists(cwd)


def test_stdin_is_empty():
    assert execute_python("import sys\nprint(repr(sys.stdin.read()))").stdout == "''\n"


def test_files_over_the_size_limit_are_refused():
    result = execute_python("open('big', 'w').write('a' * 3 * 2**20)", max_file_mb=1)
    assert result.error == "OSError: [Errno 27] File too large"


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="must be positive"):
        execute_python("print(1)", timeout_s=0)
    with pytest.raises(TypeError):
        execute_python(b"print(1)")
