# expect: passed
def similar_elements(a, b):
    return tuple(sorted(set(a) & set(b)))

# tests
assert similar_elements((3, 4, 5, 6), (5, 7, 4, 10)) == (4, 5)
assert similar_elements((1, 2, 3, 4), (5, 4, 3, 7)) == (3, 4)
