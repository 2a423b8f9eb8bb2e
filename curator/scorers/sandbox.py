"""Run untrusted Python (a generated solution plus its tests) in a subprocess sandbox.

One sample = one short-lived process tree: `python -I -S -B -X utf8 -c BOOT` (isolated mode, no site
packages, no bytecode writes), which receives through stdin the code of this module's child half
(compiled once by the parent) and the job (code, tests); stdin is then replaced by /dev/null. The child's
supervisor sets limits and namespaces and forks the sample's process. Both report through a private pipe;
stdout and stderr are merged and only their tail is kept.

Layers, from the always-available to the strongest (what a run actually got is `Result.isolation`, and
`probe()` says what this machine offers):

always (every POSIX system)
    * a fresh temporary directory as cwd, HOME and TMPDIR, deleted afterwards;
    * a minimal environment (PATH, LANG, HOME, TMPDIR: nothing inherited, so no tokens or keys);
    * `-I -S`: no PYTHON* variables, no user or site packages, no cwd on sys.path;
    * a new session and process group; at the wall-clock limit the whole group gets SIGKILL, and the
      group is killed again when the sample's main process ends (stray children die with it); processes
      that left the group (os.setsid is not audited) are then found by a random tag in their environment
      and killed too (a process that also wiped its environment would escape: use the namespaces);
    * rlimits: RLIMIT_AS (memory), RLIMIT_CPU (soft = limit, hard = limit + 1 s), RLIMIT_FSIZE (largest
      file), RLIMIT_CORE = 0, RLIMIT_NOFILE = 256 (soft = hard, so the sample cannot raise them);
    * an audit hook (PEP 578), installed before the sample's first line, that refuses and records:
      every `socket.*` event (network), opening a file for writing and every mutating `os.*` / `shutil.*`
      event (remove, rename, mkdir, chmod, link, symlink, truncate, utime, xattr ...) outside the
      sample's directory, opening a directory outside it (a dir fd would let `os.open(..., dir_fd=)` write
      anywhere), `ctypes.*` (foreign calls could undo everything), `resource.setrlimit` / `prlimit`,
      signals to processes outside the sandbox's process group, and, unless subprocesses are allowed,
      `os.fork` / `os.exec*` / `os.system` / `os.posix_spawn` / `subprocess.Popen`. Without the namespace
      layer it also refuses reads outside the Python installation, the sample's directory and a few
      harmless files (so a sample cannot copy a readable secret into its `output`).
      A refused action raises PermissionError in the sample AND marks the sample as failed (status
      `error`), even if the sample catches the exception.
      What the audit hook does NOT stop: code that does not go through audited Python APIs, i.e. C
      extensions (only the stdlib is importable here, but a bug in one could be exploited), and any
      program a sample starts when subprocesses are allowed (a child `sh` or `python` has no hook).
      It is a tripwire, not a wall.

Linux with unprivileged user namespaces (`unshare -rn` works; tried, falls back silently; probe() tells)
    * user + network + mount + pid namespaces: an empty network stack (only a down loopback: connect()
      fails with "network is unreachable"); a pid namespace whose init is a small reaper with the sample as
      its child: when the sample ends, init exits and the kernel kills every process the sample left
      behind, daemonised or not; the sample cannot see or signal anything outside; and PR_SET_PDEATHSIG
      ties init to its supervisor and the sample to init (a killed supervisor takes everything down);
    * a minimal root file system (pivot_root; the old root is detached, not just hidden): read-only binds
      of /usr, /bin, /lib*, /sbin, the Python installation, a handful of /etc files (passwd, group,
      ld.so.cache, localtime, ...), /dev/{null,zero,full,random,urandom}, a fresh /proc of the pid
      namespace, and a writable tmpfs at /box (also reached as /tmp) capped at `disk_mb` (the sample's cwd); nothing else of the
      host (no /root, /home, /work, no other /etc files) exists in it;
    * the mounts are then locked by a second, nested user namespace (a locked mount cannot be made
      writable or unmounted), the sample runs as uid 65534 inside it with every capability dropped and
      PR_SET_NO_NEW_PRIVS set, and it may create no further user namespaces.
    Limits of this layer: it shares the host kernel (a kernel exploit escapes).

Not limited: the number of processes (RLIMIT_NPROC counts all of a user's processes on the host, and
root is exempt from it). Forks are refused by the audit hook unless `allow_subprocess`; with it, a fork
bomb runs until the wall-clock limit and is then killed whole (pid namespace, or process group + tag).

Statuses (`Result.status`)
    passed   the solution and then the tests ran to the end (a SystemExit(0) from the tests counts).
    failed   the tests raised (AssertionError or any other exception: a wrong solution often crashes).
    error    the solution itself could not run (syntax error, exception at import time, exit() in the
             solution), the sandbox refused an action (network, write outside the directory, ...), or the
             process ended without reporting a result (os._exit, a closed report pipe).
    timeout  the wall-clock limit (the process group was killed) or the CPU limit was reached.
    memory   MemoryError reached the harness (RLIMIT_AS).
    killed   the process died from a signal the sandbox did not send for a timeout (SIGSEGV, SIGABRT, the
             kernel's OOM killer, ...).

The tests run in the same interpreter as the solution, as in the HumanEval and MBPP harnesses: a sample
written to attack the harness (walking frames to find the completion token, patching builtins the tests
rely on) can forge a pass. The sandbox protects the machine; the verdict is only as strong as the tests.
"""
from __future__ import annotations

import _signal as signal  # the C module: `signal` imports enum, ~5 ms of every sandbox's start-up
import os
import sys

# Everything above the "the parent" line below is also the child's program: the parent compiles that part
# of this file once, and each sandbox's interpreter receives the code object (marshal, through stdin)
# instead of compiling ~400 lines itself (which took longer than the interpreter's own start-up). It may
# import only light stdlib modules; the parent half (dataclasses, subprocess, threads) comes after.

_CLONE_NEWNS = 0x00020000
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWPID = 0x20000000
_CLONE_NEWNET = 0x40000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_BIND, _MS_REC, _MS_PRIVATE = 4096, 16384, 1 << 18
_MNT_DETACH = 2
_AT_FDCWD, _AT_RECURSIVE = -100, 0x8000
_MOUNT_ATTR_RDONLY = 0x1
_SYS_MOUNT_SETATTR = 442  # same number on every architecture (added after the syscall-table unification)
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "ppc64": 203, "s390x": 217}
_PR_SET_PDEATHSIG, _PR_SET_DUMPABLE, _PR_SET_NO_NEW_PRIVS = 1, 4, 38
_SANDBOX_UID = 65534  # "nobody" inside the nested user namespace
_DEV_NODES = ("null", "zero", "full", "random", "urandom")
_ETC_FILES = ("passwd", "group", "hosts", "nsswitch.conf", "ld.so.cache", "ld.so.conf", "localtime", "mime.types",
              "os-release", "alternatives", "ld.so.conf.d", "ssl/openssl.cnf")
_ROOT_DIRS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
_EXIT_SETUP_FAILED = 97


# =========================================================================== the child


def _child_main(report_fd: int) -> None:
    """The supervisor ("B"): read the job, set limits and namespaces, fork the sample ("P"), report its end."""
    import marshal
    import resource

    job = marshal.loads(sys.stdin.buffer.read())  # marshal, not json: `import json` costs ~10 ms (re)
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)  # the sample sees a closed stdin (EOF at once)
    os.close(null)
    os.set_inheritable(report_fd, False)  # programs a sample starts never see the report pipe
    nonce = job["nonce"]

    def emit(record: dict) -> None:
        _report(report_fd, record)

    mb = 1 << 20
    limits = job["limits"]
    cpu = max(1, int(limits["cpu_s"] + 0.999))
    layers: list[str] = []
    notes: list[str] = []
    # soft = hard wherever a sample could otherwise raise its own limit back; a limit the platform does
    # not support (RLIMIT_AS on macOS) is noted, not fatal
    for name, soft, hard in (("RLIMIT_AS", limits["memory_mb"] * mb, limits["memory_mb"] * mb),
                             ("RLIMIT_CPU", cpu, cpu + 1),
                             ("RLIMIT_FSIZE", limits["file_mb"] * mb, limits["file_mb"] * mb),
                             ("RLIMIT_CORE", 0, 0), ("RLIMIT_NOFILE", 256, 256)):
        try:
            resource.setrlimit(getattr(resource, name), (soft, hard))
        except (AttributeError, ValueError, OSError) as exc:
            notes.append(f"{name} not set: {exc}")

    workdir = os.getcwd()
    libc = None
    if job["isolation"] != "basic":
        try:
            libc = _libc()
            _enter_namespaces(libc, workdir, limits, layers, notes)
        except OSError as exc:
            notes.append(f"namespaces unavailable: {exc}")
    if job["isolation"] == "namespaces" and "root" not in layers:
        emit({"setup_failed": "; ".join(notes) or "namespaces unavailable"})
        os._exit(_EXIT_SETUP_FAILED)

    pid = os.fork()
    if pid == 0:
        try:
            _sample_main(job, report_fd, libc, workdir, layers, notes)
        finally:
            os._exit(70)  # only reached if the harness itself broke
    while True:
        try:
            _, status, usage = os.wait4(pid, 0)
            break
        except ChildProcessError:
            status, usage = 0, None
            break
        except InterruptedError:
            continue
    cpu_used = (usage.ru_utime + usage.ru_stime) if usage else None
    record = {"exit": nonce, "layers": layers, "notes": notes, "cpu_s": cpu_used}
    if os.WIFSIGNALED(status):
        record["signal"] = os.WTERMSIG(status)
    else:
        record["code"] = os.WEXITSTATUS(status)
    emit(record)
    if "signal" in record:  # mirror the sample's end, so that the parent's returncode tells it too
        try:
            signal.signal(record["signal"], signal.SIG_DFL)
        except (OSError, ValueError):  # SIGKILL and SIGSTOP cannot be (and need not be) reset
            pass
        os.kill(os.getpid(), record["signal"])
    os._exit(record.get("code", 1))


def _report(fd: int, record: dict) -> None:
    """One record to the parent, as a Python literal (read back with ast.literal_eval)."""
    try:
        os.write(fd, (repr(record) + "\n").encode("utf-8", "backslashreplace"))
    except OSError:
        pass


def _libc():
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        import ctypes

        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _write_file(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _map_ids(inner_uid: int, outer_uid: int, inner_gid: int, outer_gid: int) -> None:
    _write_file("/proc/self/setgroups", "deny")
    _write_file("/proc/self/uid_map", f"{inner_uid} {outer_uid} 1")
    _write_file("/proc/self/gid_map", f"{inner_gid} {outer_gid} 1")


def _mount(libc, source, target, fstype, flags, data=None) -> None:
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    _check(libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


def _enter_namespaces(libc, workdir: str, limits: dict, layers: list, notes: list) -> None:
    """In the supervisor: new user/mount/net/pid namespaces and the skeleton of the minimal root.

    The sample (forked next, pid 1 of the new pid namespace) finishes the job: /proc, pivot_root, the
    read-only flag, the /box tmpfs and the lock (see `_sample_namespaces`).
    """
    uid, gid = os.geteuid(), os.getegid()
    if libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNS | _CLONE_NEWNET | _CLONE_NEWPID) != 0:
        import ctypes

        err = ctypes.get_errno()
        # a kernel without pid or mount namespaces for unprivileged users may still give an empty network
        if libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET) == 0:
            _map_ids(0, uid, 0, gid)
            layers += ["user", "net"]
            notes.append(f"no mount/pid namespaces: {os.strerror(err)}")
            return
        raise OSError(err, f"unshare: {os.strerror(err)}")
    _map_ids(0, uid, 0, gid)
    layers += ["user", "net", "pid", "mnt"]
    try:
        _mount(libc, None, "/", None, _MS_REC | _MS_PRIVATE)
        # the new root is a small tmpfs over the (empty) work directory; binds go inside it
        _mount(libc, "tmpfs", workdir, "tmpfs", _MS_NOSUID | _MS_NODEV, "size=1m,mode=0755")
        for name in _ROOT_DIRS:
            _bind(libc, "/" + name, workdir)
        for name in _ETC_FILES:
            _bind(libc, "/etc/" + name, workdir)
        for prefix in sorted({os.path.realpath(p) for p in (sys.base_prefix, sys.prefix, sys.base_exec_prefix,
                                                             sys.exec_prefix)}):
            if not any(prefix == "/" + d or prefix.startswith("/" + d + "/") for d in _ROOT_DIRS):
                _bind(libc, prefix, workdir)
        # a venv's bin/python is a symlink into the base installation: keep both ends reachable
        exe = os.path.abspath(sys.executable)
        if not os.path.exists(workdir + exe):
            _bind(libc, os.path.dirname(exe), workdir)
        os.mkdir(workdir + "/dev", 0o755)
        for node in _DEV_NODES:
            _bind(libc, "/dev/" + node, workdir)
        for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                             ("stderr", "/proc/self/fd/2")):
            os.symlink(target, f"{workdir}/dev/{name}")
        os.mkdir(workdir + "/proc", 0o555)
        # The sample's own writable directory is /box, not /tmp: a Python installation that lives under
        # /tmp (a venv in a checkout there) is bound under /tmp and must not be hidden by the tmpfs.
        os.mkdir(workdir + "/box", 0o1777)
        if not os.path.lexists(workdir + "/tmp"):
            os.symlink("/box", workdir + "/tmp")
        layers.append("root")
    except OSError as exc:
        notes.append(f"no minimal root: {exc}")


def _bind(libc, path: str, root: str) -> None:
    """Bind `path` (file, directory or symlink) at the same place under `root`, if it exists."""
    if not os.path.lexists(path):
        return
    target = root + path
    parent = os.path.dirname(target)
    os.makedirs(parent, mode=0o755, exist_ok=True)
    if os.path.islink(path) and os.path.dirname(path) in ("/", "/etc"):
        os.symlink(os.readlink(path), target)  # /bin -> usr/bin on merged-/usr systems
        return
    if os.path.isdir(path):
        os.makedirs(target, mode=0o755, exist_ok=True)
    elif not os.path.exists(target):
        os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o644))
    _mount(libc, path, target, None, _MS_BIND | _MS_REC)


def _sample_namespaces(libc, workdir: str, limits: dict, layers: list, notes: list) -> str:
    """In the sample (pid 1 of its namespace): finish the root, lock it, drop privileges. Returns the cwd."""
    import ctypes
    if "root" not in layers:
        return workdir
    try:
        _mount(libc, "proc", workdir + "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)
        os.chdir(workdir)
        nr = _SYS_PIVOT_ROOT.get(os.uname().machine)
        if nr is not None:
            # pivot_root(".", ".") stacks the old root under the new one; detaching it removes it entirely
            _check(libc.syscall(nr, b".", b"."), "pivot_root")
            _check(libc.umount2(b".", _MNT_DETACH), "umount old root")
        else:
            os.chroot(".")
        os.chdir("/")
        try:  # one more user namespace (the lock below) and no more after it
            _write_file("/proc/sys/user/max_user_namespaces", "1")
        except OSError as exc:
            notes.append(f"max_user_namespaces not set: {exc}")

        class MountAttr(ctypes.Structure):
            _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                        ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]

        attr = MountAttr(_MOUNT_ATTR_RDONLY, 0, 0, 0)
        _check(libc.syscall(_SYS_MOUNT_SETATTR, _AT_FDCWD, b"/", _AT_RECURSIVE, ctypes.byref(attr),
                            ctypes.sizeof(attr)), "mount_setattr read-only")
        # /proc stays writable: the lock below writes /proc/self/uid_map, and proc files check access
        # themselves (an unprivileged uid can change nothing there that matters)
        attr = MountAttr(0, _MOUNT_ATTR_RDONLY, 0, 0)
        _check(libc.syscall(_SYS_MOUNT_SETATTR, _AT_FDCWD, b"/proc", 0, ctypes.byref(attr), ctypes.sizeof(attr)),
               "mount_setattr /proc")
        _mount(libc, "tmpfs", "/box", "tmpfs", _MS_NOSUID | _MS_NODEV,
               f"size={int(limits['disk_mb'])}m,mode=1777")
        layers.append("fs")
        # A nested user namespace locks every mount above (a locked mount cannot be made writable again
        # or unmounted to uncover what is below it); the sample is uid 65534 in it.
        _check(libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNS), "unshare (lock)")
        _map_ids(_SANDBOX_UID, 0, _SANDBOX_UID, 0)
        layers.append("locked")
    except OSError as exc:
        notes.append(f"minimal root incomplete: {exc}")
        os.chdir(workdir if os.path.isdir(workdir) else "/")
        return os.getcwd()
    os.environ.update(HOME="/box", TMPDIR="/box")
    return "/box"


def _drop_privileges(libc, notes: list) -> None:
    import ctypes

    class CapHeader(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class CapData(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    try:
        _check(libc.capset(ctypes.byref(CapHeader(0x20080522, 0)), (CapData * 2)()), "capset")
    except (OSError, AttributeError) as exc:
        notes.append(f"capabilities kept: {exc}")
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        notes.append("no_new_privs not set")


def _sample_main(job: dict, report_fd: int, libc, workdir: str, layers: list, notes: list) -> None:
    """The sample's process: last isolation steps, the audit hook, then the solution and its tests."""
    # Without namespaces ctypes is not loaded at all (~7 ms): the sample then has no parent-death signal,
    # and the parent finds its processes by their environment instead (see `_kill_marked`).
    if libc is not None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    cwd = workdir
    if "pid" in layers and libc is not None:
        cwd = _sample_namespaces(libc, workdir, job["limits"], layers, notes)
    if job["isolation"] == "namespaces" and "locked" not in layers:
        _report(report_fd, {"setup_failed": "; ".join(notes) or "namespaces incomplete"})
        os._exit(_EXIT_SETUP_FAILED)
    if libc is not None:
        if "user" in layers:
            _drop_privileges(libc, notes)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # credential changes may have cleared it
    # what the sample's side got (the supervisor only knows its half)
    _report(report_fd, {"sample_layers": job["nonce"], "layers": layers, "notes": notes})
    if "pid" in layers:
        # pid 1 of a namespace ignores the signals it has no handler for when they come from inside
        # (raise(), abort(), kill(getpid())) and RLIMIT_CPU's SIGXCPU: the sample runs as pid 1's child, a
        # normal process, and pid 1 only waits for it and tells how it ended
        child = os.fork()
        if child:
            _init_wait(child, report_fd, job["nonce"], libc)
        if libc is not None:
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    os.chdir(cwd)
    sys.argv = ["solution"]
    _run_job(job, report_fd, cwd, confined="fs" in layers)


def _init_wait(child: int, report_fd: int, nonce: str, libc) -> None:
    """Pid 1 of the sandbox: reap everything, and when the sample ends, report it and end the namespace."""
    if libc is not None:
        libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)  # the sample (same uid) may not ptrace its init
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except InterruptedError:
            continue
        except ChildProcessError:
            os._exit(70)
        if pid != child:
            continue
        record = {"sample_end": nonce}
        if os.WIFSIGNALED(status):
            record["signal"] = os.WTERMSIG(status)
        else:
            record["code"] = os.WEXITSTATUS(status)
        _report(report_fd, record)
        # exiting ends the pid namespace: the kernel kills whatever the sample left running
        os._exit(record.get("code", 128 + record.get("signal", 0)))


def _run_job(job: dict, report_fd: int, workdir: str, *, confined: bool) -> None:
    import builtins

    nonce = job["nonce"]
    here = __file__
    write, exit_now = os.write, os._exit  # bound now: the sample may patch the os module
    code, tests, entry = job["code"], job.get("tests") or "", job.get("entry_point")
    module = type(sys)("__sandbox__")  # not __main__: demo code under `if __name__ == "__main__"` stays off
    module.__dict__["__builtins__"] = builtins
    sys.modules["__sandbox__"] = module
    if job.get("audit_hook", True):
        if not job["allow_subprocess"]:
            _disarm_fork_exec(report_fd)
        _install_audit_hook(report_fd, workdir, allow_subprocess=job["allow_subprocess"], restrict_reads=not confined)
    stage, status = "solution", "error"
    try:
        exec(compile(code, "<solution>", "exec"), module.__dict__)
        stage = "tests"
        if tests:
            exec(compile(tests, "<tests>", "exec"), module.__dict__)
        check = module.__dict__.get("check")
        if entry and callable(check):  # HumanEval style: the tests define check(candidate)
            if entry not in module.__dict__:
                raise NameError(f"the solution does not define the entry point {entry!r}")
            check(module.__dict__[entry])
        status = "passed"
    except MemoryError:
        status = "memory"
        _safe_print(f"MemoryError in the {stage} (memory limit reached)")
    except SystemExit as exc:
        if stage == "tests" and exc.code in (None, 0):
            status = "passed"  # unittest.main() and friends end with SystemExit(0)
        else:
            status = "failed" if stage == "tests" else "error"
            _safe_print(f"SystemExit({exc.code!r}) in the {stage}")
    except BaseException as exc:  # noqa: BLE001 - whatever the sample raises is its verdict
        status = "failed" if stage == "tests" else "error"
        try:  # the sample's frames only: the harness and the audit hook are noise to whoever reads this
            import linecache  # imported here, not up front: most samples never need them (start-up time)
            import traceback

            for name, src in (("<solution>", code), ("<tests>", tests)):
                linecache.cache[name] = (len(src), None, src.splitlines(True), name)
            frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != here]
            sys.stderr.write("Traceback (most recent call last):\n" + "".join(traceback.format_list(frames))
                             + "".join(traceback.format_exception_only(type(exc), exc)))
        except BaseException:  # noqa: BLE001
            _safe_print(f"exception in the {stage}")
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001
            pass
    try:
        write(report_fd, ("{'done': %r, 'status': %r, 'stage': %r}\n" % (nonce, status, stage)).encode())
    except OSError:
        pass
    exit_now(0)


def _safe_print(msg: str) -> None:
    try:
        os.write(2, (msg + "\n").encode())
    except OSError:
        pass


def _disarm_fork_exec(report_fd: int) -> None:
    """`_posixsubprocess.fork_exec` starts processes without any audit event: replace it by a refusal.

    The original stays reachable only through a re-import (refused by the hook: `_posixsubprocess` is in
    `_NO_IMPORT`) or the garbage collector's object lists (`gc.get_objects` & co. are refused too).
    """
    try:
        import _posixsubprocess
    except ImportError:
        return
    write = os.write

    def fork_exec(*args, **kwargs):
        try:
            write(report_fd, b'{"violation": "starting a process", "event": "_posixsubprocess.fork_exec", '
                             b'"detail": ""}\n')
        except OSError:
            pass
        raise PermissionError("sandbox: starting a process refused (_posixsubprocess.fork_exec)")

    _posixsubprocess.fork_exec = fork_exec


_NO_IMPORT = frozenset({"_posixsubprocess"})
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
# Audit events that change the file system: (index of a path argument, index of its dir_fd argument or
# None), as CPython 3.10-3.13 raise them. Every such path must lie inside the sample's directory.
_MUTATING = {
    "os.remove": ((0, 1),), "os.rmdir": ((0, 1),), "os.mkdir": ((0, 2),), "os.chmod": ((0, 2),),
    "os.chown": ((0, 3),), "os.rename": ((0, 2), (1, 3)), "os.link": ((0, 2), (1, 3)), "os.symlink": ((1, 2),),
    "os.truncate": ((0, None),), "os.utime": ((0, 3),), "os.setxattr": ((0, None),),
    "os.removexattr": ((0, None),), "os.chflags": ((0, None),), "os.lchflags": ((0, None),),
    "os.lchmod": ((0, None),), "os.mkfifo": ((0, 2),), "os.mknod": ((0, 3),), "shutil.rmtree": ((0, 1),),
    "shutil.copyfile": ((1, None),), "shutil.copymode": ((1, None),), "shutil.copystat": ((1, None),),
    "shutil.copytree": ((1, None),), "shutil.move": ((0, None), (1, None)), "shutil.chown": ((0, None),),
    "shutil.make_archive": ((0, None),), "shutil.unpack_archive": ((1, None),), "sqlite3.connect": ((0, None),),
}
_SUBPROCESS = frozenset({"os.fork", "os.forkpty", "os.exec", "os.posix_spawn", "os.spawn", "os.system",
                         "os.startfile", "subprocess.Popen", "pty.spawn"})
_HARMLESS_SOCKET = frozenset({"socket.gethostname"})


def _install_audit_hook(report_fd: int, workdir: str, *, allow_subprocess: bool, restrict_reads: bool) -> None:
    """The tripwire: refuse (PermissionError) and record the actions a code-test sample has no business doing."""
    realpath, join, isabs, isdir, fspath = (os.path.realpath, os.path.join, os.path.isabs, os.path.isdir,
                                            os.fspath)
    getcwd, getpid, getpgid, readlink, write = os.getcwd, os.getpid, os.getpgid, os.readlink, os.write
    home = realpath(workdir)
    pgid = getpgid(0)
    dev_ok = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty"}
    read_roots = tuple(sorted({realpath(p) for p in (sys.base_prefix, sys.prefix, sys.base_exec_prefix,
                                                      sys.exec_prefix, home, "/usr/share/zoneinfo")}))
    read_files = dev_ok | {"/etc/localtime", "/etc/mime.types", "/etc/os-release"}
    busy = [False]

    def resolve(path, dir_fd=None):
        if isinstance(path, int):
            return None
        path = fspath(path)
        if isinstance(path, bytes):
            path = path.decode("utf-8", "surrogateescape")
        if not isabs(path):
            base = readlink(f"/proc/self/fd/{dir_fd}") if isinstance(dir_fd, int) else getcwd()
            path = join(base, path)
        return realpath(path)

    def inside(path, roots=(home,)):
        return path is None or any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)

    def refuse(kind, event, detail, fatal=True):
        if fatal:
            try:
                write(report_fd, (repr({"violation": kind, "event": event, "detail": str(detail)[:200]})
                                  + "\n").encode("utf-8", "backslashreplace"))
            except Exception:  # noqa: BLE001
                pass
        raise PermissionError(f"sandbox: {kind} refused ({event} {str(detail)[:200]})")

    def hook(event, args):
        if busy[0]:
            return
        busy[0] = True
        try:
            check(event, args)
        finally:
            busy[0] = False

    def check(event, args):
        if event == "open":
            path, mode, flags = args
            target = resolve(path)
            if target is None:
                return
            writing = bool(mode and any(c in mode for c in "wax+")) or bool((flags or 0) & _WRITE_FLAGS)
            if writing:
                if not inside(target) and target not in dev_ok:
                    refuse("write outside the sandbox directory", event, target)
            elif not inside(target) and isdir(target):
                refuse("directory outside the sandbox directory", event, target, fatal=False)
            elif restrict_reads and not (inside(target, read_roots) or target in read_files
                                          or target.startswith(f"/proc/{getpid()}/")):
                refuse("read outside the sandbox", event, target, fatal=False)
        elif event.startswith("socket."):
            if event not in _HARMLESS_SOCKET:
                refuse("network access", event, args[1:3] if event == "socket.__new__" else args[1:2])
        elif event in _MUTATING:
            for i, j in _MUTATING[event]:
                if i < len(args) and args[i] is not None and not isinstance(args[i], int):
                    dir_fd = args[j] if j is not None and j < len(args) and isinstance(args[j], int) else None
                    dir_fd = dir_fd if dir_fd is not None and dir_fd >= 0 else None  # -1: no dir_fd given
                    target = resolve(args[i], dir_fd)
                    if not inside(target):
                        refuse("write outside the sandbox directory", event, target)
        elif event in _SUBPROCESS:
            if not allow_subprocess:
                refuse("starting a process", event, args[0] if args else "")
        elif event in ("os.kill", "os.killpg"):
            pid = args[0]
            if pid in (0, getpid()):
                return
            try:
                same = (pid if event == "os.killpg" else getpgid(pid)) == pgid
            except OSError:
                same = False
            if not same:
                refuse("signalling a process outside the sandbox", event, pid)
        elif event.startswith("ctypes."):
            refuse("ctypes", event, args[0] if args else "")
        elif event in ("resource.setrlimit", "resource.prlimit"):
            refuse("changing resource limits", event, args)
        elif event in ("gc.get_objects", "gc.get_referrers", "gc.get_referents"):
            refuse("walking the interpreter's objects", event, "", fatal=False)
        elif event == "import" and args[0] in _NO_IMPORT and not allow_subprocess:
            refuse("starting a process", "import", args[0])

    sys.addaudithook(hook)


# =========================================================================== the parent

import ast  # noqa: E402
import dataclasses  # noqa: E402
import functools  # noqa: E402
import marshal  # noqa: E402
import selectors  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from typing import Any, Sequence  # noqa: E402

import signal  # noqa: E402,F811 - the parent half wants the full module (Signals names)

from ..errors import UsageError  # noqa: E402

ISOLATIONS = ("auto", "namespaces", "basic")
STATUSES = ("passed", "failed", "error", "timeout", "memory", "killed")
_REPORT_CAP = 64 * 1024
_MARKER = "CURATOR_SANDBOX"
_KILL_GRACE_S = 1.0  # how long to drain output after a kill before giving up on stragglers


@dataclasses.dataclass(frozen=True)
class Limits:
    """Per-sample limits. `cpu_s` defaults to the wall-clock limit."""

    timeout_s: float = 10.0
    memory_mb: int = 512
    cpu_s: float | None = None
    file_mb: int = 16
    disk_mb: int = 64
    output_chars: int = 2000

    def __post_init__(self) -> None:
        for name in ("timeout_s", "memory_mb", "file_mb", "disk_mb", "output_chars"):
            if getattr(self, name) <= 0:
                raise UsageError(f"sandbox limit {name}={getattr(self, name)!r}: expected a positive number")
        if self.memory_mb < 64:
            raise UsageError(f"sandbox limit memory_mb={self.memory_mb}: expected at least 64 (the interpreter "
                             f"alone maps ~30 MB of address space)")


@dataclasses.dataclass(frozen=True)
class Job:
    """One sample: the code, the tests run after it in the same namespace, and an optional entry point
    (HumanEval style: when the tests define `check`, it is called with the entry point's object)."""

    code: str
    tests: str | None = None
    entry_point: str | None = None


@dataclasses.dataclass
class Result:
    status: str
    duration_s: float
    output: str
    returncode: int | None = None
    violations: list[str] = dataclasses.field(default_factory=list)
    isolation: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return self.status == "passed"


_PARENT_LINE = "# =========================================================================== the parent"
# The child's interpreter: load the code object, run the supervisor. argv: report fd, code size, file.
_BOOT = ("import sys, marshal\n"
         "g = {'__name__': '__sandbox_child__', '__file__': sys.argv[3], '__builtins__': __builtins__}\n"
         "exec(marshal.loads(sys.stdin.buffer.read(int(sys.argv[2]))), g)\n"
         "g['_child_main'](int(sys.argv[1]))\n")


@functools.lru_cache(maxsize=1)
def _child_code() -> bytes:
    path = os.path.abspath(__file__)
    with open(path, encoding="utf-8") as f:
        source = f.read()
    return marshal.dumps(compile(source[:source.index(_PARENT_LINE)], path, "exec"))


def _child_env(workdir: str) -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": workdir,
            "TMPDIR": workdir, "PYTHONHASHSEED": "0"}


def run(job: Job, limits: Limits = Limits(), *, isolation: str = "auto", allow_subprocess: bool = False,
        audit_hook: bool = True) -> Result:
    """Run one sample in a fresh sandbox and classify how it ended. Never raises for what the sample does."""
    if isolation not in ISOLATIONS:
        raise UsageError(f"sandbox isolation {isolation!r}: expected one of {', '.join(ISOLATIONS)}")
    workdir = tempfile.mkdtemp(prefix="curator-sandbox-")
    nonce = uuid.uuid4().hex  # proves the harness finished; never shown to the sample
    tag = uuid.uuid4().hex  # marks the sandbox's processes in their environment (visible to the sample)
    cpu_s = limits.cpu_s if limits.cpu_s is not None else limits.timeout_s
    code = _child_code()
    payload = code + marshal.dumps({
        "nonce": nonce, "code": job.code, "tests": job.tests, "entry_point": job.entry_point,
        "isolation": isolation, "allow_subprocess": allow_subprocess, "audit_hook": audit_hook,
        "limits": {"cpu_s": float(cpu_s), "memory_mb": int(limits.memory_mb), "file_mb": int(limits.file_mb),
                   "disk_mb": int(limits.disk_mb)},
    })
    report_r, report_w = os.pipe()
    start = time.perf_counter()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-B", "-X", "utf8", "-c", _BOOT, str(report_w), str(len(code)),
             os.path.abspath(__file__)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, pass_fds=(report_w,),
            cwd=workdir, env={**_child_env(workdir), _MARKER: tag}, start_new_session=True, close_fds=True)
    except OSError as exc:
        os.close(report_r)
        os.close(report_w)
        _rmtree(workdir)
        return Result("error", time.perf_counter() - start, f"sandbox: could not start: {exc}")
    os.close(report_w)
    marker = f"{_MARKER}={tag}".encode()

    def cleanup() -> None:
        _kill_group(proc.pid)
        # Processes that left the group (os.setsid is not audited): without the pid namespace nothing else
        # finds them, so they are found by their environment (~1 ms for a few hundred processes).
        _kill_marked(marker)

    try:
        out, reports, timed_out = _supervise(proc, payload, report_r, start + limits.timeout_s,
                                             keep_bytes=limits.output_chars * 4, cleanup=cleanup)
    finally:
        os.close(report_r)
        cleanup()
        proc.wait()
        _rmtree(workdir)
    duration = time.perf_counter() - start
    return _classify(proc.returncode, out, reports, nonce, timed_out, duration, limits, cpu_s)


def _supervise(proc: subprocess.Popen, payload: bytes, report_fd: int, deadline: float, *,
               keep_bytes: int, cleanup) -> tuple[bytes, bytes, bool]:
    """Feed the job, then collect the output tail and the reports until the process ends or the deadline."""
    try:
        proc.stdin.write(payload)  # the child reads it all before anything else
        proc.stdin.close()
    except (BrokenPipeError, OSError):
        pass
    out = bytearray()
    reports = bytearray()
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, "out")
    sel.register(report_fd, selectors.EVENT_READ, "report")
    timed_out = False
    exited_at = None
    try:
        while sel.get_map():
            now = time.perf_counter()
            if not timed_out and now >= deadline:
                timed_out = True
                cleanup()
                deadline = now + _KILL_GRACE_S  # from here on: only drain what is left
            elif timed_out and now >= deadline:
                break
            if exited_at is None and proc.poll() is not None:
                exited_at = now
                # the sample's main process ended: what it left behind goes too (with the pid namespace
                # the kernel has done that already)
                cleanup()
            if exited_at is not None and now - exited_at > _KILL_GRACE_S:
                break  # something outside the group still holds a pipe open: stop waiting for it
            for key, _ in sel.select(timeout=min(0.05, max(0.0, deadline - now))):
                fd = key.fileobj if isinstance(key.fileobj, int) else key.fileobj.fileno()
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                if key.data == "out":
                    out += chunk
                    if len(out) > 2 * keep_bytes:
                        del out[:-keep_bytes]
                elif len(reports) < _REPORT_CAP:
                    reports += chunk
    finally:
        sel.close()
        proc.stdout.close()
    return bytes(out[-keep_bytes:]), bytes(reports), timed_out


def _classify(returncode: int | None, out: bytes, reports: bytes, nonce: str, timed_out: bool, duration: float,
              limits: Limits, cpu_s: float) -> Result:
    done = exit_rec = setup = got = sample_end = None
    violations: list[str] = []
    for line in reports.decode("utf-8", "replace").splitlines():
        try:  # the sample can write to the report pipe too: anything may come, parse it as data only
            rec = ast.literal_eval(line)
        except Exception:  # noqa: BLE001 - SyntaxError, ValueError, MemoryError, RecursionError ...
            continue
        if not isinstance(rec, dict):
            continue
        if rec.get("done") == nonce:
            done = rec
        elif rec.get("exit") == nonce:
            exit_rec = rec
        elif rec.get("sample_layers") == nonce:
            got = rec
        elif rec.get("sample_end") == nonce:
            sample_end = rec
        elif "violation" in rec:
            violations.append(f"{rec['violation']} ({rec.get('event')} {rec.get('detail')})")
        elif "setup_failed" in rec:
            setup = rec["setup_failed"]
    text = out.decode("utf-8", "replace")
    notes: list[str] = []
    # with the pid namespace the sample is pid 1's child, and pid 1 reports how it ended
    if sample_end is not None and "signal" in sample_end:
        sig = sample_end["signal"]
    else:
        sig = -returncode if returncode is not None and returncode < 0 else None
    if sample_end is not None and "code" in sample_end and returncode is not None and returncode >= 0:
        returncode = sample_end["code"]
    cpu_used = (exit_rec or {}).get("cpu_s")
    if timed_out:
        status = "timeout"
        notes.append(f"killed at the wall-clock limit of {limits.timeout_s:g} s")
    elif sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu_used is not None and cpu_used >= cpu_s - 0.05):
        status = "timeout"
        notes.append(f"killed at the CPU limit of {cpu_s:g} s")
    elif sig is not None:
        status = "killed"
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        notes.append(f"killed by signal {name}")
    elif violations:
        status = "error"
        notes.append("refused: " + "; ".join(dict.fromkeys(violations)))
    elif setup is not None:
        status = "error"
        notes.append(f"could not set up the sandbox: {setup}")
    elif done is not None and returncode == 0:
        status = done.get("status") if done.get("status") in STATUSES else "error"
    else:
        status = "error"
        notes.append(f"exited with code {returncode} before the tests finished")
    if notes:
        text = (text.rstrip("\n") + "\n" if text else "") + "[sandbox] " + " | ".join(notes)
    if len(text) > limits.output_chars:
        text = "…" + text[-(limits.output_chars - 1):]
    # the sample's process reports the layers it finished; the supervisor's record is the fallback
    info = got or exit_rec or {}
    layers = tuple(info.get("layers") or ())
    return Result(status, duration, text, returncode, violations, layers, tuple(info.get("notes") or ()))


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_marked(marker: bytes, rounds: int = 3) -> None:
    """SIGKILL every process whose environment carries `marker` (a sandbox's processes that left its
    process group). Needed only without the pid namespace; a process that wiped its environment escapes."""
    me = str(os.getpid())
    for _ in range(rounds):
        found = False
        try:
            pids = [p for p in os.listdir("/proc") if p.isdigit() and p != me]
        except OSError:
            return
        for pid in pids:
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    env = f.read()
            except OSError:
                continue
            if marker in env:
                found = True
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        if not found:
            return


def _rmtree(path: str) -> None:
    def fix(func, p, _exc):  # a sample may have chmod-ed its own files to 000
        try:
            os.chmod(os.path.dirname(p), 0o700)
            os.chmod(p, 0o700)
            func(p)
        except OSError:
            pass

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=fix)
    else:
        shutil.rmtree(path, onerror=fix)


def run_many(jobs: Sequence[Job], limits: Limits = Limits(), *, workers: int = 1, **options: Any) -> list[Result]:
    """Run samples in parallel, `workers` sandboxes at a time. Each sandbox is its own process tree; the
    threads here only wait on pipes, so one hostile sample cannot hold up the others."""
    if workers < 1:
        raise UsageError(f"sandbox workers={workers}: expected at least 1")
    if not jobs:
        return []
    if workers == 1 or len(jobs) == 1:
        return [run(j, limits, **options) for j in jobs]
    with ThreadPoolExecutor(max_workers=min(workers, len(jobs)), thread_name_prefix="sandbox") as pool:
        return list(pool.map(lambda j: run(j, limits, **options), jobs))


@functools.lru_cache(maxsize=None)
def probe(isolation: str = "auto") -> dict:
    """What this machine gives a sandbox: the isolation layers a trivial sample got, and why not more."""
    r = run(Job("pass"), Limits(timeout_s=10), isolation=isolation)
    return {"status": r.status, "layers": list(r.isolation), "notes": list(r.notes), "output": r.output,
            "namespaces": "fs" in r.isolation and "locked" in r.isolation}
