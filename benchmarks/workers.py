"""One measurement in a fresh Python process, for the benchmarks that compare zero with PyTorch.

Each framework is timed in its own subprocess, the two taking turns: in one process, the idle
threads of one framework's BLAS or OpenMP pool keep spinning after its last product and take
the cores from the other's next steps (PyTorch's MLP steps ran up to twice as slow after
zero's), and each one's peak memory could not be told apart. A benchmark file is its own
worker (`python benchmarks/bench_conv.py --worker torch --repeats 5`, say): it prints its
result as one JSON line, which `run_worker` returns.

Importing zero sets the C allocator to keep freed memory for reuse (zero.host_memory.
keep_freed_host_memory); PyTorch leaves the defaults, and so do its workers here, even those
that import zero to read MNIST (ZERO_KEEP_FREED_MEMORY=0). The conv and U-Net benchmarks also
time PyTorch with zero's settings (GLIBC_TUNABLES), as a second reference: on this machine it
gains as much or more from them. (bench_overhead runs both frameworks in one process, with
zero's settings; its arrays are a few hundred bytes, far below the allocator's thresholds.)
"""
import functools
import json
import math
import mmap
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@functools.lru_cache(maxsize=None)
def worker_threads():
    """The number of threads every worker computes with, zero's BLAS and PyTorch alike: the count
    OMP_NUM_THREADS or OPENBLAS_NUM_THREADS asks for (so OPENBLAS_NUM_THREADS=1 on a busy machine
    limits both, not zero alone), else PyTorch's own default (the physical cores), else the CPUs.
    Left to themselves, OpenBLAS takes the logical CPUs and PyTorch the physical cores: twice as
    many threads for zero on a machine with SMT."""
    for name in THREAD_VARIABLES[:2]:
        if os.environ.get(name, "").isdigit() and int(os.environ[name]) > 0:
            return int(os.environ[name])
    try:
        import torch
    except ImportError:
        return os.cpu_count() or 1
    return torch.get_num_threads()


# Core distance: on a virtual machine the host places the two CPUs near each other or far apart, and moves
# them. On the 2-core machine of README's table, core_round_trip took 204-301 ns (median 222) in some spells
# and 333-403 ns (median 352) in others, spells of seconds to minutes (300 probes over 2.5 minutes,
# 2026-12-06). In the far spells a step of zero's convolution took about 0.25 s instead of 0.14-0.15 s while
# OpenBLAS's two threads ran its products, each reading rows the other core had just written (since
# zero.threads, 0.136-0.148 s), a VAE epoch 1.6-1.9 times as long in
# zero, PyTorch and NumPy by hand alike, while PyTorch's convolution (oneDNN's, each thread on its own part
# of the work) kept its time. MEASUREMENTS.md has the measurements.
ROUND_TRIPS = []  # (worker script, framework, ns) measured by run_worker before each worker; run.py reads them
CORE_SPREAD = 1.6  # within one benchmark, round trips ranging wider than this: the host moved the CPUs


def answer_pings(path, cpu):
    """The other end of core_round_trip (`python workers.py --answer-pings PATH CPU`): on `cpu`, turn each 1
    written into the first byte of the file at `path`, mapped into memory, into a 2, until a 0 comes."""
    os.sched_setaffinity(0, {cpu})
    with open(path, "r+b") as file, mmap.mmap(file.fileno(), 64) as flag:
        flag[0] = 2  # ready
        while True:
            value = flag[0]
            if value == 1:
                flag[0] = 2
            elif value == 0:
                break


def core_round_trip(rounds=4000, batches=5, timeout=10.0):
    """Nanoseconds for a write to go from this process's first CPU to its second and back: two processes,
    each pinned to one of them, pass a byte in shared memory to and fro; the median of `batches` batches
    of `rounds` trips, Python's loops included. None where it cannot be measured: one CPU, no CPU affinity
    (macOS, Windows), or no answer within `timeout` seconds. This process's CPU affinity is restored
    afterwards."""
    if not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2:
        return None
    allowed = os.sched_getaffinity(0)
    first, second = sorted(allowed)[:2]
    # both processes map the same page of a file (in memory, under /dev/shm where there is one)
    file = tempfile.NamedTemporaryFile(dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    file.write(bytes(64))
    file.flush()
    flag = mmap.mmap(file.fileno(), 64)
    flag[0] = 9
    done = threading.Event()

    def watch():  # no answer within `timeout`: write 3s, which end the waits below, until they have ended
        if not done.wait(timeout):
            while not done.wait(0.01):
                flag[0] = 3
    watchdog = threading.Thread(target=watch, daemon=True)
    answerer = None
    times = []
    try:
        os.sched_setaffinity(0, {first})
        answerer = subprocess.Popen([sys.executable, __file__, "--answer-pings", file.name, str(second)])
        watchdog.start()
        while flag[0] == 9:
            pass
        for _ in range(batches):
            start = time.perf_counter()
            for _ in range(rounds):
                flag[0] = 1
                while flag[0] == 1:
                    pass
                if flag[0] == 3:
                    return None
            times.append((time.perf_counter() - start) / rounds * 1e9)
        return statistics.median(times)
    finally:
        done.set()
        if watchdog.is_alive():
            watchdog.join()
        flag[0] = 0
        if answerer is not None:
            try:
                answerer.wait(1)
            except subprocess.TimeoutExpired:
                answerer.kill()
                answerer.wait()
        os.sched_setaffinity(0, allowed)
        flag.close()
        file.close()


def run_worker(script, framework, *arguments, zero_allocator):
    """Run `python script --worker framework arguments...` and return the JSON value of its last
    output line. A failing worker raises RuntimeError with the end of its error output. Every
    worker gets worker_threads() threads (OMP_NUM_THREADS, which PyTorch reads, and the BLAS
    variables NumPy's reads). Just before the worker starts, the distance between the first two CPUs is
    measured (core_round_trip) and kept in ROUND_TRIPS with the script's name and `framework`.

    zero_allocator: start the worker with the C allocator settings that importing zero makes
    (zero.host_memory.keep_freed_host_memory), or else with the allocator's defaults, even where the
    worker imports zero (a PyTorch worker reading MNIST with zero.mnist, say)."""
    command = [sys.executable, str(Path(script).resolve()), "--worker", framework, *map(str, arguments)]
    from zero.host_memory import glibc_tunables
    env = dict(os.environ, **{name: str(worker_threads()) for name in THREAD_VARIABLES})
    env.pop("ZERO_THREADS", None)  # zero's convolutions take OpenBLAS's count (zero.threads)
    if zero_allocator:
        env["GLIBC_TUNABLES"] = glibc_tunables()
        env.pop("ZERO_KEEP_FREED_MEMORY", None)
    else:
        env["ZERO_KEEP_FREED_MEMORY"] = "0"
        env.pop("GLIBC_TUNABLES", None)
    ROUND_TRIPS.append((Path(script).stem, framework, core_round_trip()))
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed (exit status {result.returncode}):\n"
                           f"{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"  # this project's CI copy


def mnist_folder():
    """The folder the MNIST benchmarks read the test split from (they never download it):
    $ZERO_DATA_DIR, else zero's download cache (~/.cache/zero/mnist, where the course's scripts put
    it), else ../shared/datasets/mnist beside the project; None when none of them holds both files."""
    from zero.mnist import SPLITS, find_local, mnist_dir
    for folder in (mnist_dir(), SHARED_MNIST):
        if all(find_local(folder, name) for name in SPLITS["test"][:2]):
            return folder
    return None


def mnist_not_found(benchmark):
    """What a benchmark that needs MNIST says when mnist_folder() finds none."""
    from zero.mnist import SPLITS, mnist_dir
    images, labels = SPLITS["test"][:2]
    return (f"{benchmark}: MNIST's test split not found ({images} and {labels} in $ZERO_DATA_DIR or "
            f"{mnist_dir()}, or in {SHARED_MNIST}); skipped")


def load_note():
    """'; load avg 0.7 on 2 cores' (the machine's 1-minute load average: timings on a busy
    machine are not comparable), or '' where the system has none (Windows)."""
    return f"; load avg {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores" if hasattr(os, "getloadavg") else ""


def peak_rss_kb():
    """Peak resident memory of this process in kB; NaN where neither way below exists (Windows),
    so that the memory rows read nan there instead of a number that was never measured.
    On Linux read VmHWM: a child's ru_maxrss starts at its parent's peak (it survives fork and
    exec), which would hide the worker's own peak when the parent has imported torch. Elsewhere
    ru_maxrss, which macOS counts in bytes and the other systems in kB."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    try:
        import resource
    except ImportError:   # Windows
        return math.nan
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform == "darwin" else peak


# Within one run, a framework whose timings of the same work range wider than this factor saw the machine
# change speed (here, on 2 cores: a VAE epoch took 0.31 s in some spells and 0.57 s in others, with 2 BLAS
# threads; 0.36-0.38 s throughout with one)
STEADY_SPREAD = 1.3


def unsteady_timings(times):
    """'' when each framework's timings of the same work, times {framework: [seconds, ...]}, lie within
    STEADY_SPREAD of each other; else a text naming those that do not, with their ranges. A best-of ratio
    from such a run may set one framework's fast spell against another's slow one, in either direction."""
    unsteady = [f"{name} {min(found):.4g}-{max(found):.4g} s" for name, found in times.items()
                if found and max(found) > STEADY_SPREAD * min(found)]
    if not unsteady:
        return ""
    return (f"timings of the same work ranged more than {STEADY_SPREAD}x within the run ({', '.join(unsteady)}): "
            f"the machine changed speed, so the ratio may compare a fast spell with a slow one")


def main(run, worker):
    """The command line of a benchmark file whose worker takes a framework and a count:
    `--worker FRAMEWORK N` runs worker(FRAMEWORK, N) (the subprocess side of run_worker);
    otherwise the rows of run(quick=--quick) are printed."""
    if "--worker" in sys.argv:
        at = sys.argv.index("--worker")
        worker(sys.argv[at + 1], int(sys.argv[at + 2]))
    else:
        for row in run(quick="--quick" in sys.argv):
            print(row)


if __name__ == "__main__" and sys.argv[1:2] == ["--answer-pings"]:
    answer_pings(sys.argv[2], int(sys.argv[3]))
