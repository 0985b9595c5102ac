"""tools.session: a sandboxed program kept running across requests. The program here is a small
Python loop (real processes, the real sandbox); the Dafny server on top of it is tested in
test_program_verifiers.py."""

import os
import socket
import sys
import threading

import pytest

from tools.sandbox import SandboxLimits, isolation_available
from tools.session import SandboxSession, SessionPool

LOOP = r"""
import socket, sys, time
served = 0
for line in sys.stdin:
    served += 1
    word = line.strip()
    if word == "count":
        print(f"served {served} END", flush=True)
    elif word == "write":
        try:
            open("/etc/plait_session_probe", "w").write("x")
            print("wrote END", flush=True)
        except OSError:
            print("refused END", flush=True)
    elif word.startswith("net "):
        try:
            socket.create_connection(("127.0.0.1", int(word.split()[1])), timeout=2)
            print("connected END", flush=True)
        except OSError:
            print("offline END", flush=True)
    elif word == "hang":
        time.sleep(600)
    elif word == "flood":
        print("x" * 1_000_000, flush=True)
    elif word == "quit":
        sys.exit(0)
"""


def session(**limits) -> SandboxSession:
    return SandboxSession([sys.executable, "-c", LOOP], SandboxLimits(**limits))


def running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def test_one_process_answers_request_after_request():
    s = session()
    try:
        replies = [s.request("count\n", "END", 10) for _ in range(3)]
        assert [r.text.strip() for r in replies] == ["served 1 END", "served 2 END", "served 3 END"]  # state kept: one process
        assert all(r.ok for r in replies) and s.alive
    finally:
        s.close()
    assert not s.alive


def test_a_session_is_sandboxed_like_a_run():
    assert isolation_available() == "bwrap"  # `make test` installs bubblewrap
    s = session()
    listener = socket.create_server(("127.0.0.1", 0))  # on the host's loopback, which the session must not reach
    try:
        assert s.request("write\n", "END", 10).text.strip() == "refused END"
        assert s.request(f"net {listener.getsockname()[1]}\n", "END", 10).text.strip() == "offline END"
    finally:
        s.close()
        listener.close()
    assert not os.path.exists("/etc/plait_session_probe")


def test_a_reply_that_does_not_come_in_time_ends_the_session_and_everything_in_it():
    s = session()
    leader = s._proc.pid
    reply = s.request("hang\n", "END", 1.0)
    assert reply.status == "timeout" and not reply.ok and 1.0 <= reply.seconds < 10
    assert not s.alive and not running(leader)
    assert s.request("count\n", "END", 5).status == "ended"  # a closed session answers nothing


@pytest.mark.parametrize("word, status", [("flood", "output_limit"), ("quit", "ended")])
def test_a_flood_or_an_exit_ends_the_session(word, status):
    s = session(max_output_chars=1000)
    reply = s.request(f"{word}\n", "END", 10)
    assert reply.status == status and not s.alive
    assert len(reply.text) <= 4 * 1000 + 65536  # read stops at the limit, not at the flood's end


def test_a_pool_gives_each_thread_its_own_session_and_replaces_a_dead_one():
    pool = SessionPool(session, size=2)
    try:
        inside, both = [], threading.Barrier(2)

        def use():
            with pool.session() as s:
                both.wait(timeout=30)  # both held at once: they cannot be one session
                inside.append(s)
                assert s.request("count\n", "END", 10).ok

        threads = [threading.Thread(target=use) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len({id(s) for s in inside}) == 2
        with pool.session() as s:
            s.request("quit\n", "END", 10)  # dies while in use
        with pool.session() as a, pool.session() as b:
            assert a.alive and b.alive and a.request("count\n", "END", 10).ok
    finally:
        pool.close()
    assert not any(s.alive for s in inside)
