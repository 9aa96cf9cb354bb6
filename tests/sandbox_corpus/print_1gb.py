# expect: resource-limit
import sys

chunk = "x" * 2**20
for _ in range(1024):
    sys.stdout.write(chunk)
