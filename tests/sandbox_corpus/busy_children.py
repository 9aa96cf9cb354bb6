# expect: timeout (cpu time over)
# Busy children, each within the CPU budget, together over it: the budget is the whole tree's.
import os
import time

budget = @CPU_S@
children = []
for _ in range(3):
    pid = os.fork()
    if pid == 0:
        start = time.process_time()
        while time.process_time() - start < 0.6 * budget:
            pass
        os._exit(0)
    children.append(pid)
for pid in children:
    os.waitpid(pid, 0)
