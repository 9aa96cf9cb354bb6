# expect: error
import os
import signal

os.kill(@PARENT_PID@, signal.SIGKILL)
os.kill(os.getppid(), signal.SIGKILL)
