# expect: passed
# The planted secret must not be visible: not in our environment, not in any process's.
import os

assert "@SECRET_NAME@" not in os.environ
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            assert b"@SECRET_VALUE@" not in handle.read()
    except PermissionError:
        pass
print(sorted(os.environ))
