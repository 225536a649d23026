"""Host functions get the guest's arguments as a Python call passes them;
interrupt() from another thread, Ctrl-C and asyncio cancellation stop a
guest; output streams to callbacks; Snapshot.load; many calls do not grow.

    PYTHONPATH=build/python /usr/bin/python3 -m pytest python/tests
"""
import asyncio
import gc
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import terrarium

RUNAWAY = "while True:\n    pass\n"


def recorder():
    seen = []

    def record(*args, **kwargs):
        seen.append((args, kwargs))
        return len(seen)

    return seen, record


def test_arguments_arrive_as_the_guest_passed_them():
    seen, record = recorder()
    sandbox = terrarium.Sandbox(functions=[record])
    sandbox.exec("import terrarium\n"
                 "h = terrarium.host\n"
                 "h.record([1, 2])\n"
                 "h.record(1, 2)\n"
                 "h.record({'a': 1})\n"
                 "h.record(a=1)\n"
                 "h.record(None)\n"
                 "h.record()\n"
                 "h.record(1, [2], b={'c': None}, d=2 ** 100)\n"
                 "terrarium.call_host('record', (3, 4))\n")
    assert seen == [
        (([1, 2],), {}),
        ((1, 2), {}),
        (({"a": 1},), {}),
        ((), {"a": 1}),
        ((None,), {}),
        ((), {}),
        ((1, [2]), {"b": {"c": None}, "d": 2 ** 100}),
        (([3, 4],), {}),
    ]


def test_bytes_cross_both_ways_anywhere_in_the_values():
    sandbox = terrarium.Sandbox()

    @sandbox.host_function
    def shuffle(blob, items, tag=b""):
        assert type(blob) is bytes and type(items[1]) is bytes
        return {"reversed": blob[::-1], "items": [items[1], items[0]], "tag": bytearray(tag)}

    sandbox.exec("import terrarium\n"
                 "r = terrarium.host.shuffle(b'\\x00\\xffab', ['x', memoryview(b'\\x00y')], tag=bytearray(b'T'))\n"
                 "assert r == {'reversed': b'ba\\xff\\x00', 'items': [b'\\x00y', 'x'], 'tag': b'T'}, r\n"
                 "assert terrarium.host.shuffle(b'', ['', b'']) == {'reversed': b'', 'items': [b'', ''], 'tag': b''}\n")


def test_a_hostile_guest_sending_malformed_calls_gets_hosterror_and_the_host_lives():
    seen, record = recorder()
    sandbox = terrarium.Sandbox(functions=[record])
    sandbox.exec(
        "import _terrarium, terrarium\n"
        "FAILURES = []\n"
        "for frame in [b'no separator', b'{\"a\": 1}\\0', b'[[], {}, 3]\\0', b'[[1], []]\\0',\n"
        "              b'[[{\"\\\\u0000bytes\": 9}], {}]\\0abc', b'[[{\"\\\\u0000bytes\": -1}], {}]\\0',\n"
        "              b'[[], {}]\\0stray', b'\\xff\\xfe\\0', b'[[1], {\"a\": 1}' + b']' * 5 + b'\\0']:\n"
        "    try:\n"
        "        _terrarium.host_call('record', frame, _terrarium.KIND_BYTES)\n"
        "        FAILURES.append(None)\n"
        "    except terrarium.HostError as e:\n"
        "        FAILURES.append(str(e))\n"
        "@terrarium.export\ndef failures(_):\n    return FAILURES\n")
    failures = sandbox.call("failures")
    assert all(f is not None and "malformed" in f and "record" in f for f in failures), failures
    assert seen == []
    assert sandbox.call("failures") == failures  # the sandbox still answers


def test_host_functions_are_reentered_through_another_sandbox():
    # guest 0 -> host `relay` -> guest 1 -> host `relay` (the same Python
    # function, registered in each, active twice) -> guest 2 -> `relay`.
    depth = []
    sandboxes = [terrarium.Sandbox() for _ in range(3)]

    def relay(level):
        depth.append(level)
        if level >= 3:
            return level
        return sandboxes[level].call("down", level + 1) + 100

    code = "import terrarium\n@terrarium.export\ndef down(level):\n    return terrarium.host.relay(level)\n"
    for sandbox in sandboxes:
        sandbox.host_function(relay)
        sandbox.exec(code)
    assert sandboxes[0].call("down", 1) == 3 + 100 + 100
    assert depth == [1, 2, 3]
    # Back into a sandbox whose call is on the stack: SandboxBusy, not a hang.
    sandboxes[1].host_function(lambda: sandboxes[1].call("down", 9), name="again")
    sandboxes[1].exec("import terrarium\n@terrarium.export\ndef loop(_):\n"
                      "    try:\n        terrarium.host.again()\n    except terrarium.HostError as e:\n"
                      "        return str(e)\n")
    assert "SandboxBusy" in sandboxes[1].call("loop")


def wait_until_running(sandbox, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not sandbox.interrupt():
        assert time.monotonic() < deadline, "the call never started"
        time.sleep(0.005)


def test_interrupt_from_another_thread_stops_a_runaway_loop():
    sandbox = terrarium.Sandbox(limits=terrarium.Limits(timeout=120))
    assert sandbox.interrupt() is False  # nothing running: nothing happens
    stopper = threading.Thread(target=wait_until_running, args=(sandbox,))
    started = time.monotonic()
    stopper.start()
    with pytest.raises(terrarium.Interrupted):
        sandbox.exec(RUNAWAY)
    stopper.join()
    assert time.monotonic() - started < 60
    assert sandbox.spent
    with pytest.raises(terrarium.Error):
        sandbox.exec("x = 1")


def test_interrupt_stops_run_and_keeps_the_partial_output():
    sandbox = terrarium.Sandbox(limits=terrarium.Limits(timeout=120))
    stopper = threading.Thread(target=lambda: (time.sleep(1.0), wait_until_running(sandbox)))
    stopper.start()
    with pytest.raises(terrarium.Interrupted) as raised:
        sandbox.run("import sys\nprint('begun', flush=True)\n" + RUNAWAY)
    stopper.join()
    assert raised.value.stdout == b"begun\n"
    assert sandbox.run("print('again')").stdout == b"again\n"  # run() makes a fresh sandbox


def test_an_interrupted_pooled_sandbox_is_reset_into_the_pool():
    sandbox = terrarium.Sandbox(limits=terrarium.Limits(timeout=120))
    sandbox.exec("import terrarium\n@terrarium.export\ndef spin(_):\n    while True:\n        pass\n"
                 "@terrarium.export\ndef one(_):\n    return 1\n")
    pool = terrarium.Pool(sandbox.snapshot(), max_idle=2)
    with pool.sandbox() as held:
        stopper = threading.Thread(target=wait_until_running, args=(held,))
        stopper.start()
        with pytest.raises(terrarium.Interrupted):
            held.call("spin")
        stopper.join()
    assert pool.call("one") == 1


CTRL_C_CHILD = r"""
import sys, time, terrarium
sandbox = terrarium.Sandbox(limits=terrarium.Limits(timeout=120))
@sandbox.host_function
def nap():
    print("in host function", flush=True)
    time.sleep(60)
where = sys.argv[1]
code = "import terrarium\nterrarium.host.nap()\n" if where == "host" else "print('in guest', flush=True)\nwhile True:\n    pass\n"
try:
    if where == "run":
        sandbox.run(code, on_stdout=lambda b: (sys.stdout.write(b.decode()), sys.stdout.flush()))
    else:
        sandbox.exec(code)
except KeyboardInterrupt:
    print("KeyboardInterrupt", flush=True)
print("alive", sandbox.run("print(6 * 7)").stdout.decode().strip(), flush=True)
"""


@pytest.mark.parametrize("where", ["guest", "host", "run"])
def test_ctrl_c_raises_keyboardinterrupt_in_the_caller(where):
    child = subprocess.Popen([sys.executable, "-c", CTRL_C_CHILD, where], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        first = child.stdout.readline()
        assert first.startswith("in "), first + child.stderr.read()
        time.sleep(0.2)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert out.splitlines() == ["KeyboardInterrupt", "alive 42"], out + err
    assert child.returncode == 0


def test_cancelling_an_asyncio_task_interrupts_the_guest():
    async def main():
        sandbox = terrarium.Sandbox(limits=terrarium.Limits(timeout=120))
        sandbox.exec("import terrarium\n@terrarium.export\ndef double(x):\n    return 2 * x\n")
        assert await sandbox.acall("double", 21) == 42
        assert (await sandbox.arun("print('hi')")).stdout == b"hi\n"
        task = asyncio.ensure_future(sandbox.aexec(RUNAWAY))
        await asyncio.sleep(0.3)
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - started < 30
        assert sandbox.spent
        # Other tasks were served meanwhile and after.
        other = terrarium.Sandbox()
        await other.aexec("x = 1")
        return True

    assert asyncio.run(main())


def test_asyncio_calls_run_concurrently_and_pools_serve_acall():
    async def main():
        sandbox = terrarium.Sandbox()
        sandbox.exec("import terrarium, time\n@terrarium.export\ndef slow(x):\n"
                     "    time.sleep(0.3)\n    return x\n")
        pool = terrarium.Pool(sandbox.snapshot(), max_idle=4)
        started = time.monotonic()
        results = await asyncio.gather(*(pool.acall("slow", i) for i in range(4)))
        return results, time.monotonic() - started

    results, elapsed = asyncio.run(main())
    assert results == [0, 1, 2, 3]
    assert elapsed < 1.2 * 4 * 0.3  # not one after the other (the sleeps overlap)


def test_output_streams_to_callbacks_as_written():
    chunks = []
    errors = []
    sandbox = terrarium.Sandbox()
    completed = sandbox.run("import sys\nfor i in range(3):\n    print(i, flush=True)\n"
                            "print('oops', file=sys.stderr)\n",
                            on_stdout=chunks.append, on_stderr=errors.append)
    assert completed.exit_code == 0
    assert completed.stdout is None and completed.stderr is None
    assert chunks == [b"0\n", b"1\n", b"2\n"]
    assert b"".join(errors) == b"oops\n"

    def broken(_):
        raise RuntimeError("the consumer failed")

    with pytest.raises(RuntimeError, match="the consumer failed"):
        sandbox.run("print('x')", on_stdout=broken)
    with pytest.raises(terrarium.ConfigError):
        sandbox.run("print('x')", on_stdout="not callable")


def test_snapshot_save_and_load_with_host_functions(tmp_path):
    sandbox = terrarium.Sandbox(env={"MODE": "test"})

    @sandbox.host_function
    def scale(x, factor=1):
        return x * factor

    sandbox.exec("import os, terrarium\nBASE = 5\n@terrarium.export\ndef work(x):\n"
                 "    return [os.environ['MODE'], terrarium.host.scale(x + BASE, factor=10)]\n")
    path = tmp_path / "work.snapshot"
    sandbox.snapshot().save(str(path))

    def scale(x, factor=1):  # the host functions again, in the loading process
        return x * factor * 2

    loaded = terrarium.Snapshot.load(path, env={"MODE": "test"}, functions=[scale])
    assert loaded.sandbox().call("work", 1) == ["test", 120]
    assert terrarium.Pool(loaded).call("work", 2) == ["test", 140]
    with pytest.raises(terrarium.ConfigError, match="env"):
        terrarium.Snapshot.load(path, env={"MODE": "prod"})  # not the layout it was taken with
    with pytest.raises(terrarium.ConfigError, match="missing.snapshot"):
        terrarium.Snapshot.load(tmp_path / "missing.snapshot")


def rss_kib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_100000_calls_do_not_grow_memory_or_references():
    sandbox = terrarium.Sandbox()
    payload = {"user": "ada", "items": [1, 2, 3], "blob": "x" * 40}

    @sandbox.host_function
    def lookup(key):
        return {"key": key, "value": payload["items"]}

    sandbox.exec("import terrarium\n@terrarium.export\ndef echo(v):\n"
                 "    v['found'] = terrarium.host.lookup(v['user'])\n    return v\n")

    def burst(count):
        for _ in range(count):
            result = sandbox.call("echo", payload)
        assert result["found"] == {"key": "ada", "value": [1, 2, 3]}

    burst(10_000)  # warm-up: caches, allocator arenas
    gc.collect()
    rss_before, objects_before = rss_kib(), len(gc.get_objects())
    references_before = (sys.getrefcount(payload), sys.getrefcount(lookup), sys.getrefcount(None))
    burst(100_000)
    gc.collect()
    rss_after, objects_after = rss_kib(), len(gc.get_objects())
    assert (sys.getrefcount(payload), sys.getrefcount(lookup)) == references_before[:2]
    assert abs(sys.getrefcount(None) - references_before[2]) < 100
    assert objects_after - objects_before < 100
    if not os.environ.get("TERRARIUM_SANITIZED"):  # ASan holds freed memory in quarantine
        assert rss_after - rss_before < 4096, (rss_before, rss_after)  # KiB
