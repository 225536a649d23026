"""The host-side binding (first part): Sandbox, host functions, exec, call, run,
limits and the error hierarchy, each error caused by a hostile guest.

    PYTHONPATH=build/python /usr/bin/python3 -m pytest python/tests
"""
import os
import subprocess
import sys
import threading
import time

import pytest

import terrarium

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def test_seed_demo_prints_33():
    result = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "python-host", "seed_demo.py")],
                            capture_output=True, text=True, timeout=60,
                            env=dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(terrarium.__file__))))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "33\n"


def test_exec_and_call_an_export():
    sandbox = terrarium.Sandbox()
    sandbox.exec("import terrarium\n@terrarium.export\ndef add(args):\n    return args['a'] + args['b']\n")
    assert sandbox.call("add", {"a": 2, "b": 40}) == 42
    assert sandbox.call("add", {"a": 10 ** 30, "b": 1}) == 10 ** 30 + 1


def test_host_functions_take_positional_keyword_and_single_arguments():
    seen = []

    def record(*args, **kwargs):
        seen.append((args, kwargs))
        return {"ok": True}

    sandbox = terrarium.Sandbox(functions=[record])
    sandbox.exec("import terrarium\n"
                 "terrarium.host.record('x')\n"
                 "terrarium.host.record(1, 2)\n"
                 "terrarium.host.record(a=1)\n"
                 "assert terrarium.host.record() == {'ok': True}\n")
    assert seen == [(("x",), {}), ((1, 2), {}), ((), {"a": 1}), ((), {})]


def test_a_raising_host_function_is_hosterror_in_the_guest_with_the_traceback_kept():
    sandbox = terrarium.Sandbox()

    @sandbox.host_function
    def lookup(key):
        raise KeyError("no row " + key)

    sandbox.exec("import terrarium\n"
                 "try:\n    terrarium.host.lookup('k1')\n"
                 "except terrarium.HostError as e:\n    MESSAGE = str(e)\n"
                 "@terrarium.export\ndef message(_):\n    return MESSAGE\n")
    assert sandbox.call("message") == "KeyError: 'no row k1'"  # no host paths or traceback
    assert "raise KeyError" in sandbox.host_traceback("lookup")


def test_a_non_json_result_is_a_typeerror_naming_the_value():
    sandbox = terrarium.Sandbox()

    @sandbox.host_function
    def odd():
        return {1, 2}

    with pytest.raises(terrarium.GuestError) as raised:
        sandbox.exec("import terrarium\nterrarium.host.odd()\n")
    assert "{1, 2}" in str(raised.value) and "not JSON" in str(raised.value)


def test_keyboardinterrupt_in_a_host_function_does_not_escape():
    sandbox = terrarium.Sandbox()

    @sandbox.host_function
    def stop():
        raise KeyboardInterrupt

    @sandbox.host_function
    def leave():
        raise SystemExit(4)

    # SystemExit is the guest's HostError; the host process does not exit.
    with pytest.raises(terrarium.GuestError) as raised:
        sandbox.exec("import terrarium\nterrarium.host.leave()\n")
    assert raised.value.type == "terrarium.HostError"
    assert "does not exit" in raised.value.message
    # KeyboardInterrupt (Ctrl-C while the host function ran) stops the guest
    # call, however the guest handles HostError, and reaches the caller.
    with pytest.raises(KeyboardInterrupt):
        sandbox.exec("import terrarium\nwhile True:\n    try:\n        terrarium.host.stop()\n"
                     "    except BaseException:\n        pass\n")
    assert sandbox.spent
    assert "raise KeyboardInterrupt" in sandbox.host_traceback("stop")


def test_guest_errors_carry_type_message_traceback():
    sandbox = terrarium.Sandbox()
    with pytest.raises(terrarium.GuestError) as raised:
        sandbox.exec("def f():\n    raise ValueError('bad value')\nf()\n")
    assert raised.value.type == "ValueError"
    assert raised.value.message == "bad value"
    assert "in f" in raised.value.traceback


def test_run_is_like_subprocess_run():
    sandbox = terrarium.Sandbox(env={"GREETING": "hi"})
    completed = sandbox.run("import os, sys\nprint(os.environ['GREETING'], sys.stdin.read())\n"
                            "print('warn', file=sys.stderr)\nsys.exit(3)", stdin=b"there")
    assert (completed.exit_code, completed.returncode) == (3, 3)
    assert completed.stdout == b"hi there\n"
    assert completed.stderr == b"warn\n"
    with pytest.raises(terrarium.CalledProcessError) as raised:
        sandbox.run("raise SystemExit(2)", check=True)
    assert raised.value.completed.exit_code == 2


def test_nothing_of_the_host_environment_passes():
    os.environ["TERRARIUM_SECRET"] = "s3cret"
    completed = terrarium.Sandbox().run("import os\nprint(sorted(os.environ))")
    assert b"TERRARIUM_SECRET" not in completed.stdout


def test_mounts_are_read_only_unless_writable(tmp_path):
    (tmp_path / "data.txt").write_text("rows")
    sandbox = terrarium.Sandbox(mounts=[terrarium.Mount(str(tmp_path), "/data")])
    assert sandbox.run("print(open('/data/data.txt').read())").stdout == b"rows\n"
    failed = sandbox.run("open('/data/new.txt', 'w')")
    assert failed.exit_code == 1 and b"Error" in failed.stderr
    assert not (tmp_path / "new.txt").exists()
    writable = terrarium.Sandbox(mounts=[terrarium.Mount(str(tmp_path), "/data", writable=True)])
    assert writable.run("open('/data/new.txt', 'w').write('x')").exit_code == 0
    assert (tmp_path / "new.txt").read_text() == "x"
    # Outside the mount: nothing.
    assert b"False" in sandbox.run("import os\nprint(os.path.exists('/etc/passwd'))").stdout


def test_runaway_loop_is_a_time_limit():
    sandbox = terrarium.Sandbox(limits=terrarium.Limits(timeout=0.3))
    started = time.monotonic()
    with pytest.raises(terrarium.TimeLimitExceeded) as raised:
        sandbox.exec("while True:\n    pass\n")
    assert isinstance(raised.value, TimeoutError)
    assert time.monotonic() - started < 10


def test_memory_bomb_stops_at_the_limit():
    sandbox = terrarium.Sandbox(limits=terrarium.Limits(memory="64M"))
    with pytest.raises((terrarium.GuestError, terrarium.MemoryLimitExceeded)) as raised:
        sandbox.exec("blocks = []\nwhile True:\n    blocks.append(bytearray(1 << 20))\n")
    if isinstance(raised.value, terrarium.GuestError):
        assert raised.value.type == "MemoryError"


def test_output_flood_keeps_the_partial_output():
    sandbox = terrarium.Sandbox(limits=terrarium.Limits(output="64K"))
    with pytest.raises(terrarium.OutputLimitExceeded) as raised:
        sandbox.run("while True:\n    print('x' * 1000)\n")
    assert 0 < len(raised.value.stdout) <= 64 * 1024


def test_deep_recursion_is_a_recursion_error_or_a_trap():
    sandbox = terrarium.Sandbox()
    with pytest.raises((terrarium.GuestError, terrarium.Trap)) as raised:
        sandbox.exec("import sys\nsys.setrecursionlimit(10 ** 6)\ndef f(n):\n    return f(n + 1)\nf(0)\n")
    if isinstance(raised.value, terrarium.GuestError):
        assert raised.value.type == "RecursionError"


def test_bad_configuration_is_a_configerror():
    with pytest.raises(terrarium.ConfigError):
        terrarium.Sandbox(mounts=[terrarium.Mount("/no/such/dir", "/data")])
    with pytest.raises(ValueError):
        terrarium.Sandbox(limits=terrarium.Limits(memory="lots"))
    with pytest.raises(terrarium.ConfigError):
        terrarium.Sandbox(mounts=["/tmp"])


def test_the_gil_is_released_while_the_guest_runs():
    # Python on the host keeps running while a guest computes (a guest that
    # held the GIL would leave this loop no turn until it ended). Timing
    # ratios are measured in bench/, not here.
    sandbox = terrarium.Sandbox()
    thread = threading.Thread(target=sandbox.exec, args=("n = 0\nfor i in range(5_000_000):\n    n += i\n",))
    thread.start()
    turns = 0
    while thread.is_alive():
        turns += 1
    thread.join()
    assert turns > 1000


def test_snapshot_gives_fresh_copies_and_a_pool_resets_between_calls():
    sandbox = terrarium.Sandbox()

    @sandbox.host_function
    def base():
        return 100

    sandbox.exec("import terrarium\nCOUNT = 0\n@terrarium.export\ndef bump(_):\n"
                 "    global COUNT\n    COUNT += 1\n    return COUNT + terrarium.host.base()\n")
    snapshot = sandbox.snapshot()
    assert snapshot.memory_bytes > 0
    first = snapshot.sandbox()
    assert first.call("bump") == 101
    assert first.call("bump") == 102          # one sandbox keeps its state
    assert snapshot.sandbox().call("bump") == 101  # a new copy does not see it
    pool = terrarium.Pool(snapshot, max_idle=2)
    assert [pool.call("bump") for _ in range(5)] == [101] * 5
    assert pool.idle >= 1
    with pool.sandbox() as held:
        assert [held.call("bump") for _ in range(3)] == [101, 102, 103]  # one sandbox
        held.exec("COUNT = 50")
        assert held.call("bump") == 151
    with pytest.raises(terrarium.ConfigError):
        held.call("bump")  # released
    with pool.sandbox() as again:
        assert again.call("bump") == 101  # reset into the pool


def test_a_host_function_calling_back_into_its_sandbox_gets_sandboxbusy():
    sandbox = terrarium.Sandbox()

    @sandbox.host_function
    def reenter():
        try:
            sandbox.call("noop")
        except terrarium.SandboxBusy:
            return "busy"
        return "entered"

    sandbox.exec("import terrarium\n@terrarium.export\ndef noop(_):\n    return 1\n"
                 "@terrarium.export\ndef outer(_):\n    return terrarium.host.reenter()\n")
    assert sandbox.call("outer") == "busy"
    assert sandbox.call("noop") == 1
