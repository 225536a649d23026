# A JSON POST echo as a CGI script: the body is parsed and sent back.
import json
import os
import sys

length = int(os.environ.get("CONTENT_LENGTH") or 0)
data = json.loads(sys.stdin.buffer.read(length))
body = json.dumps(data)
print("Content-Type: application/json")
print()
print(body)
