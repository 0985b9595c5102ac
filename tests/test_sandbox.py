import errno
import json
import os
import socket
import tempfile
import uuid

import pytest

from tools import ExecResult, SandboxLimits, isolation_available, run_command, run_python
from tools.sandbox import CODE_FILE, SCRATCH_PREFIX, remove_tree

ISOLATION = isolation_available()
# Outside bwrap a root parent may run the code as root: no process limit, no filesystem protection.
ROOT_WITHOUT_BWRAP = os.geteuid() == 0 and ISOLATION != "bwrap"


def sandbox_processes(marker: str = CODE_FILE) -> list[int]:
    """Live processes that carry `marker` as an argument, wherever they were reparented to: by
    default those of a run_python run (bwrap, unshare, the launcher and the code all do)."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if marker.encode() in argv:
            pids.append(int(name))
    return pids


@pytest.mark.needs_bwrap
def test_installed_bwrap_is_the_isolation_in_use():
    # A bwrap that is installed but unusable (e.g. the venv hidden by the private /tmp) would
    # silently weaken every run; fail loudly instead.
    assert ISOLATION == "bwrap"


def test_print_and_result_fields():
    r = run_python("print('hello')")
    assert (r.stdout, r.stderr, r.exit_code, r.status) == ("hello\n", "", 0, "ok")
    assert r.ok and not r.truncated
    assert r.isolation == ISOLATION


def test_last_expression_is_echoed_like_a_notebook():
    assert run_python("x = 6\nx * 7").stdout == "42\n"
    assert run_python("s = 'ab'\ns + 'c'").stdout == "'abc'\n"
    assert run_python("print('once')").stdout == "once\n"  # print is not echoed a second time
    assert run_python("def f():\n    pass\nf()").stdout == ""  # None is not echoed


def test_stdin_and_exit_code():
    assert run_python("print(input()[::-1])", stdin="abc\n").stdout == "cba\n"
    r = run_python("import sys\nsys.exit(3)")
    assert (r.status, r.exit_code) == ("error", 3)


def test_sympy_and_numpy_are_importable():
    code = ("import numpy as np\nimport sympy as sp\n"
            "print(int(np.arange(10).sum()))\n"
            "x = sp.Symbol('x')\nsp.factor(x**2 - 1)")
    r = run_python(code)
    assert r.status == "ok", r.stderr
    assert r.stdout == "45\n(x - 1)*(x + 1)\n"


def test_syntax_error_is_reported():
    r = run_python("x = 1\ny = (\n")
    assert r.status == "error" and r.exit_code == 1
    assert "SyntaxError" in r.stderr
    assert CODE_FILE in r.stderr and "line 2" in r.stderr


def test_traceback_points_at_user_lines_only():
    r = run_python("def f(n):\n    return 1 / n\n\nf(0)\n")
    assert r.status == "error"
    assert f'File "{CODE_FILE}", line 4' in r.stderr
    assert f'File "{CODE_FILE}", line 2, in f' in r.stderr
    assert "return 1 / n" in r.stderr  # the source line is shown
    assert "<string>" not in r.stderr  # the runner's own frame is hidden
    assert r.stderr.rstrip().endswith("ZeroDivisionError: division by zero")


def test_infinite_loop_times_out():
    r = run_python("while True:\n    pass", SandboxLimits(timeout=2, cpu_seconds=30))
    assert r.status == "timeout" and r.exit_code is None
    assert sandbox_processes() == []


def test_cpu_limit():
    r = run_python("while True:\n    pass", SandboxLimits(timeout=20, cpu_seconds=1))
    assert r.status == "cpu_limit"


@pytest.mark.parametrize("code", ["x = bytearray(10**10)",
                                  "chunks = []\nwhile True:\n    chunks.append(bytearray(10**7))"])
def test_memory_bomb(code):
    r = run_python(code, SandboxLimits(memory_mb=256))
    assert r.status == "memory", (r.status, r.stderr[-300:])
    assert "MemoryError" in r.stderr


@pytest.mark.skipif(ROOT_WITHOUT_BWRAP, reason="as root without bwrap a fork bomb is not contained")
def test_fork_bomb_is_contained():
    r = run_python("import os\nwhile True:\n    os.fork()", SandboxLimits(timeout=10))
    assert r.status == "error", r.status  # fork() failed with EAGAIN long before the timeout
    assert "BlockingIOError" in r.stderr
    assert sandbox_processes() == []
    # The machine is fine: we can still start processes, sandboxed and not.
    assert run_python("print('still alive')").stdout == "still alive\n"
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0


@pytest.mark.skipif(ROOT_WITHOUT_BWRAP, reason="as root without bwrap the process limit is not enforced")
def test_process_limit_is_enforced():
    # Children stay alive, so only max_processes (not a machine-wide limit) can stop this early;
    # capped at 200 so it stays harmless if the limit were missing.
    code = ("import os, time\nn = 0\ntry:\n    while n < 200:\n"
            "        if os.fork() == 0:\n            time.sleep(30)\n            os._exit(0)\n"
            "        n += 1\nexcept BlockingIOError:\n    pass\nprint(n)")
    r = run_python(code, SandboxLimits(max_processes=16))
    assert r.status == "ok", r.stderr
    assert 0 < int(r.stdout) < 16
    assert sandbox_processes() == []


def test_processes_left_in_the_background_are_killed():
    code = ("import os, time\n"
            "if os.fork() == 0:\n    os.setsid()\n    time.sleep(10)\n"
            "print('parent done')")
    r = run_python(code)
    assert r.stdout == "parent done\n"
    if ISOLATION != "none":  # without namespaces a setsid() child escapes the group kill
        assert sandbox_processes() == []


def test_huge_output_is_bounded():
    limits = SandboxLimits(timeout=10, file_size_mb=1, max_output_chars=1000)
    r = run_python("while True:\n    print('x' * 10000)", limits)
    assert r.status in ("output_limit", "timeout")
    assert r.truncated
    assert "[output truncated:" in r.stdout
    assert r.stdout.startswith("x" * 1000)
    assert len(r.stdout) <= 1000 + 100


@pytest.mark.skipif(ROOT_WITHOUT_BWRAP, reason="the code runs as root without a read-only filesystem")
@pytest.mark.parametrize("target", ["/root/plait_sandbox_probe", "/etc/plait_sandbox_probe"])
def test_writing_outside_scratch_fails(target):
    code = (f"try:\n    open({target!r}, 'w').write('x')\n    print('wrote')\n"
            "except OSError as e:\n    print('refused', type(e).__name__)")
    try:
        r = run_python(code)
        assert r.stdout.startswith("refused"), r.stdout
        assert not os.path.exists(target)
    finally:
        if os.path.exists(target):
            os.remove(target)


def test_writing_in_cwd_works_and_scratch_is_removed():
    code = ("import os\nopen('out.txt', 'w').write('data')\n"
            "print(open('out.txt').read())\nprint(os.getcwd())\nprint(os.environ['HOME'])")
    r = run_python(code)
    assert r.status == "ok", r.stderr
    data, cwd, home = r.stdout.splitlines()
    assert data == "data" and home == cwd
    assert not os.path.exists(cwd)


@pytest.mark.needs_bwrap
@pytest.mark.skipif(ISOLATION == "none", reason="no namespace isolation (bwrap/unshare) available")
def test_network_is_cut():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.setblocking(False)
        port = server.getsockname()[1]
        code = ("import socket\ntry:\n"
                f"    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n    print('connected')\n"
                "except OSError:\n    print('blocked')")
        r = run_python(code)
        assert r.stdout == "blocked\n", r.stdout + r.stderr
        with pytest.raises(BlockingIOError):
            server.accept()


def test_parent_environment_does_not_leak(monkeypatch):
    monkeypatch.setenv("PLAIT_SECRET_PROBE", "s3cret")
    code = ("import os\nprint(sorted(os.environ))\nprint(os.environ.get('OMP_NUM_THREADS'))\n"
            "print(hash('plait'))")
    first, second = run_python(code), run_python(code)
    assert "PLAIT_SECRET_PROBE" not in first.stdout and "s3cret" not in first.stdout
    assert first.stdout.splitlines()[1] == "1"
    assert first.stdout == second.stdout  # PYTHONHASHSEED=0 makes str hashes reproducible


def host_scratch_dirs() -> set[str]:
    return {name for name in os.listdir(tempfile.gettempdir()) if name.startswith(SCRATCH_PREFIX)}


# --- run_command ----------------------------------------------------------------------------


def test_run_command_gets_its_files_in_a_fresh_scratch_dir_and_only_the_env_it_is_given(monkeypatch):
    monkeypatch.setenv("PLAIT_SECRET_PROBE", "s3cret")
    script = 'cat in.txt; echo; wc -c < data.bin; pwd; echo "$HOME"; echo "${PLAIT_SECRET_PROBE:-unset} $CHECKER_VAR"; exit 3'
    r = run_command(["sh", "-c", script], {"in.txt": "given", "data.bin": b"\x00\xff"}, env={"CHECKER_VAR": "passed"})
    assert (r.status, r.exit_code, r.isolation) == ("error", 3, ISOLATION)
    given, size, cwd, home, env = r.stdout.splitlines()
    assert given == "given" and size.strip() == "2" and home == cwd and env == "unset passed"
    assert not os.path.exists(cwd)


@pytest.mark.needs_bwrap
def test_run_command_sees_the_parents_home_only_where_it_is_exposed():
    toolchain = tempfile.mkdtemp(prefix="plait-expose-probe-", dir=os.path.expanduser("~"))
    os.chmod(toolchain, 0o755)  # readable by the run's own uid, as an installed toolchain is
    try:
        with open(os.path.join(toolchain, "version"), "w") as f:
            f.write("4.2")
        argv = ["cat", os.path.join(toolchain, "version")]
        hidden, exposed = run_command(argv), run_command(argv, expose=[toolchain])
        assert hidden.status == "error" and "No such file" in hidden.stderr
        assert exposed.status == "ok" and exposed.stdout == "4.2"
        assert run_command(["sh", "-c", f"echo x > {toolchain}/new"], expose=[toolchain]).status == "error"  # read-only
    finally:
        remove_tree(toolchain)


def test_run_command_reports_a_program_that_cannot_be_started():
    r = run_command(["plait-no-such-program"])
    assert (r.status, r.exit_code) == ("error", 127)
    assert "plait-no-such-program" in r.stderr


@pytest.mark.skipif(ROOT_WITHOUT_BWRAP, reason="the code runs as root without a read-only filesystem")
def test_run_command_cannot_write_outside_scratch():
    r = run_command(["sh", "-c", "echo x > /etc/plait_sandbox_probe && echo wrote || echo refused"])
    assert r.stdout == "refused\n" and not os.path.exists("/etc/plait_sandbox_probe")


@pytest.mark.skipif(ISOLATION == "none", reason="without namespaces a setsid() child escapes the group kill")
def test_run_command_times_out_and_leaves_nothing_running():
    marker = f"plait-probe-{uuid.uuid4().hex}"  # in the argv of the program and of its child
    code = "import os, time\nif os.fork() == 0:\n    os.setsid()\ntime.sleep(30)"
    r = run_command(["python3", "-c", code, marker], limits=SandboxLimits(timeout=1))
    assert r.status == "timeout" and r.exit_code is None
    assert sandbox_processes(marker) == []


# --- the scratch disk -----------------------------------------------------------------------


@pytest.mark.needs_bwrap
def test_writing_past_the_disk_quota_fails_cleanly_and_spares_the_host_disk():
    name = f"plait_quota_probe_{uuid.uuid4().hex}"
    code = ("import os\nn = 0\ntry:\n"
            f"    with open('/tmp/{name}', 'wb') as f:\n"
            "        while True:\n            f.write(b'x' * 2**20)\n            f.flush()\n            n += 1\n"
            "except OSError as e:\n    print(n, e.errno, os.getcwd())\n    raise")
    before = host_scratch_dirs()
    r = run_python(code, SandboxLimits(disk_mb=8, file_size_mb=64))
    assert r.status == "disk_limit", (r.status, r.stderr[-300:])
    written, code_errno, cwd = r.stdout.split()
    assert int(written) < 8 and int(code_errno) == errno.ENOSPC
    assert "No space left on device" in r.stderr
    # Nothing reached the host: not the file (the sandbox's /tmp is its own), not the scratch dir.
    assert not os.path.exists(f"/tmp/{name}") and not os.path.exists(cwd)
    assert host_scratch_dirs() <= before


@pytest.mark.needs_bwrap
def test_the_disk_quota_holds_for_commands_and_writes_within_it_succeed():
    limits = SandboxLimits(disk_mb=8, file_size_mb=64)
    small = run_command(["sh", "-c", "head -c 4000000 /dev/zero > out && wc -c < out"], limits=limits)
    assert small.status == "ok" and small.stdout.strip() == "4000000"
    big = run_command(["sh", "-c", "head -c 20000000 /dev/zero > out"], limits=limits)
    assert big.status == "disk_limit" and "No space left on device" in big.stderr


def test_deep_and_locked_down_trees_leave_no_scratch_dir_behind():
    # 1,100 nested directories once made shutil.rmtree raise RecursionError and leak the scratch
    # dir; 200-character names also take the path past PATH_MAX.
    outside = tempfile.NamedTemporaryFile(prefix="plait-outside-")
    code = ("import os\nhome = os.getcwd()\nfor _ in range(1100):\n    os.mkdir('d' * 200)\n    os.chdir('d' * 200)\n"
            "os.chdir(home)\nos.makedirs('locked/inner')\nopen('locked/inner/f', 'w').write('x')\n"
            "os.chmod('locked/inner/f', 0o400)\nos.chmod('locked/inner', 0o500)\nos.chmod('locked', 0)\n"
            f"os.symlink({outside.name!r}, 'link')\nprint(home)")
    before = host_scratch_dirs()
    r = run_python(code, SandboxLimits(timeout=30))
    assert r.status == "ok", r.stderr[-500:]
    assert not os.path.exists(r.stdout.strip())
    assert host_scratch_dirs() <= before
    assert os.path.exists(outside.name)  # the symlink was removed, not followed
    outside.close()


def test_remove_tree_removes_what_its_owner_locked_down_however_deep():
    """The cleanup used when the scratch dir is on the host disk (no bwrap). Run as an unprivileged
    uid (root would read past the chmods) over a tree that uid made."""
    top = tempfile.mkdtemp(prefix="plait-remove-tree-")
    outside_dir = tempfile.mkdtemp(prefix="plait-outside-")
    open(os.path.join(outside_dir, "keep"), "w").close()
    pid = os.fork()
    if pid == 0:
        try:
            if os.geteuid() == 0:
                os.chown(top, 65534, 65534)
                os.setgid(65534)
                os.setuid(65534)
            os.chdir(top)
            os.mkdir("root")
            os.chdir("root")
            os.symlink(outside_dir, "dir_link")
            for _ in range(1100):
                os.mkdir("d" * 200)
                os.chdir("d" * 200)
                open("ro", "w").close()
                os.chmod("ro", 0o400)
            os.chmod(".", 0)
            os.chdir(top)
            os.makedirs("root/a/b")
            os.chmod("root/a/b", 0o500)
            os.chmod("root/a", 0)
            remove_tree(os.path.join(top, "root"))
            os._exit(0 if os.listdir(top) == [] else 2)
        except BaseException:
            os._exit(1)
    assert os.waitpid(pid, 0)[1] == 0
    assert os.listdir(outside_dir) == ["keep"]
    os.rmdir(top)
    os.remove(os.path.join(outside_dir, "keep"))
    os.rmdir(outside_dir)


def test_exec_result_json_round_trip():
    r = run_python("print('é')\n1/0")
    again = ExecResult.from_dict(json.loads(json.dumps(r.to_dict())))
    assert again == r
    assert again.ok is False and again.stdout == "é\n"


@pytest.mark.parametrize("call", [
    lambda: run_python(b"print(1)"),
    lambda: run_python(None),
    lambda: run_python("print(1)", stdin=b"x"),
    lambda: run_python("print(1)", {"timeout": 1}),
    lambda: SandboxLimits(timeout=0),
    lambda: SandboxLimits(timeout=-1.5),
    lambda: SandboxLimits(cpu_seconds=2.5),
    lambda: SandboxLimits(max_output_chars=0),
    lambda: SandboxLimits(disk_mb=0),
    lambda: run_command("ls"),
    lambda: run_command([]),
    lambda: run_command(["ls"], {"../escape": "x"}),
    lambda: run_command(["ls"], {"sub/file": "x"}),
    lambda: run_command(["ls"], {"f": 1}),
    lambda: run_command(["ls"], env={"A": 1}),
])
def test_bad_arguments_raise_value_error(call):
    with pytest.raises(ValueError):
        call()
