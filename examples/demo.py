"""Terrarium demo: ordinary Python, running inside the WebAssembly sandbox."""
import hashlib
import json
import os
import platform
import sys

print(f"Python {platform.python_version()} on {sys.platform} ({platform.machine() or 'wasm32'})")
print("mounted:", sorted(os.listdir("/examples")))

words = "the quick brown fox jumps over the lazy dog".split()
counts = {w: words.count(w) for w in sorted(set(words))}
print("json:", json.dumps(counts))
print("sha256:", hashlib.sha256(" ".join(words).encode()).hexdigest()[:32])

try:
    open("/etc/passwd").read()
except OSError as error:
    print("host file outside the mounts:", type(error).__name__)
try:
    open("/examples/new-file.txt", "w")
except OSError as error:
    print("writing to a read-only mount:", error.strerror)
