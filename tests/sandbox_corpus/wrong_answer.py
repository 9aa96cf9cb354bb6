# expect: failed
def square(x):
    return x * 2

# tests
assert square(3) == 9
