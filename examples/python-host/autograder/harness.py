"""The grading harness. It runs inside the sandbox: autograder.py execs it once,
then snapshots the sandbox, so every submission starts from it already loaded.

The host calls the export ``grade`` with
    {"source": CODE, "filename": NAME, "tests": [{"name": ..., "call": FUNCTION, "args": [...]}]}
and gets back
    {"load_error": null or {"type", "message"}, "output": TEXT,
     "results": [{"value": VALUE} or {"error": {"type", "message"}}, plus "output": TEXT]}

The harness reports what each call returned or raised; it never sees the
expected answers. The submission runs in this same interpreter and could read
anything the harness holds (its frames, its globals) or patch the harness
itself, so the answers stay on the host, which does the comparing.
"""
import contextlib
import io
import json

import terrarium

OUTPUT_KEPT = 2000  # characters of a submission's printed output kept per step


def _describe(error):
    kind = type(error)
    name = kind.__qualname__ if kind.__module__ == "builtins" else kind.__module__ + "." + kind.__qualname__
    return {"type": name, "message": str(error)[:500]}


def _run(step):
    """Runs step(), printed output captured: the guest's stdout is the host's,
    where a submission's prints would land among the grader's JSON lines."""
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            outcome = {"value": step()}
    except MemoryError:
        # The memory limit: it ends the grading, as the time limit does,
        # instead of counting as one test's exception.
        raise
    except BaseException as error:  # SystemExit and KeyboardInterrupt too: the submission's
        outcome = {"error": _describe(error)}
    outcome["output"] = buffer.getvalue()[:OUTPUT_KEPT]
    return outcome


def _plain(value):
    # A JSON round trip in the guest: what crosses is plain data, so an object
    # whose __eq__ always says True cannot pass for an answer on the host.
    return json.loads(json.dumps(value, allow_nan=False))


@terrarium.export
def grade(request):
    # A fresh namespace for the submission, apart from the harness's globals.
    namespace = {"__name__": "submission", "__builtins__": __builtins__}
    code = request["source"]
    loaded = _run(lambda: exec(compile(code, request["filename"], "exec"), namespace))
    report = {"load_error": loaded.get("error"), "output": loaded["output"], "results": []}
    if report["load_error"] is None:
        for test in request["tests"]:
            def step(test=test):
                function = namespace.get(test["call"])
                if not callable(function):
                    raise NameError("the submission defines no function %r" % test["call"])
                return _plain(function(*test["args"]))
            report["results"].append(_run(step))
    return report
