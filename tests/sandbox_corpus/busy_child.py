# expect: timeout (cpu time over)
# A child process burns CPU while the parent waits for it: stopped at its CPU limit, the tree over budget.
import ctypes
import os

if os.fork() == 0:
    ctypes.CDLL(None).prctl(15, b"@TOKEN@", 0, 0, 0)  # PR_SET_NAME: findable on the host
    while True:
        pass
os.wait()
