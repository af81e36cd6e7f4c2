#!/usr/bin/env python3
"""The floor libvirt adds overhead to: VM templating driven directly over
QMP, as in ../shared/DESIGN.md.  The template and its clones are plain
QEMU processes in a scratch directory: libvirt is not involved at all.

  raw_qemu_clone.py KERNEL INITRD MEMORY_MIB FILL_MIB PERIOD RUNS

Prints one line per clone: milliseconds from spawning QEMU to the guest's
next heartbeat on its serial console."""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time

QEMU = "/usr/bin/qemu-system-x86_64"


class QMP:
    def __init__(self, path):
        for _ in range(500):
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(path)
                break
            except OSError:
                time.sleep(0.005)
        self.file = self.sock.makefile("rw")
        self.file.readline()
        self.cmd("qmp_capabilities")

    def cmd(self, name, **args):
        self.file.write(json.dumps({"execute": name, "arguments": args}) + "\n")
        self.file.flush()
        while True:
            reply = json.loads(self.file.readline())
            if "return" in reply:
                return reply["return"]
            if "error" in reply:
                raise RuntimeError("%s: %s" % (name, reply["error"]))


def qemu(workdir, name, memory, share, kernel, initrd, fill, period, incoming):
    console = os.path.join(workdir, name + ".console")
    args = [QEMU, "-machine", "pc,accel=tcg,memory-backend=pc.ram",
            "-object", json.dumps({"qom-type": "memory-backend-file", "id": "pc.ram",
                                   "mem-path": os.path.join(workdir, "pc.ram"),
                                   "share": share, "size": memory << 20}),
            "-m", str(memory), "-nodefaults", "-display", "none", "-no-user-config",
            "-kernel", kernel, "-initrd", initrd,
            "-append", "console=ttyS0 quiet panic=-1 guest.fill=%d guest.period=%s guest.verify=0"
            % (fill, period),
            "-serial", "file:" + console,
            "-qmp", "unix:%s/%s.qmp,server=on,wait=off" % (workdir, name)]
    if incoming:
        args += ["-incoming", "defer"]
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL)
    try:
        return proc, QMP("%s/%s.qmp" % (workdir, name)), console
    except BaseException:
        proc.kill()
        raise


def wait_line(path, prefix, after=0, timeout=600):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with open(path, errors="replace") as f:
                for line in f:
                    line = line.replace("\r", "")
                    if line.startswith(prefix) and line.endswith("\n"):
                        return line
        except FileNotFoundError:
            pass
        time.sleep(0.002)
    raise TimeoutError("no %r in %s" % (prefix, path))


def clone_times(kernel, initrd, memory, fill, period, runs):
    """Boot a template, save it, then yield each clone's start-to-heartbeat ms."""
    with tempfile.TemporaryDirectory(dir="/var/tmp") as workdir:
        proc, qmp, console = qemu(workdir, "template", memory, True, kernel, initrd, fill,
                                  period, False)
        try:
            wait_line(console, "HEARTBEAT n=2 ")
        except BaseException:
            proc.kill()
            raise
        qmp.cmd("stop")
        qmp.cmd("migrate-set-capabilities",
                capabilities=[{"capability": "x-ignore-shared", "state": True}])
        qmp.cmd("migrate", uri="exec:cat > %s/state" % workdir)
        while qmp.cmd("query-migrate").get("status") != "completed":
            time.sleep(0.01)
        qmp.cmd("quit")
        proc.wait()
        for i in range(runs):
            start = time.monotonic()
            proc, qmp, console = qemu(workdir, "clone%d" % i, memory, False,
                                      kernel, initrd, fill, period, True)
            qmp.cmd("migrate-set-capabilities",
                    capabilities=[{"capability": "x-ignore-shared", "state": True}])
            qmp.cmd("migrate-incoming", uri="exec:cat %s/state" % workdir)
            while qmp.cmd("query-status")["status"] != "paused":
                time.sleep(0.001)
            qmp.cmd("cont")
            try:
                wait_line(console, "HEARTBEAT")
                yield (time.monotonic() - start) * 1000
            finally:
                proc.kill()
                proc.wait()


def main():
    kernel, initrd, memory, fill, period, runs = sys.argv[1:7]
    for ms in clone_times(kernel, initrd, int(memory), int(fill), period, int(runs)):
        print("%.0f" % ms, flush=True)


if __name__ == "__main__":
    main()
