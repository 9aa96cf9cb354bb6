# expect: resource-limit
import os

while True:
    os.fork()
