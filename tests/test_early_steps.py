"""Steps 1-5 (the normal distribution to EM) read as text: each docstring's usage line lists the
options the script's --help shows, and the hand-set mixture that steps 4.2 and 4.3 each write out
(scripts do not import each other, so a student reads each one whole) is the same in both."""
import ast

import numpy as np

from conftest import ROOT, help_texts

EARLY_SCRIPTS = sorted((ROOT / "steps").glob("step0[1-5]_*/[0-9]_*.py"))


def _usage_in_docstring(script):
    """The options after the script's name on its docstring's 'python steps/...' line."""
    docstring = ast.get_docstring(ast.parse(script.read_text(encoding="utf-8")))
    command = f"python steps/{script.parent.name}/{script.name}"
    lines = [line.strip() for line in docstring.splitlines() if line.strip().startswith(command)]
    assert len(lines) == 1, f"{script}: expected one usage line starting {command!r}, found {lines}"
    return lines[0][len(command):].strip()


def test_each_early_steps_usage_line_lists_the_options_its_help_shows():
    assert len(EARLY_SCRIPTS) == 13
    usage = {path: text.split("\n\n")[0] for path, text in help_texts(EARLY_SCRIPTS).items()}
    wrong = []
    for script in EARLY_SCRIPTS:
        shown = " ".join(usage[str(script)].split())   # 'usage: 1_fit.py [-h] [--quick] ...' on one line
        expected = shown.removeprefix(f"usage: {script.name} [-h] ")
        if _usage_in_docstring(script) != expected:
            wrong.append(f"{script.parent.name}/{script.name}: docstring {_usage_in_docstring(script)!r}, "
                         f"--help {expected!r}")
    assert not wrong, wrong


def _hand_set_arrays(script):
    """The arrays a script assigns to WEIGHTS, MEANS and COVARIANCES as np.array(<literal>)."""
    arrays = {}
    for node in ast.parse(script.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                and node.targets[0].id in ("WEIGHTS", "MEANS", "COVARIANCES"):
            call = node.value
            assert isinstance(call, ast.Call) and ast.unparse(call.func) == "np.array", ast.unparse(node)
            arrays[node.targets[0].id] = np.array(ast.literal_eval(call.args[0]))
    return arrays


def test_steps_4_2_and_4_3_sample_and_evaluate_the_same_hand_set_mixture():
    density = _hand_set_arrays(ROOT / "steps/step04_gmm/2_mixture_density.py")
    sampling = _hand_set_arrays(ROOT / "steps/step04_gmm/3_sampling.py")
    assert set(density) == {"WEIGHTS", "MEANS", "COVARIANCES"}
    assert set(sampling) == set(density)
    for name in density:
        np.testing.assert_array_equal(sampling[name], density[name], err_msg=name)
