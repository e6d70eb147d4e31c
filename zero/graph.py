"""Draw the computational graph behind a variable.

`get_dot_graph(y)` returns Graphviz DOT text: variables are orange ovals
(name, shape, dtype), functions are blue boxes, arrows follow the data.
`plot_dot_graph(y, "graph.png")` writes the .dot file and, when Graphviz's
`dot` program is installed, renders it to the picture; otherwise it says how.
"""
import shutil
import subprocess
from pathlib import Path


def _variable_node(variable, verbose):
    label = variable.name or ""
    if verbose and variable.data is not None:
        shape = "x".join(str(n) for n in variable.shape) or "scalar"
        label = f"{label}: " if label else ""
        label += f"{shape} {variable.dtype}"
    return f'{id(variable)} [label="{label}", color=orange, style=filled]\n'


def _function_node(function):
    lines = [f'{id(function)} [label="{function.name}", color=lightblue, style=filled, shape=box]\n']
    for x in function.inputs:
        lines.append(f"{id(x)} -> {id(function)}\n")
    for output in function.outputs:
        y = output()
        if y is not None:
            lines.append(f"{id(function)} -> {id(y)}\n")
    return "".join(lines)


def get_dot_graph(output, verbose=True):
    """DOT text of the graph that computed `output` (walked iteratively)."""
    text = _variable_node(output, verbose)
    seen_functions = set()
    stack = [output.creator] if output.creator is not None else []
    seen_functions.update(id(f) for f in stack)
    while stack:
        function = stack.pop()
        text += _function_node(function)
        for x in function.inputs:
            text += _variable_node(x, verbose)
            if x.creator is not None and id(x.creator) not in seen_functions:
                seen_functions.add(id(x.creator))
                stack.append(x.creator)
    return "digraph g {\n" + text + "}\n"


def plot_dot_graph(output, to_file="graph.png", verbose=True):
    """Write the graph of `output` as DOT next to `to_file` and render it with
    Graphviz when installed. Returns the path of the picture, or of the .dot
    file when Graphviz is missing."""
    to_file = Path(to_file)
    to_file.parent.mkdir(parents=True, exist_ok=True)
    dot_path = to_file.with_suffix(".dot")
    dot_path.write_text(get_dot_graph(output, verbose), encoding="utf-8")
    dot = shutil.which("dot")
    if dot is None:
        print(f"  graph written as DOT text to {dot_path}; Graphviz is not installed, so no picture.\n"
              f"  Install it (e.g. `apt-get install graphviz` or `brew install graphviz`) and run:\n"
              f"    dot {dot_path} -T {to_file.suffix[1:] or 'png'} -o {to_file}")
        return dot_path
    subprocess.run([dot, str(dot_path), "-T", to_file.suffix[1:] or "png", "-o", str(to_file)], check=True)
    return to_file
