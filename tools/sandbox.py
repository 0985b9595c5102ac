"""Run model-written Python in a separate, resource-limited and (where possible) isolated process.

Every run gets a fresh scratch directory (its cwd and HOME, deleted afterwards), a minimal
environment (none of the parent's variables), and these limits, set inside the sandbox by a small
runner before the code starts: RLIMIT_CPU, RLIMIT_AS, RLIMIT_FSIZE (also caps stdout/stderr, which
go to files), RLIMIT_NPROC and no core dumps; plus a wall-clock timeout after which everything the
run started is killed. What else holds depends on the isolation found at the first call (measured
on Debian 12, kernel 6.x, bubblewrap 0.8, util-linux 2.38):

bwrap (preferred)
    / read-only; only the scratch dir and a private /tmp are writable. The parent's home and any
    directory other users cannot search (e.g. /root) are hidden behind an empty tmpfs, with only
    the Python installation re-exposed read-only. Own network namespace (no network at all, not
    even the host's loopback), own pid/ipc/uts namespaces: the run ends with all its processes.
    Process limit: as root the code runs as a fresh random uid (privileged bwrap without a user
    namespace, the runner then drops to it), because a user namespace still maps the code to
    kernel uid 0, which RLIMIT_NPROC never limits (measured: 3000 of 3000 forks succeeded). With
    the fresh uid a fork bomb gets EAGAIN after max_processes and the run ends in < 0.1 s. As
    non-root, bwrap --unshare-all creates a user namespace and RLIMIT_NPROC counts only the
    sandbox's processes (measured: EAGAIN after 30 forks). The code cannot raise its limits.
unshare (bwrap missing or not working)
    Non-root: `unshare --user --map-root-user --net --pid --fork --kill-child`: no network, own
    pid namespace (the run ends with all its processes), RLIMIT_NPROC per user namespace
    (measured: EAGAIN after 29 forks). No filesystem isolation: the code reads and writes what the
    parent user can (measured: wrote /var/tmp). As root the same is tried as a fresh uid, which
    works only if any uid can read the interpreter (not for a pyenv under /root); otherwise
    `unshare --net --pid --fork --kill-child` as root: no network and clean teardown, but no
    process limit (measured: 3000 of 3000 forks; only the wall timeout stops a fork bomb) and the
    code can write anywhere as root.
none
    Only the rlimits and a kill of the process group at the end: full network, the parent user's
    filesystem access, and processes that call setsid() outlive the run (measured). RLIMIT_NPROC
    as non-root counts all of that user's processes and threads, so the code cannot fork at all if
    the user already runs max_processes of them; as root it holds only with the fresh-uid drop
    (interpreter readable by any uid; leftover processes of that uid are then killed too), else
    not at all.

Root without the uid drop can raise its own limits only if it holds CAP_SYS_RESOURCE. The code runs
under `python -s -B -u` rather than -I, since -I would also drop PYTHONHASHSEED=0; the environment
is built from scratch anyway. A signal death is reported as exit_code = -signo; behind bwrap or
unshare an exit status of 129..255 from sys.exit() is indistinguishable from one. Needs Linux >= 5.3
(pidfd_open).
"""

from __future__ import annotations

import dataclasses
import functools
import grp
import os
import pwd
import random
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

CODE_FILE = "solution.py"
_MIB = 1024 * 1024
# Sandboxed runs as root get a random uid from here: RLIMIT_NPROC is counted per uid system-wide,
# so a fresh uid gives each run its own process budget (and owns no files on the machine).
_UID_FIRST, _UID_LAST = 1 << 24, (1 << 31) - 1

# Runs inside the sandbox (never in the parent). Limits are applied here rather than in a
# preexec_fn: preexec_fn is unsafe in a threaded parent, and RLIMIT_NPROC must be set after
# bwrap/unshare created the user namespace so it counts only this sandbox's processes.
_RUNNER = r"""
import ast, os, resource, sys, traceback, types

path = sys.argv[1]
cpu, mem, fsize, nproc, uid = map(int, sys.argv[2:7])
for res, soft, hard in ((resource.RLIMIT_CPU, cpu, cpu + 1), (resource.RLIMIT_AS, mem, mem),
                        (resource.RLIMIT_FSIZE, fsize, fsize), (resource.RLIMIT_NPROC, nproc, nproc),
                        (resource.RLIMIT_CORE, 0, 0)):
    cap = resource.getrlimit(res)[1]
    if cap != resource.RLIM_INFINITY:
        soft, hard = min(soft, cap), min(hard, cap)
    resource.setrlimit(res, (soft, hard))
if uid >= 0:  # privileged bwrap: continue as the run's private uid
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)

if os.getpid() == 1:
    # We are the init of the sandbox's pid namespace (bwrap --as-pid-1, unshare --pid). Init
    # ignores default-action signals such as SIGXCPU, so run the code in a child, reap orphans, and
    # report the end as bwrap does (128 + signal). When we exit the kernel kills the namespace and
    # our parent sees us exit only after all its processes are gone.
    child = os.fork()
    if child:
        while True:
            pid, status = os.wait()
            if pid == child:
                code = os.waitstatus_to_exitcode(status)
                os._exit(code if code >= 0 else 128 - code)

try:
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        value = tree.body[-1].value
        func = value.func if isinstance(value, ast.Call) else None
        if not (isinstance(func, ast.Name) and func.id == "print"):
            # "single" mode echoes the value through sys.displayhook, like a notebook cell.
            last = compile(ast.Interactive([tree.body.pop()]), path, "single")
    body = compile(tree, path, "exec")
except (SyntaxError, ValueError) as e:
    sys.stderr.write("".join(traceback.format_exception_only(e)))
    sys.exit(1)

sys.argv = [path]
main = types.ModuleType("__main__")
main.__file__ = path
sys.modules["__main__"] = main
try:
    exec(body, main.__dict__)
    if last is not None:
        exec(last, main.__dict__)
except Exception as e:
    traceback.print_exception(type(e), e, e.__traceback__.tb_next)  # hide this runner's frame
    sys.exit(1)
"""


@dataclass(frozen=True)
class SandboxLimits:
    timeout: float = 10.0
    cpu_seconds: int = 10
    memory_mb: int = 1024
    file_size_mb: int = 16
    max_processes: int = 32
    max_output_chars: int = 4000

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            kinds = (int, float) if field.name == "timeout" else int
            if isinstance(value, bool) or not isinstance(value, kinds) or value <= 0:
                kind = "number" if field.name == "timeout" else "integer"
                raise ValueError(f"SandboxLimits.{field.name} must be a positive {kind}, got {value!r}")


@dataclass(frozen=True)
class ExecResult:
    stdout: str
    stderr: str
    exit_code: int | None
    status: str
    seconds: float
    truncated: bool
    isolation: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ExecResult:
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls)})


@dataclass(frozen=True)
class _Plan:
    isolation: str  # "bwrap" | "unshare" | "none"
    drop_uid: bool  # run the code as a fresh unprivileged uid (only when the parent is root)
    tool: str | None = None  # absolute path of bwrap / unshare


def run_python(code: str, limits: SandboxLimits | None = None, *, stdin: str = "") -> ExecResult:
    """Run `code` as a Python program in a fresh scratch directory and report what happened."""
    if not isinstance(code, str):
        raise ValueError(f"code must be a str, got {type(code).__name__}")
    if not isinstance(stdin, str):
        raise ValueError(f"stdin must be a str, got {type(stdin).__name__}")
    limits = SandboxLimits() if limits is None else limits
    if not isinstance(limits, SandboxLimits):
        raise ValueError(f"limits must be a SandboxLimits, got {type(limits).__name__}")
    return _run(code, limits, stdin, _plan())


def isolation_available() -> str:
    """The isolation run_python uses on this machine: "bwrap", "unshare" or "none"."""
    return _plan().isolation


@functools.cache
def _plan() -> _Plan:
    # Probe by running a real program: a binary can exist yet fail (no user namespaces, seccomp,
    # the interpreter unreadable for an unprivileged uid, ...).
    root = os.geteuid() == 0
    bwrap, unshare = shutil.which("bwrap"), shutil.which("unshare")
    candidates = [_Plan("bwrap", root, bwrap), _Plan("unshare", root, unshare)]
    if root:  # outside bwrap an unprivileged uid may be unable to read the interpreter
        candidates += [_Plan("unshare", False, unshare), _Plan("none", True)]
    candidates.append(_Plan("none", False))
    for plan in candidates:
        if plan.isolation != "none" and plan.tool is None:
            continue
        try:
            result = _run("6 * 7", SandboxLimits(), "", plan)
        except OSError:
            continue
        if result.ok and result.stdout == "42\n":
            return plan
    return candidates[-1]


def _run(code: str, limits: SandboxLimits, stdin: str, plan: _Plan) -> ExecResult:
    scratch = tempfile.mkdtemp(prefix="plait-sandbox-")
    try:
        with open(os.path.join(scratch, CODE_FILE), "w", encoding="utf-8") as f:
            f.write(code)
        uid = _fresh_uid() if plan.drop_uid else None
        popen_kwargs = {}
        if uid is not None:
            os.chown(scratch, uid, uid)
            os.chown(os.path.join(scratch, CODE_FILE), uid, uid)
            if plan.isolation != "bwrap":
                popen_kwargs = {"user": uid, "group": uid, "extra_groups": []}
        fsize = limits.file_size_mb * _MIB
        runner_uid = uid if uid is not None and plan.isolation == "bwrap" else -1
        runner = [sys.executable, "-s", "-B", "-u", "-c", _RUNNER, CODE_FILE, str(limits.cpu_seconds),
                  str(limits.memory_mb * _MIB), str(fsize), str(limits.max_processes), str(runner_uid)]
        with tempfile.TemporaryFile() as fin, tempfile.TemporaryFile() as fout, \
                tempfile.TemporaryFile() as ferr:
            fin.write(stdin.encode("utf-8"))
            fin.seek(0)
            start = time.monotonic()
            # Output goes to files, not pipes: RLIMIT_FSIZE bounds them, never the parent's memory.
            proc = subprocess.Popen(_wrap(plan, scratch, runner), stdin=fin, stdout=fout, stderr=ferr,
                                    cwd=scratch, env=_env(scratch), start_new_session=True, **popen_kwargs)
            wait_status, cpu, timed_out = _wait(proc, limits.timeout, uid)
            seconds = time.monotonic() - start
            stdout, cut_out = _head(fout, limits.max_output_chars)
            stderr, cut_err = _head(ferr, limits.max_output_chars)
            full = max(os.fstat(fout.fileno()).st_size, os.fstat(ferr.fileno()).st_size) >= fsize
            tail = _tail(ferr)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    exit_code = None if timed_out else os.waitstatus_to_exitcode(wait_status)
    if exit_code is not None and exit_code > 128 and plan.isolation != "none":
        # bwrap's init and our runner (as pid-namespace init) report a signal as 128 + signo;
        # a program calling sys.exit(129..255) is indistinguishable and reads as a signal too.
        exit_code = 128 - exit_code
    signo = -exit_code if exit_code is not None and exit_code < 0 else 0
    last_line = tail.strip().splitlines()[-1] if tail.strip() else ""
    if timed_out:
        status = "timeout"
    elif full or signo == signal.SIGXFSZ:
        status = "output_limit"
    elif last_line.startswith("MemoryError"):
        status = "memory"
    elif signo == signal.SIGXCPU or (signo == signal.SIGKILL and cpu >= limits.cpu_seconds):
        status = "cpu_limit"
    elif signo:
        status = "killed"
    else:
        status = "ok" if exit_code == 0 else "error"
    return ExecResult(stdout=stdout, stderr=stderr, exit_code=exit_code, status=status,
                      seconds=round(seconds, 3), truncated=cut_out or cut_err, isolation=plan.isolation)


def _wrap(plan: _Plan, scratch: str, runner: list[str]) -> list[str]:
    if plan.isolation == "bwrap":
        if plan.drop_uid:
            # Privileged bwrap without a user namespace: a user namespace would still map the code
            # to kernel uid 0, which RLIMIT_NPROC never limits. The runner drops to a fresh uid,
            # which clears all capabilities; bwrap's no_new_privs keeps exec from regaining any.
            ns = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
        else:
            ns = ["--unshare-all"]
        return [plan.tool, *ns, "--as-pid-1", "--die-with-parent", "--new-session", "--ro-bind", "/", "/",
                *_masks(), "--bind", scratch, scratch, "--chdir", scratch,
                "--dev", "/dev", "--proc", "/proc", "--", *runner]
    if plan.isolation == "unshare":
        userns = ["--user", "--map-root-user"] if plan.drop_uid or os.geteuid() != 0 else []
        # --pid/--kill-child: killing unshare takes every process of the run down with it.
        return [plan.tool, *userns, "--net", "--pid", "--fork", "--kill-child", "--", *runner]
    return runner


@functools.cache
def _masks() -> tuple[str, ...]:
    """bwrap arguments giving the run a private /tmp and hiding the parent's home and unsearchable
    directories (e.g. /root) behind empty tmpfs, re-exposing read-only only the Python
    installation that lives under them (a venv may well sit under /tmp or a home)."""
    needed = {os.path.realpath(p) for p in (
        sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix,
        os.path.dirname(sys.executable), os.path.dirname(os.path.realpath(sys.executable)))}
    home = os.path.realpath(os.path.expanduser("~"))
    masked = {"/tmp"} | ({home} if home != "/" and os.path.isdir(home) else set())
    for path in needed:
        parts = path.split("/")
        for i in range(2, len(parts)):
            ancestor = "/".join(parts[:i])
            if not os.stat(ancestor).st_mode & 0o001:
                masked.add(ancestor)
                break
    masked = {m for m in masked if not any(m.startswith(o + "/") for o in masked)}
    args = [arg for m in sorted(masked) for arg in ("--tmpfs", m)]
    # Bind only the outermost needed paths, each after making its new mount point searchable
    # (bwrap would create the intermediate directories with mode 0700).
    outer = sorted(p for p in needed if not any(p.startswith(o + "/") for o in needed))
    made = set()
    for path in outer:
        mask = next((m for m in masked if path == m or path.startswith(m + "/")), None)
        if mask is None:
            continue
        parts = path[len(mask):].strip("/").split("/")
        for i in range(1, len(parts)):
            directory = os.path.join(mask, *parts[:i])
            if directory not in made:
                made.add(directory)
                args += ["--perms", "0755", "--dir", directory]
        args += ["--ro-bind", path, path]
    return tuple(args)


def _env(scratch: str) -> dict[str, str]:
    # Built from nothing so no parent variable (API keys, tokens) reaches the code. The interpreter
    # runs with -s rather than -I because -I would also ignore PYTHONHASHSEED.
    return {
        "PATH": f"{os.path.dirname(sys.executable)}:/usr/local/bin:/usr/bin:/bin",
        "HOME": scratch,
        "TMPDIR": scratch,
        "LANG": "C.UTF-8",
        "PYTHONHASHSEED": "0",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
    }


def _fresh_uid() -> int:
    rng = random.SystemRandom()
    while True:
        uid = rng.randint(_UID_FIRST, _UID_LAST)
        try:
            pwd.getpwuid(uid)
            continue
        except KeyError:
            pass
        try:
            grp.getgrgid(uid)
        except KeyError:
            return uid


def _wait(proc: subprocess.Popen, timeout: float, uid: int | None) -> tuple[int, float, bool]:
    """Wait for the child up to `timeout` seconds, then kill everything the run started.

    Returns the raw wait status, the CPU seconds it and its reaped descendants used, and
    whether it timed out."""
    pidfd = os.pidfd_open(proc.pid)
    try:
        timed_out = not select.select([pidfd], [], [], timeout)[0]
    finally:
        os.close(pidfd)
    # Kill before reaping: the unreaped leader keeps its pid, so the group id cannot have been
    # reused. This also ends background processes the code left behind in the group.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)  # tell Popen it is reaped
    if uid is not None:
        _kill_uid(uid)
    return status, usage.ru_utime + usage.ru_stime, timed_out


def _kill_uid(uid: int, patience: float = 5.0) -> None:
    """Kill every process of the run's private uid, including ones that left the process group
    (setsid) or outlived a killed bwrap (the uid change cleared their parent-death signal)."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        pids = list(_pids_of_uid(uid))
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.01)


def _pids_of_uid(uid: int):
    """Live (non-zombie) processes whose real uid is `uid`."""
    wanted = str(uid).encode()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status", "rb") as f:
                fields = dict(line.split(b":", 1) for line in f if b":" in line)
        except OSError:  # the process ended meanwhile
            continue
        # Zombies cannot be killed; whoever inherited them reaps them.
        if fields[b"Uid"].split()[0] == wanted and fields[b"State"].split()[0] not in (b"Z", b"X"):
            yield int(name)


def _head(f, limit: int) -> tuple[str, bool]:
    size = os.fstat(f.fileno()).st_size
    f.seek(0)
    data = f.read(limit * 4)  # enough bytes for `limit` characters of any UTF-8
    text = data.decode("utf-8", "replace")
    if size <= len(data) and len(text) <= limit:
        return text, False
    head = text[:limit]
    more = size - len(head.encode("utf-8", "replace"))
    return f"{head}\n... [output truncated: {more} more bytes]", True


def _tail(f, size: int = 2048) -> str:
    f.seek(max(0, os.fstat(f.fileno()).st_size - size))
    return f.read().decode("utf-8", "replace")
