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
import os
import subprocess
import sys
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


def run_worker(script, framework, *arguments, zero_allocator):
    """Run `python script --worker framework arguments...` and return the JSON value of its last
    output line. A failing worker raises RuntimeError with the end of its error output. Every
    worker gets worker_threads() threads (OMP_NUM_THREADS, which PyTorch reads, and the BLAS
    variables NumPy's reads).

    zero_allocator: start the worker with the C allocator settings that importing zero makes
    (zero.host_memory.keep_freed_host_memory), or else with the allocator's defaults, even where the
    worker imports zero (a PyTorch worker reading MNIST with zero.mnist, say)."""
    command = [sys.executable, str(Path(script).resolve()), "--worker", framework, *map(str, arguments)]
    from zero.host_memory import glibc_tunables
    env = dict(os.environ, **{name: str(worker_threads()) for name in THREAD_VARIABLES})
    if zero_allocator:
        env["GLIBC_TUNABLES"] = glibc_tunables()
        env.pop("ZERO_KEEP_FREED_MEMORY", None)
    else:
        env["ZERO_KEEP_FREED_MEMORY"] = "0"
        env.pop("GLIBC_TUNABLES", None)
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
