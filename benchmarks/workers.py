"""One measurement in a fresh Python process, for the benchmarks that compare zero with PyTorch.

Each framework is timed in its own subprocess, the two taking turns: in one process, the idle
threads of one framework's BLAS or OpenMP pool keep spinning after its last product and take
the cores from the other's next steps (PyTorch's MLP steps ran up to twice as slow after
zero's), and each one's peak memory could not be told apart. A benchmark file is its own
worker: `python benchmarks/bench_x.py --worker <arguments>` prints its result as one JSON
line, which `run_worker` returns.
"""
import json
import resource
import subprocess
import sys
from pathlib import Path


def run_worker(script, *arguments):
    """Run `python script --worker arguments...` and return the JSON value of its last output line.
    A failing worker raises RuntimeError with the end of its error output."""
    command = [sys.executable, str(Path(script).resolve()), "--worker", *map(str, arguments)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed (exit status {result.returncode}):\n"
                           f"{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def peak_rss_kb():
    """Peak resident memory of this process in kB. On Linux read VmHWM: a child's
    ru_maxrss starts at its parent's peak (it survives fork and exec), which
    would hide the worker's own peak when the parent has imported torch."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
