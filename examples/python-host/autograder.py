"""An autograder: grades untrusted Python submissions, each in a fresh sandbox.

    PYTHONPATH=build/python /usr/bin/python3 examples/python-host/autograder.py [submission.py ...]

With no arguments it grades every file in autograder/submissions/.

The assignment: write ``top_customers(n)``, returning the names of the n
customers with the highest total of their orders (highest first, ties by
name), using ``terrarium.host.rows("orders")`` (each row: id, customer_id,
total) and ``terrarium.host.lookup(customer_id)`` (id, name, city). The same
data is in /data/orders.csv and /data/customers.csv, read-only.

Output: one JSON object per line, one per submission, in the order given:

    {"submission": "correct.py", "status": "passed", "passed": 4, "total": 4,
     "details": [{"test": "the top customer", "status": "pass"}, ...], "error": null}

status: "passed" (every test), "failed" (a wrong answer), "error" (the
submission raised, loading or in a test), "timeout", "memory", "output" (a
limit was hit; the run's details are lost with it) or "crashed" (any other
sandbox failure). A detail's status is "pass", "fail" (with "got" and
"expected") or "error" (with "error": {"type", "message"}); "output" holds
what the submission printed. A submission that raises while it is loaded has
one detail, "load". The exit status is 0 once every submission is
graded, whatever the grades.
"""
import argparse
import contextlib
import csv
import glob
import json
import os
import sqlite3
import sys

import terrarium

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "autograder")
DATA_DIR = os.path.join(HERE, "data")
# The tests (expected answers included) live outside the mounted directory:
# a submission must not be able to read them.
TESTS_FILE = os.path.join(HERE, "tests.json")
HARNESS_FILE = os.path.join(HERE, "harness.py")
LIMITS = terrarium.Limits(timeout=2.0, memory="128M", output="1M")


def _cell(text):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def load_database(data_dir):
    """An in-memory SQLite database with a table per CSV file of data_dir
    (standing in for the real database an autograder would serve rows from)."""
    # check_same_thread=False: host functions run on whichever thread called the guest.
    db = sqlite3.connect(":memory:", check_same_thread=False)
    for path in sorted(glob.glob(os.path.join(data_dir, "*.csv"))):
        table = os.path.splitext(os.path.basename(path))[0]
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader)
            rows = [[_cell(cell) for cell in row] for row in reader]
        db.execute('CREATE TABLE "%s" (%s)' % (table, ", ".join('"%s"' % column for column in header)))
        db.executemany('INSERT INTO "%s" VALUES (%s)' % (table, ", ".join("?" * len(header))), rows)
    return db


def host_functions(db):
    """The guest's only way to the database: two functions that serve rows.
    The guest never sends SQL, so it reads what these return and nothing else."""
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def query(sql, parameters=()):
        cursor = db.execute(sql, parameters)
        columns = [column[0] for column in cursor.description]
        return [dict(zip(columns, row)) for row in cursor]

    def rows(table, limit=None):
        # The table name goes into the SQL text, so only known names pass.
        if table not in tables:
            raise KeyError("no table %r (tables: %s)" % (table, ", ".join(sorted(tables))))
        if limit is None:
            return query('SELECT * FROM "%s" ORDER BY rowid' % table)
        if type(limit) is not int or limit < 0:
            raise ValueError("limit must be a non-negative int, not %r" % (limit,))
        return query('SELECT * FROM "%s" ORDER BY rowid LIMIT ?' % table, (limit,))

    def lookup(key):
        """The customer whose id is key, or None."""
        found = query("SELECT * FROM customers WHERE id = ?", (key,))
        return found[0] if found else None

    return [rows, lookup]


def make_pool(data_dir):
    """A pool of sandboxes in the state of one that has imported the harness.
    Each submission gets a copy made from the snapshot: nothing one submission
    does (globals, monkey-patching, half-finished state after a timeout) is
    seen by the next."""
    sandbox = terrarium.Sandbox(mounts=[terrarium.Mount(data_dir, "/data")],  # read-only
                                limits=LIMITS, functions=host_functions(load_database(data_dir)))
    with open(HARNESS_FILE, encoding="utf-8") as f:
        sandbox.exec(f.read())  # imports (contextlib, json, ...) paid once, here
    return terrarium.Pool(sandbox.snapshot())


def _short(value, limit=300):
    text = json.dumps(value)
    return value if len(text) <= limit else text[:limit] + "..."


def grade(pool, path, tests):
    result = {"submission": os.path.basename(path), "status": None, "passed": 0,
              "total": len(tests), "details": [], "error": None}
    with open(path, encoding="utf-8", errors="replace") as f:
        source = f.read()
    # The guest gets the calls to make, never the expected answers (see harness.py).
    request = {"source": source, "filename": result["submission"],
               "tests": [{"name": t["name"], "call": t["call"], "args": t["args"]} for t in tests]}
    try:
        # A pooled sandbox, reset to the snapshot when the block ends.
        with pool.sandbox() as sandbox:
            report = sandbox.call("grade", request)
    except terrarium.TimeLimitExceeded as error:
        return dict(result, status="timeout", error={"type": "TimeLimitExceeded", "message": str(error)})
    except terrarium.MemoryLimitExceeded as error:
        return dict(result, status="memory", error={"type": "MemoryLimitExceeded", "message": str(error)})
    except terrarium.OutputLimitExceeded as error:
        return dict(result, status="output", error={"type": "OutputLimitExceeded", "message": str(error)})
    except terrarium.GuestError as error:
        # The harness re-raises MemoryError (an allocation the limit refused);
        # anything else escaping it means the submission broke the harness.
        status = "memory" if error.type == "MemoryError" else "error"
        return dict(result, status=status, error={"type": error.type, "message": error.message})
    except terrarium.Error as error:  # a trap (e.g. the C stack overflowed), ...
        return dict(result, status="crashed", error={"type": type(error).__name__, "message": str(error)})

    if report.get("load_error"):
        return dict(result, status="error", error=report["load_error"],
                    details=[{"test": "load", "status": "error", "error": report["load_error"],
                              "output": report.get("output", "")}])
    outcomes = report.get("results")
    if not isinstance(outcomes, list) or len(outcomes) != len(tests):
        # The guest's answer is as untrusted as the rest of it.
        return dict(result, status="error", error={"type": "BadReport", "message": "the harness's report "
                                                   "does not match the tests (did the submission patch it?)"})
    for test, outcome in zip(tests, outcomes):
        detail = {"test": test["name"]}
        if not isinstance(outcome, dict) or ("value" not in outcome and "error" not in outcome):
            detail.update(status="error", error={"type": "BadReport", "message": "malformed outcome"})
        elif "error" in outcome:
            detail.update(status="error", error=outcome["error"])
        elif outcome["value"] == test["expected"]:  # compared here, on the host
            detail.update(status="pass")
            result["passed"] += 1
        else:
            detail.update(status="fail", got=_short(outcome["value"]), expected=test["expected"])
        if isinstance(outcome, dict) and outcome.get("output"):
            detail["output"] = outcome["output"]
        result["details"].append(detail)

    errors = [d["error"] for d in result["details"] if d["status"] == "error"]
    if result["passed"] == len(tests):
        result["status"] = "passed"
    elif errors:
        result.update(status="error", error=errors[0])
    else:
        result["status"] = "failed"
    return result


@contextlib.contextmanager
def _results_stream():
    """Where the JSON lines go: this process's stdout, with the guest kept off it.

    The guest's stdout is this process's file descriptor 1. The harness
    captures what a submission prints, but os.write(1, ...) goes around it and
    would land among the JSON lines (up to the output limit). So while grading,
    fd 1 is /dev/null and the results go to a copy of the real one."""
    sys.stdout.flush()
    results = os.fdopen(os.dup(1), "w", encoding="utf-8")
    silenced = os.open(os.devnull, os.O_WRONLY)
    os.dup2(silenced, 1)
    os.close(silenced)
    try:
        yield results
    finally:
        results.flush()
        os.dup2(results.fileno(), 1)
        results.close()


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Grade Python submissions to the top_customers assignment, each in a fresh "
                    "sandbox; prints one JSON object per submission per line.")
    parser.add_argument("submissions", nargs="*", metavar="submission.py",
                        help="files to grade (default: every .py in %s)"
                        % os.path.relpath(os.path.join(HERE, "submissions")))
    args = parser.parse_args(argv)
    paths = args.submissions or sorted(glob.glob(os.path.join(HERE, "submissions", "*.py")))
    for path in paths:
        if not os.path.isfile(path):
            parser.error("no such file: %s" % path)
    with open(TESTS_FILE, encoding="utf-8") as f:
        tests = json.load(f)
    with _results_stream() as results:
        pool = make_pool(DATA_DIR)
        for path in paths:
            print(json.dumps(grade(pool, path, tests)), file=results, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
