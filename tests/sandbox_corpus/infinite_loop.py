# expect: timeout (cpu time over)
while True:
    pass
