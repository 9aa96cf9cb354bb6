# expect: resource-limit
block = bytearray(10 * 2**30)
