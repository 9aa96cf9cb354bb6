# expect: resource-limit
with open("big.bin", "wb") as handle:
    for _ in range(1024):
        handle.write(b"\0" * 2**20)  # 1 GB in 1 MB writes
