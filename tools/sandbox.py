"""Run untrusted work in a separate, resource-limited and (where possible) isolated process:
model-written Python (`run_python`) and any other command on model-written input, such as a program
checker on a model-written proof (`run_command`). Both go through one implementation.

Every run gets a fresh scratch directory (its cwd, HOME and TMPDIR) holding its input files, an
environment built from nothing (no variable of the parent's unless the caller passes it), and these
limits, set inside the sandbox by a small launcher before the program starts: RLIMIT_CPU, RLIMIT_AS,
RLIMIT_FSIZE (also caps stdout/stderr, which go to files), RLIMIT_NPROC and no core dumps; plus a
wall-clock timeout after which everything the run started is killed. What else holds depends on the
isolation found at the first call (measured on Debian 12, kernel 6.x, bubblewrap 0.8, util-linux 2.38):

bwrap (preferred)
    / read-only. The scratch dir lives on the run's private /tmp, a tmpfs of `disk_mb` (a write past
    it fails with ENOSPC and the run's status is "disk_limit"), so a run writes nothing to the host's
    disk and its files vanish with its mount namespace, however deep or locked down it left them. The
    parent's home and any directory other users cannot search (e.g. /root) are hidden behind empty
    read-only tmpfs, with only the Python installation and the paths a caller exposes re-exposed
    read-only. Own network namespace (no network at all, not even the host's loopback), own
    pid/ipc/uts namespaces: the run ends with all its processes.
    Process limit: as root the code runs as a fresh random uid (privileged bwrap without a user
    namespace, the launcher then drops to it), because a user namespace still maps the code to
    kernel uid 0, which RLIMIT_NPROC never limits (measured: 3000 of 3000 forks succeeded). With
    the fresh uid a fork bomb gets EAGAIN after max_processes and the run ends in < 0.1 s. As
    non-root, bwrap --unshare-all creates a user namespace and RLIMIT_NPROC counts only the
    sandbox's processes (measured: EAGAIN after 30 forks). The code cannot raise its limits.
    RLIMIT_NPROC counts threads too: a multi-threaded checker (Dafny on mono) needs a larger
    max_processes than model code.
unshare (bwrap missing or not working)
    Non-root: `unshare --user --map-root-user --net --pid --fork --kill-child`: no network, own
    pid namespace (the run ends with all its processes), RLIMIT_NPROC per user namespace
    (measured: EAGAIN after 29 forks). No filesystem isolation: the code reads and writes what the
    parent user can (measured: wrote /var/tmp), and the scratch dir is on the host's disk, bounded
    per file by RLIMIT_FSIZE but not in total (disk_mb is not enforced). As root the same is tried
    as a fresh uid, which works only if any uid can read the interpreter (not for a pyenv under
    /root); otherwise `unshare --net --pid --fork --kill-child` as root: no network and clean
    teardown, but no process limit (measured: 3000 of 3000 forks; only the wall timeout stops a
    fork bomb) and the code can write anywhere as root.
none
    Only the rlimits and a kill of the process group at the end: full network, the parent user's
    filesystem access, no disk quota, and processes that call setsid() outlive the run (measured).
    RLIMIT_NPROC as non-root counts all of that user's processes and threads, so the code cannot
    fork at all if the user already runs max_processes of them; as root it holds only with the
    fresh-uid drop (interpreter readable by any uid; leftover processes of that uid are then killed
    too), else not at all.

Without bwrap the scratch dir is on the host and `remove_tree` deletes it, whatever the code did to it.
Root without the uid drop can raise its own limits only if it holds CAP_SYS_RESOURCE. Python code runs
under `python -s -B -u` rather than -I, since -I would also drop PYTHONHASHSEED=0; the environment
is built from scratch anyway. A signal death is reported as exit_code = -signo; behind bwrap or
unshare an exit status of 129..255 is indistinguishable from one. Needs Linux >= 5.3 (pidfd_open).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import grp
import os
import pwd
import random
import secrets
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

from plait.options import options

CODE_FILE = "solution.py"
SCRATCH_PREFIX = "plait-sandbox-"
_MIB = 1024 * 1024
# Sandboxed runs as root get a random uid from here: RLIMIT_NPROC is counted per uid system-wide,
# so a fresh uid gives each run its own process budget (and owns no files on the machine).
_UID_FIRST, _UID_LAST = 1 << 24, (1 << 31) - 1
# Less free space than this on the scratch tmpfs when a run fails means the quota stopped it
# (a write that does not fit fills the last pages before ENOSPC: measured 0 bytes left).
_DISK_FULL_BYTES = 64 * 1024
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

# Runs inside the sandbox (never in the parent) and then execs the program. Limits are applied here
# rather than in a preexec_fn: preexec_fn is unsafe in a threaded parent, and RLIMIT_NPROC must be
# set after bwrap/unshare created the user namespace so it counts only this sandbox's processes.
_LAUNCHER = r"""
import os, resource, sys

cpu, mem, fsize, nproc, uid, report = map(int, sys.argv[1:7])
argv = sys.argv[7:]
for res, soft, hard in ((resource.RLIMIT_CPU, cpu, cpu + 1), (resource.RLIMIT_AS, mem, mem),
                        (resource.RLIMIT_FSIZE, fsize, fsize), (resource.RLIMIT_NPROC, nproc, nproc),
                        (resource.RLIMIT_CORE, 0, 0)):
    cap = resource.getrlimit(res)[1]
    if cap != resource.RLIM_INFINITY:
        soft, hard = min(soft, cap), min(hard, cap)
    resource.setrlimit(res, (soft, hard))
if uid >= 0:  # privileged bwrap: give the scratch dir bwrap made to the run's private uid, become it
    for name in (".", *os.listdir(".")):
        os.chown(name, uid, uid)
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)

if os.getpid() == 1:
    # We are the init of the sandbox's pid namespace (bwrap --as-pid-1, unshare --pid). Init
    # ignores default-action signals such as SIGXCPU, so run the program in a child, reap orphans,
    # and report the end as bwrap does (128 + signal). When we exit the kernel kills the namespace
    # and our parent sees us exit only after all its processes are gone.
    child = os.fork()
    if child:
        while True:
            pid, status = os.wait()
            if pid == child:
                break
        if report >= 0:  # the scratch tmpfs's free bytes, to tell a full quota from other failures
            free = os.statvfs(".")
            os.write(report, str(free.f_bavail * free.f_frsize).encode())
        code = os.waitstatus_to_exitcode(status)
        os._exit(code if code >= 0 else 128 - code)

os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # the report and input-file descriptors are not the program's
try:
    os.execvp(argv[0], argv)
except OSError as e:
    sys.stderr.write(f"{argv[0]}: {e.strerror}\n")
    os._exit(127)
"""

# The program run_python starts: the code file, run like a notebook cell.
_PYTHON = r"""
import ast, sys, traceback, types

path = sys.argv[1]
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
_PYTHON_ENV = {
    "PYTHONHASHSEED": "0",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "MPLBACKEND": "Agg",
}


@options
class SandboxLimits:
    """What one run may use: the `[sandbox]` section of plait.toml, and what callers pass."""

    timeout: Annotated[float, Field(gt=0, le=600, description="wall seconds")] = 10.0
    cpu_seconds: Annotated[int, Field(ge=1, le=3600)] = 10
    memory_mb: Annotated[int, Field(ge=128, description="address space")] = 1024
    file_size_mb: Annotated[int, Field(ge=1, description="largest file written")] = 16
    max_processes: Annotated[int, Field(ge=1)] = 32
    max_output_chars: Annotated[int, Field(ge=100, description="stdout and stderr kept, each")] = 4000
    disk_mb: Annotated[int, Field(ge=1, description="scratch directory quota, files given to the run included (a tmpfs under bubblewrap)")] = 64


@dataclass(frozen=True)
class ExecResult:
    stdout: str
    stderr: str
    exit_code: int | None
    status: str  # ok | error | timeout | cpu_limit | memory | output_limit | disk_limit | killed
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


@dataclass(frozen=True)
class _Job:
    argv: tuple[str, ...]
    files: Mapping[str, bytes]
    env: Mapping[str, str]
    expose: tuple[str, ...]


def run_python(code: str, limits: SandboxLimits | None = None, *, stdin: str = "") -> ExecResult:
    """Run `code` as a Python program in a fresh scratch directory and report what happened."""
    if not isinstance(code, str):
        raise ValueError(f"code must be a str, got {type(code).__name__}")
    return _execute(_python_job(code), _checked(limits, stdin), stdin, _plan())


def run_command(argv: Sequence[str], files: Mapping[str, str | bytes] | None = None,
                limits: SandboxLimits | None = None, *, stdin: str = "", env: Mapping[str, str] | None = None,
                expose: Sequence[str] = ()) -> ExecResult:
    """Run `argv` (argv[0] found on the sandbox's PATH unless absolute) in a fresh scratch directory
    holding `files` (plain file names -> contents) and report what happened.

    `env` adds variables to the sandbox's own few; `expose` names paths the program reads that may
    sit under a directory the sandbox hides (a toolchain in a home directory), made visible read-only."""
    return _execute(_command_job(argv, files, env, expose), _checked(limits, stdin), stdin, _plan())


def _command_job(argv: Sequence[str], files: Mapping[str, str | bytes] | None, env: Mapping[str, str] | None,
                 expose: Sequence[str]) -> _Job:
    if isinstance(argv, str) or not argv or not all(isinstance(a, str) for a in argv):
        raise ValueError(f"argv must be a non-empty sequence of str, got {argv!r}")
    contents = {}
    for name, content in (files or {}).items():
        if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\0" in name:
            raise ValueError(f"file names must be plain names without '/', got {name!r}")
        if not isinstance(content, (str, bytes)):
            raise ValueError(f"the contents of {name!r} must be str or bytes, got {type(content).__name__}")
        contents[name] = content.encode("utf-8") if isinstance(content, str) else content
    extra = dict(env or {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in extra.items()):
        raise ValueError("env must map str to str")
    return _Job(tuple(argv), contents, extra, tuple(os.path.realpath(p) for p in expose))


def isolation_available() -> str:
    """The isolation run_python and run_command use on this machine: "bwrap", "unshare" or "none"."""
    return _plan().isolation


def _checked(limits: SandboxLimits | None, stdin: str) -> SandboxLimits:
    if not isinstance(stdin, str):
        raise ValueError(f"stdin must be a str, got {type(stdin).__name__}")
    limits = SandboxLimits() if limits is None else limits
    if not isinstance(limits, SandboxLimits):
        raise ValueError(f"limits must be a SandboxLimits, got {type(limits).__name__}")
    return limits


def _python_job(code: str) -> _Job:
    argv = (sys.executable, "-s", "-B", "-u", "-c", _PYTHON, CODE_FILE)
    return _Job(argv, {CODE_FILE: code.encode("utf-8")}, _PYTHON_ENV, ())


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
            result = _execute(_python_job("6 * 7"), SandboxLimits(), "", plan)
        except OSError:
            continue
        if result.ok and result.stdout == "42\n":
            return plan
    return candidates[-1]


def _execute(job: _Job, limits: SandboxLimits, stdin: str, plan: _Plan) -> ExecResult:
    uid = _fresh_uid() if plan.drop_uid else None
    bwrap = plan.isolation == "bwrap"
    scratch = _scratch(job, plan, uid)
    try:
        with contextlib.ExitStack() as stack:
            def temporary(data: bytes = b""):
                f = stack.enter_context(tempfile.TemporaryFile())
                f.write(data)
                f.seek(0)
                return f

            fin, fout, ferr = temporary(stdin.encode("utf-8")), temporary(), temporary()
            # bwrap copies each input file from a descriptor into the tmpfs (--file), and the
            # launcher reports the tmpfs's free space at the end through `report`.
            inputs = {name: temporary(data).fileno() for name, data in job.files.items()} if bwrap else {}
            report = temporary() if bwrap else None
            fsize = limits.file_size_mb * _MIB
            start = time.monotonic()
            # Output goes to files, not pipes: RLIMIT_FSIZE bounds them, never the parent's memory.
            proc = _popen(job, limits, plan, scratch, uid, inputs, report.fileno() if report else -1,
                          stdin=fin, stdout=fout, stderr=ferr)
            wait_status, cpu, timed_out = _wait(proc, limits.timeout, uid, plan.isolation != "none")
            seconds = time.monotonic() - start
            stdout, cut_out = _head(fout, limits.max_output_chars)
            stderr, cut_err = _head(ferr, limits.max_output_chars)
            full = max(os.fstat(fout.fileno()).st_size, os.fstat(ferr.fileno()).st_size) >= fsize
            tail = _tail(ferr)
            free = _head(report, 32)[0] if report else ""  # the launcher wrote through the shared offset
    finally:
        if not bwrap:
            remove_tree(scratch)

    exit_code = None if timed_out else os.waitstatus_to_exitcode(wait_status)
    if exit_code is not None and exit_code > 128 and plan.isolation != "none":
        # bwrap's init and our launcher (as pid-namespace init) report a signal as 128 + signo;
        # a program calling sys.exit(129..255) is indistinguishable and reads as a signal too.
        exit_code = 128 - exit_code
    signo = -exit_code if exit_code is not None and exit_code < 0 else 0
    last_line = tail.strip().splitlines()[-1] if tail.strip() else ""
    if timed_out:
        status = "timeout"
    elif full or signo == signal.SIGXFSZ:
        status = "output_limit"
    elif exit_code != 0 and free.isdigit() and int(free) < _DISK_FULL_BYTES:
        status = "disk_limit"
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


def _scratch(job: _Job, plan: _Plan, uid: int | None) -> str:
    """The run's scratch dir: behind bwrap a path that exists only inside the sandbox (on its
    private tmpfs /tmp, where bwrap puts the files); otherwise a host dir holding the files."""
    return f"/tmp/{SCRATCH_PREFIX}{secrets.token_hex(6)}" if plan.isolation == "bwrap" else _host_scratch(job.files, uid)


def _popen(job: _Job, limits: SandboxLimits, plan: _Plan, scratch: str, uid: int | None, inputs: dict[str, int],
           report: int, **streams) -> subprocess.Popen:
    """Start the job's program in the sandbox: the launcher (limits set inside, then `uid` taken)
    wrapped by the plan's isolation, in a session of its own. `inputs` and `report` are the
    descriptors bwrap copies files from and the launcher reports free space to (-1: none)."""
    bwrap = plan.isolation == "bwrap"
    kwargs = {"pass_fds": (*inputs.values(), *([report] if report >= 0 else []))} if bwrap else {"cwd": scratch}
    if uid is not None and not bwrap:
        kwargs.update(user=uid, group=uid, extra_groups=[])
    launcher = [sys.executable, "-I", "-S", "-B", "-c", _LAUNCHER, str(limits.cpu_seconds), str(limits.memory_mb * _MIB),
                str(limits.file_size_mb * _MIB), str(limits.max_processes), str(uid if uid is not None and bwrap else -1),
                str(report), *job.argv]
    command = _wrap(plan, scratch, inputs, limits.disk_mb * _MIB, job.expose, launcher)
    return subprocess.Popen(command, env=_env(scratch, job.env), start_new_session=True, **streams, **kwargs)


def _host_scratch(files: Mapping[str, bytes], uid: int | None) -> str:
    """A scratch dir on the host disk holding `files`, owned by the run's uid if it has one."""
    scratch = tempfile.mkdtemp(prefix=SCRATCH_PREFIX)
    for name, data in files.items():
        with open(os.path.join(scratch, name), "wb") as f:
            f.write(data)
    if uid is not None:
        for name in (".", *files):
            os.chown(os.path.join(scratch, name), uid, uid)
    return scratch


def _wrap(plan: _Plan, scratch: str, inputs: dict[str, int], disk_bytes: int, expose: tuple[str, ...],
          launcher: list[str]) -> list[str]:
    if plan.isolation == "bwrap":
        if plan.drop_uid:
            # Privileged bwrap without a user namespace: a user namespace would still map the code
            # to kernel uid 0, which RLIMIT_NPROC never limits. The launcher drops to a fresh uid,
            # which clears all capabilities; bwrap's no_new_privs keeps exec from regaining any.
            ns = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
        else:
            ns = ["--unshare-all"]
        files = [arg for name, fd in inputs.items() for arg in ("--file", str(fd), f"{scratch}/{name}")]
        return [plan.tool, *ns, "--as-pid-1", "--die-with-parent", "--new-session", "--ro-bind", "/", "/",
                *_masks(expose, disk_bytes), "--dir", scratch, *files, "--chdir", scratch,
                "--dev", "/dev", "--proc", "/proc", "--", *launcher]
    if plan.isolation == "unshare":
        userns = ["--user", "--map-root-user"] if plan.drop_uid or os.geteuid() != 0 else []
        # --pid/--kill-child: killing unshare takes every process of the run down with it.
        return [plan.tool, *userns, "--net", "--pid", "--fork", "--kill-child", "--", *launcher]
    return launcher


@functools.lru_cache(maxsize=64)
def _masks(expose: tuple[str, ...], disk_bytes: int) -> tuple[str, ...]:
    """bwrap arguments giving the run a private /tmp of `disk_bytes` and hiding the parent's home and
    unsearchable directories (e.g. /root) behind empty read-only tmpfs, re-exposing read-only only
    the Python installation that lives under them (a venv may well sit under /tmp or a home) and
    the paths in `expose`."""
    needed = {os.path.realpath(p) for p in (
        sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix,
        os.path.dirname(sys.executable), os.path.dirname(os.path.realpath(sys.executable)), *expose)
        if os.path.exists(p)}  # bwrap refuses to bind a missing path (a stale LEAN_PATH entry, say)
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
    args = []
    for m in sorted(masked):
        # /tmp is the run's writable disk (world-writable, as /tmp is, for the dropped uid).
        args += ["--size", str(disk_bytes), "--perms", "1777", "--tmpfs", m] if m == "/tmp" else ["--tmpfs", m]
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
    # Last, so the directories above could still be made: nothing can be written to the hidden ones.
    args += [arg for m in sorted(masked - {"/tmp"}) for arg in ("--remount-ro", m)]
    return tuple(args)


def _env(scratch: str, extra: Mapping[str, str]) -> dict[str, str]:
    # Built from nothing so no parent variable (API keys, tokens) reaches the program.
    return {
        "PATH": f"{os.path.dirname(sys.executable)}:/usr/local/bin:/usr/bin:/bin",
        "HOME": scratch,
        "TMPDIR": scratch,
        "LANG": "C.UTF-8",
        **extra,
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


def _wait(proc: subprocess.Popen, timeout: float, uid: int | None, namespaced: bool) -> tuple[int, float, bool]:
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
    # A wrapper (bwrap, unshare) that exited by itself did so after its pid namespace's init, and
    # so after every process of the run; otherwise some may be left (setsid, a killed wrapper).
    if uid is not None and (timed_out or not namespaced or os.WIFSIGNALED(status)):
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


def remove_tree(path: str) -> None:
    """Delete `path` and everything under it, however the run left it.

    shutil.rmtree recurses (1,100 nested directories made it raise RecursionError and leak the
    scratch dir) and skips what it cannot read. This walks holding one directory descriptor at a
    time (no recursion, no PATH_MAX), gives each directory u+rwx before reading it, and never
    follows a symlink. It runs once the run's processes are gone, so nothing moves meanwhile; if
    something did, climbing back through '..' would notice and raise."""
    path = os.path.abspath(path)
    try:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            os.unlink(path)
            return
    except FileNotFoundError:  # the code removed its own scratch dir
        return
    fd = os.open(os.path.dirname(path), _DIR_FLAGS)
    trail: list[tuple[str, tuple[int, int]]] = []  # each directory entered, and the one holding it
    name: str | None = os.path.basename(path)
    try:
        while True:
            if name is not None:
                child = _enter(fd, name)
                trail.append((name, _identity(fd)))
                os.close(fd)
                fd = child
            else:
                up = os.open("..", _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = up
                done, holder = trail.pop()
                if _identity(fd) != holder:
                    raise OSError(f"{path}: a directory moved while the tree was being removed")
                os.rmdir(done, dir_fd=fd)
                if not trail:
                    return
            name = _unlink_files(fd)
    finally:
        os.close(fd)


def _enter(parent: int, name: str) -> int:
    if os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode & stat.S_IRWXU != stat.S_IRWXU:
        os.chmod(name, stat.S_IRWXU, dir_fd=parent)  # a directory, and O_NOFOLLOW below refuses a swapped-in symlink
    return os.open(name, _DIR_FLAGS, dir_fd=parent)


def _unlink_files(fd: int) -> str | None:
    """Unlink the directory's non-directories up to its first subdirectory, and name that one
    (None once only the directory itself is left)."""
    with os.scandir(fd) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                return entry.name
            os.unlink(entry.name, dir_fd=fd)
    return None


def _identity(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


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
