"""The peer "persistent native Python worker over a pipe": what people run
today when they want warm calls — one python3.11 process, unsandboxed, every
call sharing its state. The same JSON-RPC lines and the same two ops as
bench/functions/functions_bench.cc sends to `terrarium functions stdio`.
"""
import json
import re
import sys

NUMBER = re.compile(r"\d+")


def small(x):
    return x["a"] + x["b"]


def import_function(inp):
    text = inp["text"]
    return {"numbers": [int(n) for n in NUMBER.findall(text)], "words": len(text.split()),
            "echo": json.loads(json.dumps(inp))}


OPS = {"small": small, "import": import_function}

for line in sys.stdin:
    request = json.loads(line)
    params = request["params"]
    result = json.dumps(OPS[params["op_name"]](json.loads(params["in_json"])))
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": result}) + "\n")
    sys.stdout.flush()
