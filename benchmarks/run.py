"""Run every benchmark and print one table.

    python benchmarks/run.py            # all benchmarks
    python benchmarks/run.py mlp conv   # only those whose file name contains a word
    python benchmarks/run.py --quick    # fewer repetitions (smoke test)

Each benchmarks/bench_*.py defines `run(quick=False)` returning a list of
rows: dicts with 'benchmark', 'zero' and 'reference' (seconds or a metric,
as 'unit' says), 'reference_name', 'ratio' (zero/reference, None when the
reference is not installed), 'target' (the ratio to meet, or None) and
'note'; optionally 'ok' (True or False) for a row that judges itself, where the target is not
'ratio <= target' (agreeing within 2% either way, say); optionally 'unsteady', a text saying
why the row's timings cannot be trusted (workers.unsteady_timings), which makes its verdict 'unsure'.
References (PyTorch CPU, scikit-learn) are measured in the same run.
A benchmark that fails is reported (traceback, then a line under the table) without
losing the others' rows; the exit status is then 1.
"""
import argparse
import importlib.util
import os
import sys
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


def load(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def fmt(value):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def load_warning(limit=0.5):
    """A warning when other processes use the CPU (1-minute load average above limit), else ''.
    zero's OpenBLAS threads suffer more from a busy core than PyTorch's: a review saw the MLP ratio
    go from 0.6 to 7 under load. Every ratio of such a run is suspect, in either direction."""
    if not hasattr(os, "getloadavg"):
        return ""
    load = os.getloadavg()[0]
    if load <= limit:
        return ""
    return (f"WARNING: load average {load:.1f} before the run: other processes are using the CPU, and the "
            f"ratios below are not to be trusted (run again on an idle machine)")


def blas_report():
    """One line naming the BLAS that NumPy's matrix products (zero's convolutions) run on, and
    its kernel, plus a warning when an environment variable chooses that kernel instead of
    OpenBLAS. Some machines pin an older kernel for old OpenBLAS builds: OPENBLAS_CORETYPE=Haswell
    on a Zen 5 ran the conv benchmark's forward product at 170 GFLOP/s where OpenBLAS's own choice
    (its AVX-512 kernel) ran it at 244, and a conv or U-Net ratio measured so is a ratio against
    that pinned kernel."""
    import numpy as np  # loads the BLAS, so that threadpoolctl can see it
    from zero.__main__ import UNSET_BLAS_PINNING, pinned_blas_variables
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        line = f"NumPy {np.__version__}: BLAS kernel unknown (pip install threadpoolctl to see it)"
    else:
        blas = [info for info in threadpool_info() if info.get("user_api") == "blas"]
        line = "; ".join(f"NumPy's BLAS: {info.get('internal_api')} {info.get('version')}, kernel "
                         f"{info.get('architecture', '?')}, {info.get('num_threads')} threads"
                         for info in blas) or "NumPy's BLAS: none found by threadpoolctl"
    pinned = pinned_blas_variables()
    if pinned:
        line += (f"\nWARNING: {' and '.join(pinned)} set: OpenBLAS runs the kernel this names, not the one "
                 f"it would choose for this CPU; to measure its own choice, unset them for this command "
                 f"alone: {UNSET_BLAS_PINNING} python benchmarks/run.py")
    return line


def core_report(path, around, probes):
    """A line for the table's foot with the round trips (ns, workers.core_round_trip) measured around
    benchmark `path` (`around`: before and after it) and before each of its workers (`probes`: (framework,
    ns) pairs), and a warning when those before zero's and PyTorch's turns (or, for a benchmark without
    workers, those around it) range wider than workers.CORE_SPREAD: the host moved the machine's CPUs
    during the run, which slows threads that share data, and not the two frameworks alike (workers.py).
    The verdicts stand: the rows whose timings ranged wide say so themselves (workers.unsteady_timings).
    ('', '') without any round trip."""
    from workers import CORE_SPREAD
    groups = {"around": around}
    for framework, ns in probes:
        groups.setdefault(framework, []).append(ns)
    groups = {name: [ns for ns in found if ns is not None] for name, found in groups.items()}
    if not any(groups.values()):
        return "", ""
    line = f"{path.stem}: " + ", ".join(f"{name} {min(found):.0f}-{max(found):.0f}"
                                         for name, found in groups.items() if found) + " ns"
    compared, when = [ns for name in ("zero", "torch") for ns in groups.get(name, [])], "before zero's and PyTorch's turns"
    if not compared:
        compared, when = groups["around"], "before and after the benchmark"
    if not compared or max(compared) <= CORE_SPREAD * min(compared):
        return line, ""
    return line, (f"{path.stem}: a write's round trip between the two CPUs took {min(compared):.0f}-"
                  f"{max(compared):.0f} ns {when}: the host moved them apart or together during the run, which "
                  f"changes the speed of threads that share data (zero's convolution, small matrix products), "
                  f"and not alike for the two frameworks (each one's round trips are in the line above)")


def verdict(row):
    """The ok column: the row's own judgement if it has one, else yes when ratio <= target, '-'
    without a ratio (no reference installed) or without a target; 'unsure' where the row's timings
    were unsteady (its 'unsteady' text, printed under the table), since the ratio may then be off
    in either direction."""
    if row.get("ok") is not None:
        judged = row["ok"]
    else:
        ratio, target = row.get("ratio"), row.get("target")
        if ratio is None or target is None:
            return "-"
        judged = ratio <= target
    if row.get("unsteady"):
        return "unsure"
    return "yes" if judged else "NO"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("only", nargs="*", help="run only benchmarks whose file name contains one of these")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE.parent))
    sys.path.insert(0, str(HERE))   # the benchmarks' shared helpers (workers.py)
    import workers
    paths = sorted(HERE.glob("bench_*.py"))
    if args.only:
        paths = [p for p in paths if any(word in p.stem for word in args.only)]
    busy = load_warning()  # checked before the run only: the benchmarks' own threads raise it
    if busy:
        print(busy, flush=True)
    blas = blas_report()
    print(blas, flush=True)
    print(f"every benchmark worker computes with {workers.worker_threads()} threads, zero's BLAS and PyTorch alike "
          f"(OMP_NUM_THREADS, OPENBLAS_NUM_THREADS)", flush=True)
    rows, failures, cores = [], [], []
    for path in paths:
        print(f"running {path.name} ...", flush=True)
        first_probe = len(workers.ROUND_TRIPS)  # run_worker adds this benchmark's probes after it
        before = workers.core_round_trip()
        try:
            found = load(path).run(quick=args.quick)
        except Exception as error:  # one failing benchmark must not lose the others' rows
            traceback.print_exc()
            failures.append(f"{path.name}: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")
            continue
        line, moved = core_report(path, [before, workers.core_round_trip()],
                                  [(framework, ns) for _, framework, ns in workers.ROUND_TRIPS[first_probe:]])
        cores.append((line, moved))
        rows += found
    header = ["benchmark", "unit", "zero", "reference", "reference_name", "ratio", "target", "ok", "note"]
    table = []
    for row in rows:
        table.append([fmt(row.get(h)) if h != "ok" else verdict(row) for h in header])
    widths = [max(len(h), *(len(r[i]) for r in table)) if table else len(h) for i, h in enumerate(header)]
    print()
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    print("\n" + blas)  # again under the table, where the numbers are read
    if any(line for line, _ in cores):
        print("a write's round trip between the first two CPUs, around each benchmark and before each of its "
              "workers' turns (a virtual machine's host may move the CPUs apart, which slows threads that share "
              "data; see benchmarks/workers.py): " + "; ".join(line for line, _ in cores if line))
    for _, moved in cores:
        if moved:
            print(f"\nWARNING, {moved}")
    for row in rows:
        if row.get("unsteady"):
            print(f"\nWARNING, {row['benchmark']}: {row['unsteady']} (run it again)")
    if busy:
        print("\n" + busy)
    if failures:
        print("\nfailed (traceback above):\n  " + "\n  ".join(failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
