#!/usr/bin/python3
"""Benchmarks of VM templates against every other way to get a running
guest, in one session on the built tree (see bench/README.md).

  bench/bench.py [--runs N] [--sizes MiB,...] [--density-max N] [--skip PART,...]

Parts: start (start to running, template-create against save, per size),
fanout, density, phases, replace (emulator-replace against managedsave and
start, 256 MiB and 4 GiB), inplace (save and restore with RAM in place
against sparse save and restore with 4 channels, 256 MiB and 4 GiB).  Results go to bench/results/: report.md,
results.json, start.png, density.png.  Progress goes to stderr.  It never
fails on a number: it measures and reports."""

import argparse
import glob
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

import raw_qemu_clone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")
MESON = os.path.join(BUILD, "meson")
# The private prefix and the guests' files live outside the checkout, where
# the unprivileged QEMU user can reach them (scripts/lib.sh: STATE_DIR).
STATE = subprocess.run(["sh", "-c", '. scripts/lib.sh && echo "$STATE_DIR"'], cwd=ROOT,
                       check=True, capture_output=True, text=True).stdout.strip()
PREFIX = os.path.join(STATE, "root")
WORK = os.path.join(STATE, "bench")
RESULTS = os.path.join(ROOT, "bench", "results")
TMPFS = "/dev/shm/libvirt-bench"
LOG = os.path.join(PREFIX, "var", "log", "libvirt", "virtqemud.log")
ENV = dict(os.environ,
           LD_LIBRARY_PATH=os.path.join(MESON, "src"),
           LIBVIRT_DIR_OVERRIDE="1",
           LIBVIRT_DEFAULT_URI="qemu:///system")
BEAT = re.compile(r"^HEARTBEAT n=\d+ .* rand=[0-9a-f]{16}$")
READY = re.compile(r"^GUEST-READY ")
GIB = 1 << 30
PERIOD = "0.02"       # heartbeat period of the start-time guests
IDLE_PERIOD = "10"    # and of the density guests, which mostly idle
FREE_FLOOR = 4 * GIB  # what the "as many as fit" runs leave free


class BenchError(Exception):
    pass


def progress(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


def virsh(*args):
    proc = subprocess.run([os.path.join(MESON, "tools", "virsh"), "-q", *args],
                          env=ENV, capture_output=True, text=True)
    if proc.returncode:
        raise BenchError("virsh %s: %s" % (" ".join(args), proc.stderr.strip()))
    return proc.stdout.strip()


def timed(func, *args):
    start = time.monotonic()
    func(*args)
    return (time.monotonic() - start) * 1000


def console_of(name):
    return os.path.join(WORK, name + ".console")


def wait_console(path, pattern, offset=0, timeout=900):
    """Monotonic time at which a complete line matching pattern is seen in
    path after byte offset."""
    end = time.monotonic() + timeout
    while True:
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read().decode(errors="replace").replace("\r", "")
            if any(pattern.match(line) for line in data.split("\n")[:-1]):
                return time.monotonic()
        except FileNotFoundError:
            pass
        if time.monotonic() > end:
            raise BenchError("nothing like %r in %s" % (pattern.pattern, path))
        time.sleep(0.002)


class Watch(threading.Thread):
    """Notes when each console first shows a line matching pattern after its
    offset, while the caller goes on: times are when lines appear, not when
    the caller gets round to look."""

    def __init__(self, paths, pattern, offsets=None, timeout=900):
        super().__init__(daemon=True)
        self.paths = paths
        self.pattern = pattern
        self.offsets = offsets or [0] * len(paths)
        self.timeout = timeout
        self.times = {}
        self.start()

    def run(self):
        end = time.monotonic() + self.timeout
        while len(self.times) < len(self.paths) and time.monotonic() < end:
            for path, offset in zip(self.paths, self.offsets):
                if path not in self.times:
                    try:
                        wait_console(path, self.pattern, offset, timeout=0)
                        self.times[path] = time.monotonic()
                    except BenchError:
                        pass
            time.sleep(0.002)

    def wait(self):
        """Monotonic times, one per path."""
        self.join()
        missing = [p for p in self.paths if p not in self.times]
        if missing:
            raise BenchError("no %r in %s" % (self.pattern.pattern, ", ".join(missing)))
        return [self.times[p] for p in self.paths]


def size_of(path):
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


def guest_xml(name, memory, period, template=None, file_memory=False):
    """Write the test guest's XML; template is None, 'disk' or 'tmpfs';
    file_memory gives it RAM in a file mapped shared."""
    args = [os.path.join(ROOT, "tests", "guest", "domxml.sh"), name, console_of(name),
            "--memory", str(memory), "--fill", str(memory // 2),
            "--period", period, "--no-verify"]
    if template:
        args.append("--template")
    if file_memory:
        args.append("--file-memory")
    xml = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    path = os.path.join(WORK, name + ".xml")
    with open(path, "w") as f:
        f.write(xml)
    return path


def restart_daemon(template_dir=None):
    """Restart the private daemon (domains keep running), its templates in
    template_dir instead of the default memory_template_dir."""
    if template_dir:
        ENV["VIRTQEMUD_MEMORY_TEMPLATE_DIR"] = template_dir
    else:
        ENV.pop("VIRTQEMUD_MEMORY_TEMPLATE_DIR", None)
    with open(os.path.join(PREFIX, "var", "run", "virtqemud.pid")) as f:
        pid = int(f.read())
    os.kill(pid, signal.SIGTERM)
    while os.path.exists("/proc/%d" % pid):
        time.sleep(0.05)
    subprocess.run([os.path.join(ROOT, "run"), "true"], env=ENV, check=True)


def template_dir(name):
    xml = virsh("dumpxml", "--inactive", name)
    return re.search(r"<template path='([^']+)'", xml).group(1)


def remove_domain(name):
    for cmd in (["destroy", name], ["undefine", "--remove-template", name]):
        try:
            virsh(*cmd)
        except BenchError:
            pass


def remove_bench_domains():
    for name in virsh("list", "--all", "--name").split():
        if name.startswith("bench-"):
            remove_domain(name)


def qemu_pid(name):
    with open(os.path.join(PREFIX, "var", "run", "libvirt", "qemu", name + ".pid")) as f:
        return int(f.read())


def smaps(pid):
    """USS and PSS in bytes, from /proc/PID/smaps_rollup."""
    fields = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                fields[parts[0].rstrip(":")] = int(parts[1]) * 1024
    return fields["Private_Clean"] + fields["Private_Dirty"], fields["Pss"]


def mem_used():
    info = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, value = line.split(":")
            info[key] = int(value.split()[0]) * 1024
    return info["MemTotal"] - info["MemAvailable"], info["MemAvailable"]


def median(values):
    return statistics.median(values) if values else float("nan")


def percentile(values, pct):
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, -(-pct * len(ordered) // 100) - 1)]


def pair_ratio(a, b):
    """Median of the ratios a[i] / b[i], taken pair by pair."""
    return median([x / y for x, y in zip(a, b)])


def build_clone_api():
    out = os.path.join(WORK, "clone-api")
    src = os.path.join(ROOT, "bench", "clone-api.c")
    if not os.path.exists(out) or os.path.getmtime(out) < os.path.getmtime(src):
        subprocess.run(["gcc", "-O2", "-Wall", "-Werror",
                        "-I", os.path.join(BUILD, "libvirt", "include"),
                        "-I", os.path.join(MESON, "include"),
                        "-o", out, src, "-L", os.path.join(MESON, "src"), "-lvirt"],
                       check=True)
    return out


class Clones:
    """Starts clones of one template and times them to their next heartbeat."""

    def __init__(self, template, clone_api):
        self.template = template
        self.clone_api = clone_api
        self.count = 0

    def next_name(self):
        self.count += 1
        name = "bench-c-%s-%d" % (self.template, self.count)
        if os.path.exists(console_of(name)):
            os.unlink(console_of(name))
        return name

    def virsh(self):
        """ms until virsh returns, ms until the heartbeat, clone name"""
        name = self.next_name()
        watch = Watch([console_of(name)], BEAT)
        start = time.monotonic()
        virsh("clone-from-template", self.template, "--name", name)
        returned = time.monotonic()
        [beat] = watch.wait()
        return (returned - start) * 1000, (beat - start) * 1000, name

    def api(self, count=1):
        """[(ms the call took, ms until the heartbeat), ...], names"""
        names = [self.next_name() for _ in range(count)]
        watch = Watch([console_of(name) for name in names], BEAT)
        proc = subprocess.run([self.clone_api, self.template, *names], env=ENV,
                              capture_output=True, text=True)
        if proc.returncode:
            raise BenchError("clone-api: " + proc.stderr.strip())
        beats = watch.wait()
        results = []
        for line, beat in zip(proc.stdout.splitlines(), beats):
            _, started, call = line.split()
            results.append((float(call), beat * 1000 - float(started)))
        return results, names


def machine():
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    qemu = subprocess.run(["/usr/bin/qemu-system-x86_64", "--version"], capture_output=True,
                          text=True).stdout.splitlines()[0]
    libvirt = subprocess.run([os.path.join(MESON, "tools", "virsh"), "--version"], env=ENV,
                             capture_output=True, text=True).stdout.strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem_used()[0] / GIB
                                                                      + mem_used()[1] / GIB, 1),
            "kernel": platform.release(), "qemu": qemu,
            "libvirt": libvirt + " + the template series", "accel": "TCG"}


def restore_running(name, image):
    """Restore name from image and wait until it runs (untimed)."""
    # QEMU empties the console file when it opens it
    os.unlink(console_of(name))
    virsh("restore", image)
    wait_console(console_of(name), BEAT)


def bench_start(size, runs, clone_api, results, skip, warm_restore):
    """Start to running for one guest size, and template-create against save."""
    res = results.setdefault("start", {}).setdefault(str(size), {})
    plain = "bench-plain-%d" % size
    plain_xml = guest_xml(plain, size, PERIOD)

    boots = 1 if "boot" in skip else runs
    progress("%d MiB: cold boot x%d" % (size, boots))
    res["boot"] = []
    for _ in range(boots):
        if os.path.exists(console_of(plain)):
            os.unlink(console_of(plain))
        watch = Watch([console_of(plain)], READY)
        start = time.monotonic()
        virsh("create", plain_xml)
        res["boot"].append((watch.wait()[0] - start) * 1000)
        if len(res["boot"]) < boots:
            virsh("destroy", plain)
    if "boot" in skip:
        del res["boot"]

    wait_console(console_of(plain), BEAT)
    plain_image = os.path.join(WORK, plain + ".save")
    virsh("save", plain, plain_image)

    # Template-create against save, of the same running guest each time: a
    # run saves, restores, and makes the template; the next run restores the
    # same image into a fresh definition.
    for kind in ("tmpfs", "disk") if "create" not in skip else ():
        tmpl = "bench-tmpl-%s-%d" % (kind, size)
        restart_daemon(TMPFS if kind == "tmpfs" else None)
        xml = guest_xml(tmpl, size, PERIOD, kind)
        image = os.path.join(TMPFS if kind == "tmpfs" else WORK, tmpl + ".save")
        progress("%d MiB, %s: template-create against save x%d" % (size, kind, runs))
        virsh("define", xml)
        # redefined from this, with its UUID, to take the saved image back
        with open(xml, "w") as f:
            f.write(virsh("dumpxml", "--inactive", tmpl))
        virsh("start", tmpl)
        wait_console(console_of(tmpl), BEAT)
        saves, creates = [], []
        for i in range(runs):
            saves.append(timed(virsh, "save", tmpl, image))
            res.setdefault("save_bytes", size_of(image))
            restore_running(tmpl, image)
            creates.append(timed(virsh, "template-create", tmpl))
            res.setdefault("template_bytes",
                           size_of(os.path.join(template_dir(tmpl), "template.save")))
            if i < runs - 1:
                virsh("undefine", "--remove-template", tmpl)
                virsh("define", xml)
                restore_running(tmpl, image)
        os.unlink(image)
        res["save_" + kind] = saves
        res["create_" + kind] = creates
        if kind == "tmpfs":
            virsh("undefine", "--remove-template", tmpl)
            restart_daemon()
    if "create" in skip:
        tmpl = "bench-tmpl-disk-%d" % size
        virsh("define", guest_xml(tmpl, size, PERIOD, "disk"))
        virsh("start", tmpl)
        wait_console(console_of(tmpl), BEAT)
        virsh("template-create", tmpl)

    progress("%d MiB: restore, create --paused, clones (virsh, C API), interleaved x%d"
             % (size, runs))
    clones = Clones("bench-tmpl-disk-%d" % size, clone_api)
    for key in ("restore", "paused", "clone_virsh_return", "clone_virsh", "clone_api_return",
                "clone_api"):
        res[key] = []
    for _ in range(runs):
        if warm_restore:
            with open(plain_image, "rb") as f:
                while f.read(1 << 24):
                    pass
        # QEMU empties the console file when it opens it
        os.unlink(console_of(plain))
        watch = Watch([console_of(plain)], BEAT)
        start = time.monotonic()
        virsh("restore", plain_image)
        res["restore"].append((watch.wait()[0] - start) * 1000)
        virsh("destroy", plain)
        res["paused"].append(timed(virsh, "create", "--paused", plain_xml))
        virsh("destroy", plain)
        returned, beat, name = clones.virsh()
        res["clone_virsh_return"].append(returned)
        res["clone_virsh"].append(beat)
        virsh("destroy", name)
        [(call, beat)], [name] = clones.api()
        res["clone_api_return"].append(call)
        res["clone_api"].append(beat)
        virsh("destroy", name)
    os.unlink(plain_image)

    progress("%d MiB: raw QEMU templating x%d (boots its own template)" % (size, runs))
    guest = subprocess.run([os.path.join(ROOT, "tests", "guest", "build.sh")], check=True,
                           capture_output=True, text=True).stdout.strip()
    res["raw"] = list(raw_qemu_clone.clone_times(os.path.join(guest, "vmlinuz"),
                                                 os.path.join(guest, "initrd.img"),
                                                 size, size // 2, PERIOD, runs))


class Beats(threading.Thread):
    """Notes when each heartbeat line appears on a console, until stopped."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path = path
        self.times = []
        self.stopped = threading.Event()
        self.start()

    def run(self):
        offset = size_of(self.path)
        rest = ""
        while not self.stopped.is_set():
            with open(self.path, "rb") as f:
                f.seek(offset)
                data = f.read()
            offset += len(data)
            lines = (rest + data.decode(errors="replace").replace("\r", "")).split("\n")
            rest = lines.pop()
            now = time.monotonic()
            self.times += [now for line in lines if BEAT.match(line)]
            time.sleep(0.002)

    def stop(self):
        self.stopped.set()
        self.join()

    def longest_gap(self, start, end):
        """Longest time in ms between heartbeats around [start, end]."""
        times = [t for t in self.times if start - 2 <= t <= end + 2]
        return max((b - a for a, b in zip(times, times[1:])), default=float("nan")) * 1000


class MemPeak(threading.Thread):
    """Highest host memory used while it runs."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak = 0
        self.stopped = threading.Event()
        self.start()

    def run(self):
        while not self.stopped.is_set():
            self.peak = max(self.peak, mem_used()[0])
            time.sleep(0.005)

    def stop(self):
        self.stopped.set()
        self.join()
        return self.peak


def job_downtime(name):
    out = virsh("domjobinfo", name, "--completed")
    found = re.search(r"^Total downtime:\s+(\d+)\s+ms", out, re.M)
    if not found:
        raise BenchError("no downtime in the completed job of %s: %s" % (name, out))
    return int(found.group(1))


def bench_replace(size, runs, results):
    """virsh emulator-replace of a running guest with RAM in a shared file,
    against managedsave and start of the same guest, run by run."""
    res = results.setdefault("replace", {}).setdefault(str(size), {})
    name = "bench-replace-%d" % size
    virsh("define", guest_xml(name, size, "0.05", file_memory=True))
    virsh("start", name)
    wait_console(console_of(name), READY)
    wait_console(console_of(name), BEAT)
    downtime, gap, call, added, save_start = [], [], [], [], []
    for run in range(runs):
        progress("replace %d MiB, run %d" % (size, run + 1))
        beats = Beats(console_of(name))
        time.sleep(1)
        before = mem_used()[0]
        peak = MemPeak()
        start = time.monotonic()
        virsh("emulator-replace", name)
        end = time.monotonic()
        added.append(peak.stop() - before)
        time.sleep(1)
        beats.stop()
        call.append((end - start) * 1000)
        gap.append(beats.longest_gap(start, end))
        downtime.append(job_downtime(name))

        start = time.monotonic()
        virsh("managedsave", name)
        os.unlink(console_of(name))
        virsh("start", name)
        save_start.append((wait_console(console_of(name), BEAT) - start) * 1000)
    res.update(downtime=downtime, gap=gap, call=call, added=added, save_start=save_start)
    remove_domain(name)


def bench_in_place(size, runs, results):
    """virsh save and restore of a guest with template memory (RAM in place)
    against virsh save --image-format sparse --parallel-channels 4 and its
    restore of the same guest with its RAM in a file mapped shared (libvirt's
    fastest way that writes the RAM), run by run."""
    res = results.setdefault("inplace", {}).setdefault(str(size), {})
    kept, full = "bench-inplace-%d" % size, "bench-sparse-%d" % size
    images = {kept: os.path.join(WORK, kept + ".save"),
              full: os.path.join(WORK, full + ".save")}
    virsh("define", guest_xml(kept, size, "0.05", template="disk"))
    virsh("define", guest_xml(full, size, "0.05", file_memory=True))
    for name in (kept, full):
        virsh("start", name)
        wait_console(console_of(name), READY)
        wait_console(console_of(name), BEAT)
    times = {key: [] for key in ("save", "restore", "sparse_save", "sparse_restore")}
    sizes = {}
    for run in range(runs):
        progress("in place %d MiB, run %d" % (size, run + 1))
        for name, key, opts in ((kept, "", ()),
                                (full, "sparse_", ("--image-format", "sparse",
                                                   "--parallel-channels", "4"))):
            if os.path.exists(images[name]):
                os.unlink(images[name])
            start = time.monotonic()
            virsh("save", name, images[name], *opts)
            times[key + "save"].append((time.monotonic() - start) * 1000)
            sizes[key + "image"] = size_of(images[name])
            os.unlink(console_of(name))
            start = time.monotonic()
            virsh("restore", images[name], *opts[2:])
            times[key + "restore"].append((wait_console(console_of(name), BEAT) - start) * 1000)
    res.update(times, **sizes)
    for name in (kept, full):
        remove_domain(name)


def bench_fanout(size, clone_api, results, width=16):
    """width clones requested at once, each by its own C API client."""
    tmpl = "bench-tmpl-disk-%d" % size
    progress("fan-out: %d clones of the %d MiB template at once" % (width, size))
    clones = Clones(tmpl, clone_api)
    names = [clones.next_name() for _ in range(width)]
    watch = Watch([console_of(name) for name in names], BEAT, timeout=120)
    procs = [subprocess.Popen([clone_api, tmpl, name], env=ENV, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for name in names]
    outs = [proc.communicate() + (proc.returncode,) for proc in procs]
    watch.join()
    times, calls, errors = [], [], []
    for name, (out, err, rc) in zip(names, outs):
        if rc or console_of(name) not in watch.times:
            errors.append(err.strip() or "%s did not run" % name)
            continue
        _, started, call = out.split()
        calls.append(float(call))
        times.append(watch.times[console_of(name)] * 1000 - float(started))
    for name in names:
        remove_domain(name)
    results["fanout"] = {"size": size, "width": width, "times": times, "calls": calls,
                         "errors": errors}


def density_sample(pids):
    per = [smaps(pid) for pid in pids]
    return {"uss": [u for u, _ in per], "pss": [p for _, p in per]}


def start_cold(names, xml_of):
    for name in names:
        if os.path.exists(console_of(name)):
            os.unlink(console_of(name))
        virsh("create", xml_of(name))
    for name in names:
        wait_console(console_of(name), READY)


def bench_density(clone_api, results, max_clones, size=1024):
    """Memory of N clones against N cold-booted guests, and how many fit."""
    res = results["density"] = {"size": size, "clones": {}, "cold": {}}
    tmpl = "bench-dtmpl"
    progress("density: %d MiB template" % size)
    virsh("define", guest_xml(tmpl, size, IDLE_PERIOD, "disk"))
    virsh("start", tmpl)
    wait_console(console_of(tmpl), BEAT)
    virsh("template-create", tmpl)
    clones = Clones(tmpl, clone_api)

    def xml_of(name):
        # Each its own UUID, derived from its name.
        return guest_xml(name, size, IDLE_PERIOD)

    settle = 3
    for n in (1, 8, 32):
        progress("density: %d clones" % n)
        before = mem_used()[0]
        _, names = clones.api(n)
        time.sleep(settle)
        sample = density_sample([qemu_pid(name) for name in names])
        sample["host_used_before"], sample["host_used_after"] = before, mem_used()[0]
        res["clones"][str(n)] = sample
        for name in names:
            virsh("destroy", name)

    names = []
    per_guest = None
    before = mem_used()[0]
    for n in (1, 8, 32):
        if per_guest and mem_used()[1] - (n - len(names)) * per_guest < FREE_FLOOR:
            progress("density: %d cold-booted guests would not fit, skipped" % n)
            break
        progress("density: %d cold-booted guests" % n)
        new = ["bench-cold-%d" % i for i in range(len(names) + 1, n + 1)]
        start_cold(new, xml_of)
        names += new
        time.sleep(settle)
        sample = density_sample([qemu_pid(name) for name in names])
        sample["host_used_before"], sample["host_used_after"] = before, mem_used()[0]
        res["cold"][str(n)] = sample
        per_guest = (sample["host_used_after"] - before) / n

    # As many as fit with FREE_FLOOR left, one more while the last one's
    # share of used memory still fits.
    progress("density: cold-booted guests until %d GiB are left" % (FREE_FLOOR // GIB))
    while per_guest and mem_used()[1] - 1.2 * per_guest >= FREE_FLOOR:
        name = "bench-cold-%d" % (len(names) + 1)
        start_cold([name], xml_of)
        names.append(name)
        time.sleep(1)
    res["cold_fit"] = len(names)
    res["cold_fit_available"] = mem_used()[1]
    progress("density: %d cold-booted guests fit" % len(names))
    for name in names:
        virsh("destroy", name)

    progress("density: clones until %d GiB are left (at most %d)" % (FREE_FLOOR // GIB, max_clones))
    names = []
    per_clone = None
    batch = 8
    while len(names) < max_clones:
        batch = min(batch, max_clones - len(names))
        if per_clone and mem_used()[1] - 1.5 * batch * per_clone < FREE_FLOOR:
            break
        before = mem_used()[0]
        _, new = clones.api(batch)
        names += new
        time.sleep(1)
        per_clone = max(per_clone or 0, (mem_used()[0] - before) / len(new))
    time.sleep(settle)
    res["clone_fit"] = len(names)
    res["clone_fit_capped"] = len(names) >= max_clones
    res["clone_fit_available"] = mem_used()[1]
    progress("density: %d clones fit%s" % (len(names), " (the cap)" if res["clone_fit_capped"]
                                           else ""))
    for name in names:
        virsh("destroy", name)
    virsh("undefine", "--remove-template", tmpl)


# Phases of a start, each from one marker in the daemon's debug log to the
# next one found.
PHASES = [
    ("request, template image and XML checks", r"virDomainCloneFromTemplate:|virDomainCreateXML:"),
    ("qemuProcessInit and PrepareDomain/Host", r"qemuProcessStart:"),
    ("log file, namespace, security labels, fork and exec", r"qemuProcessLaunch:.*Creating domain log file"),
    ("waiting for the child's handshake", r"Waiting for handshake from child"),
    ("cgroups", r"Setting up domain cgroup"),
    ("perf, emulator tuning, resctrl, labelling the process", r"Setting up domain perf"),
    ("QEMU start-up and QMP handshake", r"Waiting for monitor to show up"),
    ("hotpluggable and vCPU info", r"setting up hotpluggable cpus"),
    ("guest CPU check (or its skip)", r"Verifying and updating provided guest CPU|Guest CPU was verified before"),
    ("IOThreads, vCPU and emulator tuning, passwords, links, memory, lifecycle", r"Detecting IOThread PIDs"),
    ("incoming state: migrate-incoming and load", r"Setting up incoming migration"),
    ("status file, device and disk refresh", r"qemuProcessFinishStartup"),
    ("resume (cont), events, reply", r"qemuProcessStartCPUs:"),
]
LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\.(\d{3})\+0000: (\d+): ")


def log_marks(path):
    """[(phase label, seconds)] of the phase markers found in order in the
    log, ending with the last line of the thread which ran the start."""
    def seconds(m):
        return time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")) + int(m.group(2)) / 1000

    with open(path, errors="replace") as f:
        lines = [(m, line) for m, line in ((LOG_LINE.match(l), l) for l in f) if m]
    marks = []
    worker = None
    i = 0
    for label, pattern in PHASES:
        regex = re.compile(pattern)
        for j in range(i, len(lines)):
            if regex.search(lines[j][1]):
                marks.append((label, seconds(lines[j][0])))
                worker = worker or lines[j][0].group(3)
                i = j
                break
    last = [m for m, _ in lines if m.group(3) == worker][-1]
    marks.append(("end", seconds(last)))
    return marks


def bench_phases(clone_api, results, size=256):
    """One clone and one create --paused with the daemon's debug log on."""
    tmpl = "bench-ptmpl"
    virsh("define", guest_xml(tmpl, size, PERIOD, "disk"))
    virsh("start", tmpl)
    wait_console(console_of(tmpl), BEAT)
    virsh("template-create", tmpl)
    plain_xml = guest_xml("bench-pplain", size, PERIOD)
    clones = Clones(tmpl, clone_api)
    admin = os.path.join(MESON, "tools", "virt-admin")
    env = dict(ENV, LIBVIRT_ADMIN_DEFAULT_URI="virtqemud:///system")
    res = results["phases"] = {}
    for what in ("clone", "paused"):
        log = os.path.join(WORK, "phases-%s.log" % what)
        if os.path.exists(log):
            os.unlink(log)
        subprocess.run([admin, "daemon-log-filters", "1:qemu 1:libvirt.domain 3:qemu.qemu_monitor_json"
                        " 3:qemu.qemu_monitor 3:qemu.qemu_command 3:qemu.qemu_capabilities"],
                       env=env, check=True, capture_output=True)
        subprocess.run([admin, "daemon-log-outputs", "1:file:" + log], env=env, check=True,
                       capture_output=True)
        try:
            if what == "clone":
                [(client_ms, _)], [name] = clones.api()
            else:
                client_ms = timed(virsh, "create", "--paused", plain_xml)
                name = "bench-pplain"
        finally:
            subprocess.run([admin, "daemon-log-outputs", "3:file:" + LOG], env=env,
                           check=True, capture_output=True)
            subprocess.run([admin, "daemon-log-filters", ""], env=env, check=True,
                           capture_output=True)
        virsh("destroy", name)
        marks = log_marks(log)
        phases = []
        for (label, t), (_, t_next) in zip(marks, marks[1:]):
            phases.append((label, (t_next - t) * 1000))
        res[what] = {"phases": phases, "logged_ms": (marks[-1][1] - marks[0][1]) * 1000,
                     "client_ms": client_ms}
    virsh("undefine", "--remove-template", tmpl)


def fmt(ms):
    return "%.0f" % ms


def mib(b):
    return "%.0f" % (b / (1 << 20))


def report(results, runs):
    m = results["machine"]
    out = ["# VM templates: benchmarks", "",
           "Machine: %s, %d cores, %.0f GiB, kernel %s, %s, %s, %s. Medians of %d runs; "
           "ratios are medians of pair-by-pair ratios taken in the same run, except where they "
           "say medians. Percentiles are nearest-rank."
           % (m["cpu"], m["cores"], m["memory_gib"], m["kernel"], m["qemu"], m["libvirt"],
              m["accel"], runs), ""]
    start = results.get("start", {})
    if start:
        sizes = sorted(start, key=int)
        out += ["## Start to running (ms; guest RAM half filled at boot)", "",
                "| method | " + " | ".join("%s MiB" % s for s in sizes) + " |",
                "|---|" + "---|" * len(sizes)]
        rows = [("cold boot: `virsh create` to the ready marker", "boot"),
                ("`virsh restore` to the next heartbeat", "restore"),
                ("libvirt's paused start: `virsh create --paused` returns", "paused"),
                ("`virsh clone-from-template` to the next heartbeat", "clone_virsh"),
                ("`virsh clone-from-template` returns", "clone_virsh_return"),
                ("C API clone to the next heartbeat", "clone_api"),
                ("C API `virDomainCloneFromTemplate()` returns", "clone_api_return"),
                ("raw QEMU templating to the next heartbeat (no libvirt)", "raw")]
        for label, key in [(label, key) for label, key in rows
                           if all(key in start[s] for s in sizes)]:
            out.append("| %s | %s |" % (label, " | ".join(fmt(median(start[s][key])) for s in sizes)))
        out += ["", "| ratio | " + " | ".join("%s MiB" % s for s in sizes)
                + " | target |", "|---|" + "---|" * len(sizes) + "---|"]
        # (label, a, b, paired in the same runs, target)
        ratios = [("virsh clone returns / `create --paused` returns", "clone_virsh_return", "paused",
                   True, "at most 0.7"),
                  ("C API clone returns (no virsh start-up) / `create --paused` returns",
                   "clone_api_return", "paused", True, ""),
                  ("`virsh restore` / virsh clone, both to a heartbeat", "restore", "clone_virsh",
                   True, "at least 5 at 4 GiB"),
                  ("cold boot / virsh clone to a heartbeat (medians)", "boot", "clone_virsh", False,
                   ""),
                  ("virsh clone / raw QEMU, both to a heartbeat (medians)", "clone_virsh", "raw",
                   False, "")]
        for label, a, b, paired, target in [r for r in ratios
                                            if all(r[1] in start[s] and r[2] in start[s]
                                                   for s in sizes)]:
            ratio = pair_ratio if paired else (lambda x, y: median(x) / median(y))
            out.append("| %s | %s | %s |" % (label, " | ".join("%.2f" % ratio(start[s][a], start[s][b])
                                                                for s in sizes), target))
        first, last = sizes[0], sizes[-1]
        flat = median(start[last]["clone_virsh"]) / median(start[first]["clone_virsh"])
        out += ["", "Clone to heartbeat at %s MiB / at %s MiB: %.2f (target: at most 1.2)."
                % (last, first, flat), ""]
    if start and all("save_disk" in start[s] for s in start):
        sizes = sorted(start, key=int)
        out += ["## Template-create against `virsh save` of the same running guest (ms)", "",
                "| size | save, tmpfs | template-create, tmpfs | ratio | save, disk | "
                "template-create, disk | ratio | save image | template image |",
                "|---|---|---|---|---|---|---|---|---|"]
        for s in sizes:
            r = start[s]
            out.append("| %s MiB | %s | %s | %.1f | %s | %s | %.1f | %s MiB | %s KiB |" % (
                s, fmt(median(r["save_tmpfs"])), fmt(median(r["create_tmpfs"])),
                pair_ratio(r["save_tmpfs"], r["create_tmpfs"]),
                fmt(median(r["save_disk"])), fmt(median(r["create_disk"])),
                pair_ratio(r["save_disk"], r["create_disk"]),
                mib(r["save_bytes"]), "%.0f" % (r["template_bytes"] / 1024)))
        out += ["", "Target: template-create at least 10x faster than save at 4 GiB on tmpfs. "
                "The save image holds the guest's RAM; the template image only its device state.",
                ""]
    fan = results.get("fanout")
    if fan:
        t, c = fan["times"], fan.get("calls") or [float("nan")]
        out += ["## Fan-out: %d clones of the %d MiB template requested at once" % (fan["width"], fan["size"]),
                "", "%d of %d succeeded (target: all). Each by its own C API client:" % (len(t), fan["width"]),
                "", "| ms | p50 | p95 | p95/p50 (target: at most 3) |", "|---|---|---|---|",
                "| request to heartbeat | %s | %s | %.2f |" % (fmt(percentile(t, 50)), fmt(percentile(t, 95)),
                                                            percentile(t, 95) / percentile(t, 50)),
                "| the API call | %s | %s | %.2f |" % (fmt(percentile(c, 50)), fmt(percentile(c, 95)),
                                                     percentile(c, 95) / percentile(c, 50)), ""]
        if fan["errors"]:
            out += ["Errors: " + "; ".join(fan["errors"]), ""]
    dens = results.get("density")
    if dens:
        out += ["## Density: %d MiB guests, half the RAM filled at boot (MiB)" % dens["size"], "",
                "| guests | kind | USS per guest | PSS per guest | host used before | after | "
                "used per guest |", "|---|---|---|---|---|---|---|"]
        for kind in ("clones", "cold"):
            for n, s in sorted(dens[kind].items(), key=lambda kv: int(kv[0])):
                out.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                    n, "clones" if kind == "clones" else "cold-booted",
                    mib(median(s["uss"])), mib(median(s["pss"])), mib(s["host_used_before"]),
                    mib(s["host_used_after"]),
                    mib((s["host_used_after"] - s["host_used_before"]) / int(n))))
        skipped = [n for n in dens["clones"] if n not in dens["cold"]]
        if skipped:
            out += ["", "Not booted cold: %s guests, which would not leave %d GiB free."
                    % (", ".join(skipped), FREE_FLOOR // GIB)]
        uss = median(dens["clones"]["8"]["uss"]) if "8" in dens["clones"] else float("nan")
        out += ["", "Clone USS / guest RAM: %.1f%% (target: at most 10%%)."
                % (100 * uss / (dens["size"] << 20)), ""]
        if "clone_fit" in dens:
            out += ["With %d GiB left free: %d cold-booted guests fit (%.1f GiB then available); "
                    "%s%d clones started (%.1f GiB then available): %.1fx (target: at least 4x)."
                    % (FREE_FLOOR // GIB, dens["cold_fit"], dens["cold_fit_available"] / GIB,
                       "the cap of " if dens["clone_fit_capped"] else "", dens["clone_fit"],
                       dens["clone_fit_available"] / GIB,
                       dens["clone_fit"] / max(1, dens["cold_fit"])), ""]
    rep = results.get("replace", {})
    if rep:
        sizes = sorted(rep, key=int)
        out += ["## Replacing a running guest's QEMU (`virsh emulator-replace`; ms)", "",
                "RAM in a file mapped shared, half filled; against `virsh managedsave` and "
                "`virsh start` of the same guest to its next heartbeat, run by run.", "",
                "| | " + " | ".join("%s MiB" % s for s in sizes) + " |",
                "|---|" + "---|" * len(sizes)]
        rows = [("downtime (the job's completed statistics)", "downtime"),
                ("longest pause between heartbeats (every 50 ms)", "gap"),
                ("`virsh emulator-replace` returns", "call"),
                ("`managedsave` + `start` to the next heartbeat", "save_start")]
        for label, key in rows:
            out.append("| %s | %s |" % (label, " | ".join(fmt(median(rep[s][key])) for s in sizes)))
        out.append("| host memory added while both QEMUs exist (peak, MiB) | %s |"
                   % " | ".join("%.0f" % (median(rep[s]["added"]) / (1 << 20)) for s in sizes))
        out += ["", "| ratio | value | target |", "|---|---|---|"]
        if "256" in rep and "4096" in rep:
            out.append("| downtime 4 GiB / 256 MiB (medians) | %.2f | at most 1.5 |"
                       % (median(rep["4096"]["downtime"]) / median(rep["256"]["downtime"])))
            out.append("| heartbeat gap 4 GiB / 256 MiB (medians) | %.2f | at most 1.5 |"
                       % (median(rep["4096"]["gap"]) / median(rep["256"]["gap"])))
        for s in sizes:
            out.append("| %s MiB: downtime / (managedsave + start) | %.3f | at most 0.1 at 4 GiB |"
                       % (s, pair_ratio(rep[s]["downtime"], rep[s]["save_start"])))
        out.append("")
    inp = results.get("inplace", {})
    if inp:
        sizes = sorted(inp, key=int)
        out += ["## Save and restore with RAM in place (ms)", "",
                "A guest with template memory, half filled, against the same guest with its RAM "
                "in a file mapped shared saved with `--image-format sparse --parallel-channels 4` "
                "and restored with 4 channels, run by run. Restore is timed to the guest's next "
                "heartbeat.", "",
                "| | " + " | ".join("%s MiB" % s for s in sizes) + " |",
                "|---|" + "---|" * len(sizes)]
        for label, key in (("`virsh save`, RAM in place", "save"),
                           ("`virsh save`, sparse, 4 channels", "sparse_save"),
                           ("`virsh restore`, RAM in place", "restore"),
                           ("`virsh restore`, sparse, 4 channels", "sparse_restore")):
            out.append("| %s | %s |" % (label, " | ".join(fmt(median(inp[s][key])) for s in sizes)))
        out.append("| image size, RAM in place / sparse (MiB) | %s |" % " | ".join(
            "%.1f / %.0f" % (inp[s]["image"] / (1 << 20), inp[s]["sparse_image"] / (1 << 20))
            for s in sizes))
        out += ["", "| ratio (median of run-by-run ratios) | value | target |", "|---|---|---|"]
        for s in sizes:
            for what in ("save", "restore"):
                out.append("| %s MiB: sparse %s / %s in place | %.1f | at least 20 at 4 GiB |"
                           % (s, what, what, pair_ratio(inp[s]["sparse_" + what], inp[s][what])))
        out.append("")
    ph = results.get("phases")
    if ph:
        out += ["## Where a start's time goes (daemon debug log, 256 MiB guest, one start each)", ""]
        for what, title in (("clone", "C API clone"), ("paused", "`virsh create --paused`")):
            r = ph[what]
            out += ["%s: %s ms logged by the daemon, %s ms seen by the client (%s)." % (
                title, fmt(r["logged_ms"]), fmt(r["client_ms"]),
                "the API call" if what == "clone" else "virsh, its start-up included"), "",
                "| phase | ms |", "|---|---|"]
            out += ["| %s | %s |" % (label, fmt(ms)) for label, ms in r["phases"]]
            out.append("")
    return "\n".join(out) + "\n"


def plots(results):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    start = results.get("start")
    if start:
        sizes = sorted(start, key=int)
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for key, label in (("boot", "cold boot"), ("restore", "virsh restore"),
                           ("paused", "virsh create --paused (returns)"),
                           ("clone_virsh", "virsh clone-from-template"),
                           ("clone_api", "C API clone"), ("raw", "raw QEMU templating")):
            if not all(key in start[s] for s in sizes):
                continue
            ax.plot([int(s) for s in sizes], [median(start[s][key]) for s in sizes], marker="o",
                    label=label)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks([int(s) for s in sizes], [s for s in sizes])
        ax.set_xlabel("guest RAM (MiB), half filled")
        ax.set_ylabel("start to running (ms, median)")
        ax.legend(fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
        fig.tight_layout()
        fig.savefig(os.path.join(RESULTS, "start.png"), dpi=120)
    dens = results.get("density")
    if dens:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for kind, label in (("clones", "clones"), ("cold", "cold-booted")):
            ns = sorted(dens[kind], key=int)
            ax.plot([int(n) for n in ns],
                    [(dens[kind][n]["host_used_after"] - dens[kind][n]["host_used_before"]) / GIB
                     for n in ns], marker="o", label=label + ": host memory used")
            ax.plot([int(n) for n in ns], [sum(dens[kind][n]["pss"]) / GIB for n in ns],
                    marker="x", linestyle="--", label=label + ": sum of PSS")
        ax.set_xlabel("guests (%d MiB, half filled)" % dens["size"])
        ax.set_ylabel("GiB")
        ax.legend(fontsize=8)
        ax.grid(True, alpha=0.3)
        fig.tight_layout()
        fig.savefig(os.path.join(RESULTS, "density.png"), dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sizes", default="256,1024,4096")
    parser.add_argument("--density-max", type=int, default=160,
                        help="most clones to start in the as-many-as-fit run")
    parser.add_argument("--warm-restore", action="store_true",
                        help="read the save image into the page cache before each restore")
    parser.add_argument("--skip", default="",
                        help="parts to leave out: start,boot,create,fanout,density,"
                        "phases,replace,inplace")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    sizes = [int(s) for s in args.sizes.split(",")]
    fanout_size = 1024 if 1024 in sizes else sizes[0]

    subprocess.run([os.path.join(ROOT, "run"), "true"], check=True)
    os.makedirs(WORK, exist_ok=True)
    os.makedirs(RESULTS, exist_ok=True)
    os.makedirs(TMPFS, exist_ok=True)
    clone_api = build_clone_api()
    results = {"machine": machine(), "runs": args.runs}
    progress("%s, %d cores, %s" % (results["machine"]["cpu"], results["machine"]["cores"],
                                   results["machine"]["qemu"]))
    remove_bench_domains()
    try:
        if "start" not in skip:
            for size in sizes:
                bench_start(size, args.runs, clone_api, results, skip, args.warm_restore)
                if "fanout" not in skip and size == fanout_size:
                    bench_fanout(size, clone_api, results)
                remove_bench_domains()
        elif "fanout" not in skip:
            raise BenchError("the fan-out uses a template of the start part")
        if "replace" not in skip:
            for size in (256, 4096):
                bench_replace(size, args.runs, results)
        if "inplace" not in skip:
            for size in (256, 4096):
                bench_in_place(size, args.runs, results)
        if "phases" not in skip:
            bench_phases(clone_api, results)
        if "density" not in skip:
            bench_density(clone_api, results, args.density_max)
    finally:
        remove_bench_domains()
        shutil.rmtree(TMPFS, ignore_errors=True)
        for image in glob.glob(os.path.join(WORK, "*.save")):
            os.unlink(image)
        with open(os.path.join(RESULTS, "results.json"), "w") as f:
            json.dump(results, f, indent=1)
    text = report(results, args.runs)
    with open(os.path.join(RESULTS, "report.md"), "w") as f:
        f.write(text)
    plots(results)
    print(text)
    progress("results in %s" % RESULTS)


if __name__ == "__main__":
    try:
        main()
    except BenchError as e:
        progress("error: %s" % e)
        sys.exit(1)
