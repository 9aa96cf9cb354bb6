# expect: passed
# A double-forked, session-leading grandchild that would outlive the sample: it must be gone.
import ctypes
import os
import time

if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        ctypes.CDLL(None).prctl(15, b"@TOKEN@", 0, 0, 0)  # PR_SET_NAME: findable on the host
        time.sleep(120)
    os._exit(0)
os.wait()
