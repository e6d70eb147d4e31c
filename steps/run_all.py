"""Run the whole course, step by step, in reading order.

    python steps/run_all.py                 # every step with its CPU defaults
    python steps/run_all.py --steps 1-5     # only steps 1 to 5
    python steps/run_all.py --quick         # a tiny run of everything (about a minute)
    python steps/run_all.py --device cuda   # training and sampling steps on the GPU (needs CuPy)

Each script prints what it computes and saves its figures under figures/;
training steps write checkpoints under checkpoints/ (a --quick run uses figures/quick/ and
checkpoints/quick/ for what it writes and what it reads of other steps, so it never
overwrites, or uses, a real run's results). Steps that need MNIST
download it once (or read $ZERO_DATA_DIR, see README.md). After each script, run_all prints its
time and its peak memory (the most RAM it held at once; not on Windows), and at the end the most
any script took: what a machine needs to run the course.
"""
import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from zero.cli import device_name, path_arg

STEPS_DIR = Path(__file__).resolve().parent


def step_number(folder):
    """'step07_vae' -> 7; the appendix comes after step 10."""
    digits = "".join(ch for ch in folder.name[4:6] if ch.isdigit())
    return int(digits) if digits else 99


def parse_range(text):
    """'1-5,9' -> {1, 2, 3, 4, 5, 9} (an argparse type: a malformed or reversed range is refused)."""
    chosen = set()
    for part in text.split(","):
        low, dash, high = part.partition("-")
        try:
            first, last = int(low), int(high if dash else low)   # '7-' is refused, not read as 7
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected step numbers like '1-5' or '6,7', got {text!r}") from None
        if first > last:
            raise argparse.ArgumentTypeError(f"the range {part!r} runs backwards")
        chosen.update(range(first, last + 1))
    return chosen


def run_script(command, env):
    """Run one script and wait for it: returns its exit status and its peak memory in MB (the most
    RAM it held at once, as the operating system counts it), or None for the memory where Python
    cannot ask for it (Windows has no os.wait4). Linux counts in it the memory of the process that
    started the script, run_all's own: about 30 MB, less than any step takes."""
    if not hasattr(os, "wait4"):
        return subprocess.run(command, env=env).returncode, None
    process = subprocess.Popen(command, env=env)
    try:
        _, status, usage = os.wait4(process.pid, 0)   # as waitpid, with what the child used
    except BaseException:   # Ctrl-C reaches the script too, which stops and says so: wait for it
        process.wait()
        raise
    process.returncode = os.waitstatus_to_exitcode(status)
    kilobytes = usage.ru_maxrss / 1024 if sys.platform == "darwin" else usage.ru_maxrss   # macOS counts bytes
    return process.returncode, kilobytes / 1024


def duration(seconds):
    """'12.3 s' under a minute, else '34.9 minutes'."""
    return f"{seconds:.1f} s" if seconds < 60 else f"{seconds / 60:.1f} minutes"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=parse_range, default=None,
                        help="which steps, e.g. '1-5' or '6,7' (default: all)")
    parser.add_argument("--quick", action="store_true", help="tiny runs (what the test suite does)")
    parser.add_argument("--device", default=None, type=device_name,   # a typo ends here, not in every script
                        help="cpu or cuda for the steps that train or sample (sets $ZERO_DEVICE)")
    parser.add_argument("--data-dir", type=path_arg, default=None, help="folder with the MNIST files")
    args = parser.parse_args()

    env = dict(os.environ)
    if args.device:
        env["ZERO_DEVICE"] = args.device
    if args.data_dir is not None:
        env["ZERO_DATA_DIR"] = str(args.data_dir.resolve())
    folders = sorted((p for p in STEPS_DIR.glob("step*") if p.is_dir()), key=lambda p: (step_number(p), p.name))
    wanted = args.steps
    available = {step_number(folder) for folder in folders}
    if wanted is not None and not wanted <= available:
        parser.error(f"--steps: there is no step {', '.join(map(str, sorted(wanted - available)))}; "
                     f"the steps are {min(available)}-{max(available)}")
    failed, current, ran, course_start = [], None, 0, time.perf_counter()
    largest = None   # (peak memory in MB, script): what a machine needs to run the course
    try:
        for folder in folders:
            if wanted is not None and step_number(folder) not in wanted:
                continue
            for script in sorted(p for p in folder.glob("*.py") if not p.name.startswith("_")):
                current = f"{folder.name}/{script.name}", step_number(folder)
                print(f"\n=== {current[0]} ===", flush=True)
                command = [sys.executable, str(script)] + (["--quick"] if args.quick else [])
                start = time.perf_counter()
                status, megabytes = run_script(command, env)
                ran += 1
                memory = "" if megabytes is None else f", peak memory {megabytes:,.0f} MB"
                print(f"--- {current[0]}: {'ok' if status == 0 else 'FAILED'} "
                      f"in {time.perf_counter() - start:.1f} s{memory}", flush=True)
                if status != 0:
                    failed.append(current[0])
                if megabytes is not None and (largest is None or megabytes > largest[0]):
                    largest = megabytes, current[0]
    except KeyboardInterrupt:   # Ctrl-C reaches the running script as well, which says so itself
        where = ""
        if current is not None:
            name, step = current
            where = (f" in {name}; to go on from that step, run it again with --steps {step}-{max(available)} "
                     f"(and the other options you gave)")
        print(f"\nrun_all: interrupted{where}", file=sys.stderr)
        sys.exit(130)   # 128 + SIGINT, what shells report for a program ended by Ctrl-C
    took = duration(time.perf_counter() - course_start)
    if failed:
        print(f"\n{len(failed)} of {ran} scripts failed ({took} in all):\n  " + "\n  ".join(failed))
        sys.exit(1)
    most = "" if largest is None else f" The most memory a script took: {largest[0]:,.0f} MB ({largest[1]})."
    print(f"\nAll steps done: {ran} scripts ok in {took}.{most} "
          f"Figures are in {'figures/quick/' if args.quick else 'figures/'}.")


if __name__ == "__main__":
    main()
