"""examples/python-host/autograder.py, run as a program: each kind of bad
submission gets its own status, and the grader's data is left as it was.

    PYTHONPATH=build/python /usr/bin/python3 -m pytest python/tests/test_autograder_example.py
"""
import hashlib
import json
import os
import subprocess
import sys

import pytest

import terrarium

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
EXAMPLE = os.path.join(ROOT, "examples", "python-host", "autograder.py")
DATA = os.path.join(ROOT, "examples", "python-host", "autograder", "data")
SUBMISSIONS = os.path.join(ROOT, "examples", "python-host", "autograder", "submissions")


def _autograder(*args):
    return subprocess.run([sys.executable, EXAMPLE, *args], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(terrarium.__file__))))


def _digests(directory):
    return {name: hashlib.sha256(open(os.path.join(directory, name), "rb").read()).hexdigest()
            for name in sorted(os.listdir(directory))}


@pytest.fixture(scope="module")
def graded():
    """Every submission graded once (the slow part: one of them runs into the time limit)."""
    before = _digests(DATA)
    completed = _autograder()
    assert completed.returncode == 0, completed.stderr
    results = [json.loads(line) for line in completed.stdout.splitlines()]
    return {result["submission"]: result for result in results}, before, _digests(DATA)


def test_every_submission_is_graded_once_in_order(graded):
    results, _, _ = graded
    assert list(results) == sorted(name for name in os.listdir(SUBMISSIONS) if name.endswith(".py"))
    for result in results.values():
        assert set(result) == {"submission", "status", "passed", "total", "details", "error"}
        assert result["total"] == 4


def test_the_correct_submission_passes_every_test(graded):
    result = graded[0]["correct.py"]
    assert (result["status"], result["passed"]) == ("passed", 4)
    assert [d["status"] for d in result["details"]] == ["pass"] * 4
    assert result["error"] is None


def test_a_wrong_answer_fails_some_tests_and_shows_what_it_got(graded):
    result = graded[0]["wrong_answer.py"]
    assert result["status"] == "failed"
    assert 0 < result["passed"] < result["total"]
    failed = [d for d in result["details"] if d["status"] == "fail"]
    assert failed and all("got" in d and "expected" in d for d in failed)
    assert failed[0]["got"] != failed[0]["expected"]


def test_an_infinite_loop_is_a_timeout(graded):
    result = graded[0]["infinite_loop.py"]
    assert (result["status"], result["passed"]) == ("timeout", 0)


def test_a_memory_bomb_stops_at_the_memory_limit(graded):
    result = graded[0]["memory_bomb.py"]
    assert (result["status"], result["passed"]) == ("memory", 0)
    assert result["error"]["type"] in ("MemoryLimitExceeded", "MemoryError")


def test_an_escape_fails_inside_the_guest_and_the_data_is_unchanged(graded):
    results, before, after = graded
    result = results["escape.py"]
    assert result["status"] in ("error", "failed") and result["passed"] == 0
    # /etc/passwd is not there at all; the write to /data was refused.
    assert "passwd" in result["error"]["message"]
    assert "could not change the data" in result["details"][0]["output"]
    assert after == before


def test_a_raising_submission_is_an_error_with_the_exception_type(graded):
    result = graded[0]["raises.py"]
    assert (result["status"], result["passed"]) == ("error", 0)
    assert result["error"]["type"] == "KeyError"
    assert "customer" in result["error"]["message"]
    assert {d["status"] for d in result["details"]} == {"error"}


def test_named_submissions_only_and_help(tmp_path):
    broken = tmp_path / "syntax.py"
    broken.write_text("def top_customers(n)\n    return []\n")
    # Writes straight to file descriptor 1, around the harness's capture:
    # it must not land among the JSON lines.
    noisy = tmp_path / "noisy.py"
    noisy.write_text("import os\nos.write(1, b'noise\\n')\n"
                     "def top_customers(n):\n    os.write(1, b'{\"not\": \"a result\"}\\n')\n    return []\n")
    completed = _autograder(os.path.join(SUBMISSIONS, "correct.py"), str(broken), str(noisy))
    assert completed.returncode == 0, completed.stderr
    correct, syntax, quiet = [json.loads(line) for line in completed.stdout.splitlines()]
    assert (correct["submission"], correct["status"]) == ("correct.py", "passed")
    assert (syntax["status"], syntax["error"]["type"]) == ("error", "SyntaxError")
    assert (quiet["submission"], quiet["status"], quiet["passed"]) == ("noisy.py", "failed", 1)
    assert "noise" not in completed.stdout
    usage = _autograder("--help")
    assert usage.returncode == 0 and "submission.py" in usage.stdout
