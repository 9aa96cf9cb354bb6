# expect: failed
# Rebinding builtins cannot make a failing assert pass.
import builtins

class Harmless(Exception):
    pass

builtins.AssertionError = Harmless
builtins.print = lambda *args, **kwargs: None

def add(a, b):
    return a - b

# tests
assert add(1, 2) == 3
