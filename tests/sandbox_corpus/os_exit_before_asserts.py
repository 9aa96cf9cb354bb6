# expect: error
import os

def add(a, b):
    return a - b

os._exit(0)
# tests
assert add(1, 2) == 3
