import os
import sys
import logging

print("Content-Type: text/plain; charset=UTF-8")
print("Status: 200")
print()

print("Hello from python on", sys.platform)
print()
print("### Arguments ###")
print(sys.argv)
print()
print("### Env Vars ###")
for k, v in sorted(os.environ.items()):
    print(f"{k}: {v}")
print()
print("### Files ###")
print(os.listdir('/code'))
logging.warn('Logging important warnings')
