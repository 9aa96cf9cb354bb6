# expect: timeout (cpu time over)
# Ignoring SIGXCPU at the CPU budget only earns SIGKILL at the hard limit a second later.
import signal

signal.signal(signal.SIGXCPU, signal.SIG_IGN)
while True:
    pass
