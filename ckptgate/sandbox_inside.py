"""The inside of ckptgate's sandbox: set up isolation, then run one untrusted program and its tests.

Run by :mod:`ckptgate.sandbox` as ``python -I -S sandbox_inside.py`` as the first process of
fresh namespaces (``unshare``), never imported by ckptgate. Standard library only. It reads its
job as JSON on stdin, then:

1. makes every mount read-only, mounts small fresh tmpfs over /tmp, /var/tmp and /dev/shm, and
   creates the working directory /tmp/work (gone with the mount namespace);
2. forks the program's process, which sets resource limits (CPU seconds: soft at the budget,
   SIGXCPU, hard a second above, SIGKILL; address space, processes, file size, open files, no
   core), drops to an unprivileged uid when it runs as real
   root (so the process limit counts only the sandbox's processes, and root-owned files are not
   writable), reports the isolation layers verified, runs program + tests and reports how that
   ended, on a private pipe, each record tagged with the job's nonce;
3. waits for it (reaping any orphan reparented here meanwhile) and reports its exit status or
   signal and the CPU time of the process tree (``getrusage(RUSAGE_CHILDREN)``: every process
   reaped, by the program or here), then exits, which (as the PID namespace's first process)
   ends every process the program left behind.

``sys.exit``/``os._exit`` before the tests finish leave no "completed" record, so they never
count as a pass; rebinding builtins cannot change what ``assert`` raises.
"""

import ctypes
import json
import math
import os
import resource
import sys
import traceback

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
NOBODY = 65534
WORK = "/tmp/work"
SCRATCH = {"/tmp": "mode=1777", "/var/tmp": "mode=1777", "/dev/shm": "mode=1777"}


def _mount(libc, source, target, fstype, flags, data=None):
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    if libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


def _expose_interpreter(libc, prefix):
    """Let the unprivileged program read Python's standard library when it lies under a folder
    others cannot enter (e.g. /root/.pyenv): a small tmpfs hides that folder's contents (home
    directories hold tokens and credentials) and the installation is bound back at its path."""
    parts = prefix.strip("/").split("/")
    ancestors = ["/" + "/".join(parts[:i]) for i in range(1, len(parts))]
    blocked = [a for a in ancestors if not os.stat(a).st_mode & 0o001]
    if not blocked:
        return False
    holder = "/tmp/.ckptgate-python"
    os.mkdir(holder)
    _mount(libc, prefix, holder, None, MS_BIND | MS_REC)
    _mount(libc, "tmpfs", blocked[0], "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    os.makedirs(prefix, mode=0o755)
    _mount(libc, holder, prefix, None, MS_BIND | MS_REC)
    if libc.umount2(holder.encode(), 2) != 0:  # MNT_DETACH
        raise OSError(ctypes.get_errno(), f"umount {holder}")
    os.rmdir(holder)
    return True


def _read_only_filesystem(libc, tmpfs_mb, prefix):
    """Scratch space private, the interpreter readable, then every mount read-only (keeping the
    flags a user namespace locks). Returns the layers set up."""
    _mount(libc, None, "/", None, MS_REC | MS_PRIVATE)
    scratch = [point for point in SCRATCH if os.path.isdir(point)]
    for point in scratch:
        _mount(libc, "tmpfs", point, "tmpfs", MS_NOSUID | MS_NODEV, f"size={tmpfs_mb}m,{SCRATCH[point]}")
    layers = ["private-tmp"] + (["private-home"] if _expose_interpreter(libc, prefix) else [])
    with open("/proc/self/mountinfo") as info:
        points = sorted({line.split()[4] for line in info}, key=len)
    for point in points:
        if point in scratch or point == "/proc" or point.startswith("/proc/"):
            continue
        try:
            flags = os.statvfs(point).f_flag
        except OSError:
            continue  # a mount point hidden under another mount
        keep = ((flags & os.ST_NOSUID and MS_NOSUID) | (flags & os.ST_NODEV and MS_NODEV)
                | (flags & os.ST_NOEXEC and MS_NOEXEC))
        _mount(libc, None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | keep)
    return ["read-only-filesystem"] + layers


def _limits(limits):
    cpu = max(1, math.ceil(limits["cpu_s"]))  # RLIMIT_CPU counts whole seconds
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))  # SIGXCPU at the budget, SIGKILL 1 s on
    pairs = {
        resource.RLIMIT_AS: limits["memory_mb"] * 2**20,
        resource.RLIMIT_NPROC: limits["processes"],
        resource.RLIMIT_FSIZE: limits["file_size_mb"] * 2**20,
        resource.RLIMIT_NOFILE: limits["open_files"],
        resource.RLIMIT_CORE: 0,
    }
    for which, value in pairs.items():
        resource.setrlimit(which, (value, value))


def _new_namespaces(outside):
    """The namespaces this process does not share with the ckptgate process (by inode)."""
    fresh = []
    for name, inode in outside.items():
        try:
            if os.stat(f"/proc/self/ns/{name}").st_ino != inode:
                fresh.append(f"{name}-namespace")
        except OSError:
            pass
    return fresh


def main():
    job = json.loads(sys.stdin.read())
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)  # the program gets no stdin
    os.close(devnull)
    fd, nonce, limits = job["record_fd"], job["nonce"], job["limits"]
    write, dumps, exit_now = os.write, json.dumps, os._exit

    def report(**record):
        write(fd, (dumps({"nonce": nonce, **record}) + "\n").encode())

    layers = _new_namespaces(job["namespaces"])
    if "mnt-namespace" in layers:
        layers += _read_only_filesystem(ctypes.CDLL(None, use_errno=True), limits["tmpfs_mb"], sys.base_prefix)
    work = WORK if "mnt-namespace" in layers else job["workdir"]  # else the parent's private temp dir
    os.makedirs(work, exist_ok=True)
    os.chmod(work, 0o777)
    path = os.path.join(work, "solution.py")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(job["source"])
    child = os.fork()
    if child:
        # This process stays root and unlimited, waits for the program, then exits; as the PID
        # namespace's first process, its exit ends every process left in the namespace.
        while True:
            pid, status = os.wait()
            if pid == child:
                break
        signalled = os.WIFSIGNALED(status)
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        report(stage="ended", signal=os.WTERMSIG(status) if signalled else None,
               exit=None if signalled else os.WEXITSTATUS(status), cpu_s=usage.ru_utime + usage.ru_stime)
        exit_now(0)
    _limits(limits)
    layers.append("resource-limits")
    if os.getuid() == 0 and job["drop_root"]:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
        layers.append("unprivileged-uid")
    os.chdir(work)
    os.closerange(3, fd)
    os.closerange(fd + 1, 1 << 16)
    report(stage="started", layers=layers + job["parent_layers"])
    code = compile(job["source"], path, "exec")
    namespace = {"__name__": "__main__", "__file__": path}
    del job
    try:
        exec(code, namespace)  # noqa: S102 - the whole point, inside the sandbox
    except BaseException as exc:  # noqa: BLE001 - SystemExit too: exiting early is not passing
        report(stage="done", outcome="exception", exception=type(exc).__name__, message=str(exc)[:300],
               errno=getattr(exc, "errno", None))
        traceback.print_exc()
        _flush()
        exit_now(1)
    _flush()
    report(stage="done", outcome="completed")
    exit_now(0)


def _flush():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - the program may have closed or replaced it
            pass


if __name__ == "__main__":
    main()
