# expect: timeout (wall clock over)
# Uses no CPU: only the wall-clock guard ends it.
import ctypes
import time

ctypes.CDLL(None).prctl(15, b"@TOKEN@", 0, 0, 0)  # PR_SET_NAME: findable on the host
time.sleep(1000)
