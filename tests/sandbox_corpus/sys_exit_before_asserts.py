# expect: error
import sys

def add(a, b):
    return a - b

sys.exit(0)
# tests
assert add(1, 2) == 3
