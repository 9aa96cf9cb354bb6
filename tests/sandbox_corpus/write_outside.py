# expect: error
with open("@SENTINEL@", "w") as handle:
    handle.write("overwritten by a sandboxed program")
