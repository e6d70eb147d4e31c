"""zero.host_memory.keep_freed_host_memory: with glibc, memory of freed arrays is reused
instead of given back to the system and faulted in again at the next allocation."""
import os
import subprocess
import sys

import pytest

from conftest import ROOT

PROBE = """
import resource, sys
import numpy as np
sys.path.insert(0, {root!r})
import zero
def touch_fresh_arrays():
    for _ in range(10):   # two 20 MB arrays live at once, as an activation and its gradient
        a, b = np.empty(5_000_000, np.float32), np.empty(5_000_000, np.float32)
        a.fill(1.0)       # touch every page
        b.fill(1.0)
        del a, b
touch_fresh_arrays()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
touch_fresh_arrays()
print(zero.host_memory.HOST_MEMORY_KEPT, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _probe(keep):
    env = {name: value for name, value in os.environ.items()   # no allocator settings of the caller's
           if name != "GLIBC_TUNABLES" and not name.startswith("MALLOC_")}
    env["ZERO_KEEP_FREED_MEMORY"] = "1" if keep else "0"
    result = subprocess.run([sys.executable, "-c", PROBE.format(root=str(ROOT))], env=env,
                            capture_output=True, text=True, timeout=120, check=True)
    kept, faults = result.stdout.split()
    return kept == "True", int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the allocator setting is for glibc on Linux")
def test_freed_arrays_memory_is_reused_and_the_setting_can_be_switched_off():
    kept, faults = _probe(keep=True)
    if not kept:
        import platform
        assert platform.libc_ver()[0] != "glibc", "glibc is here, but importing zero did not set its malloc options"
        pytest.skip("this Linux's C library is not glibc: nothing is set")
    # 2 x 10 fresh 20 MB arrays: about 10,000 page faults when their memory is given back and taken again
    assert faults < 1000, f"{faults} page faults with freed memory kept"
    kept_off, faults_off = _probe(keep=False)
    assert not kept_off and faults_off > 10 * max(faults, 100), (faults, faults_off)


def test_a_setting_glibc_refuses_is_reported_and_the_others_still_apply(monkeypatch):
    """Only True when every setting took; a refusal used to skip the settings after it."""
    import ctypes
    import zero.host_memory

    calls = []

    class FakeGlibc:
        gnu_get_libc_version = None

        @staticmethod
        def mallopt(option, value):
            calls.append(option)
            return 0 if option == -3 else 1   # refuse M_MMAP_THRESHOLD, the first one set

    monkeypatch.setattr(zero.host_memory.sys, "platform", "linux")
    monkeypatch.setattr(ctypes, "CDLL", lambda name: FakeGlibc())
    assert zero.host_memory.keep_freed_host_memory() is False
    assert sorted(calls) == [-3, -2, -1]
    calls.clear()
    FakeGlibc.mallopt = staticmethod(lambda option, value: calls.append(option) or 1)
    assert zero.host_memory.keep_freed_host_memory() is True and len(calls) == 3


def test_malloc_settings_go_to_the_right_options_and_only_on_glibc(monkeypatch):
    import ctypes
    import zero.host_memory as host_memory

    calls = {}

    class FakeGlibc:
        gnu_get_libc_version = None

        @staticmethod
        def mallopt(option, value):
            calls[option] = value
            return 1

    monkeypatch.setattr(host_memory.sys, "platform", "linux")
    monkeypatch.setattr(ctypes, "CDLL", lambda name: FakeGlibc())
    assert host_memory.keep_freed_host_memory() is True
    assert calls == {-3: 32 * 2 ** 20, -1: 2 ** 30, -2: 256 * 2 ** 20}   # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, M_TOP_PAD
    monkeypatch.setattr(ctypes, "CDLL", lambda name: object())          # another C library: no gnu_get_libc_version
    assert host_memory.keep_freed_host_memory() is False
    calls.clear()
    monkeypatch.setattr(ctypes, "CDLL", lambda name: FakeGlibc())
    monkeypatch.setattr(host_memory.sys, "platform", "darwin")
    assert host_memory.keep_freed_host_memory() is False and calls == {}
    assert host_memory.glibc_tunables() == ("glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824:"
                                            "glibc.malloc.top_pad=268435456")
    if os.environ.get("ZERO_KEEP_FREED_MEMORY", "1") != "0":
        monkeypatch.undo()
        assert host_memory.HOST_MEMORY_KEPT == host_memory.keep_freed_host_memory()   # on by default where it works
