"""Draw the computational graph behind a variable.

`get_dot_graph(y)` returns Graphviz DOT text: variables are orange ovals
(name, shape, dtype), functions are blue boxes, arrows follow the data.
`plot_dot_graph(y, "graph.png")` writes the .dot file and, when Graphviz's
`dot` program is installed, renders it to the picture; otherwise it says how.
`draw_graph(y, "graph.png")` always gives a picture: Graphviz when installed,
else matplotlib with a simple layered layout (one row per generation:
variables as ovals, functions as boxes, arrows from inputs to outputs).
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
    return f'{id(variable)} [label="{_quoted(label)}", color=orange, style=filled]\n'


def _quoted(text):
    """text inside a DOT string: a quote or backslash of a variable's name would end or break it."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _function_node(function):
    lines = [f'{id(function)} [label="{_quoted(function.name)}", color=lightblue, style=filled, shape=box]\n']
    for x in function.inputs:
        lines.append(f"{id(x)} -> {id(function)}\n")
    for output in function.outputs:
        y = output()
        if y is not None:
            lines.append(f"{id(function)} -> {id(y)}\n")
    return "".join(lines)


def get_dot_graph(output, verbose=True):
    """DOT text of the graph that computed `output` (walked iteratively). Every variable an arrow
    touches is declared once, with its label: each function's inputs and its live outputs (the
    other output of a two-output function too, which the walk back from `output` never reaches)."""
    text = _variable_node(output, verbose)
    declared = {id(output)}
    seen_functions = set()
    stack = [output.creator] if output.creator is not None else []
    seen_functions.update(id(f) for f in stack)
    while stack:
        function = stack.pop()
        text += _function_node(function)
        outputs = [y for y in (ref() for ref in function.outputs) if y is not None]
        for variable in [*function.inputs, *outputs]:
            if id(variable) not in declared:
                declared.add(id(variable))
                text += _variable_node(variable, verbose)
        for x in function.inputs:
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


# =============================================================================
# A picture without Graphviz: layered layout drawn with matplotlib
# =============================================================================
def graph_layers(output):
    """The graph behind `output` as nodes placed in rows.

    Returns (nodes, edges): nodes maps id -> (label, kind, row, column) with kind 'variable'
    or 'function'; a variable of generation g sits in row 2g, a function of generation g in
    row 2g + 1 (between its inputs and its outputs), and a leaf (an input, a parameter, a
    constant) in the row just above the first function that uses it, so its arrow is short.
    An unnamed one-element constant is labelled with its value. edges: list of (from id, to id).
    Columns order each row by the mean column of the row's predecessors, to keep arrows short.
    """
    labels, kinds, rows, edges, leaves = {}, {}, {}, [], set()

    def add_variable(v):
        if id(v) not in labels:
            label = v.name or ""
            shape = "" if v.data is None else "x".join(str(n) for n in v.shape) or "scalar"
            if not label and v.data is not None and v.data.size == 1 and not v.requires_grad:
                shape = f"{v.data.item():.4g}"   # a constant such as the 2 of x ** 2 (an explicit host copy)
            labels[id(v)] = "\n".join(part for part in (label, shape) if part)
            kinds[id(v)], rows[id(v)] = "variable", 2 * v.generation
            if v.creator is None:
                leaves.add(id(v))

    add_variable(output)
    stack, seen = ([output.creator] if output.creator is not None else []), set()
    while stack:
        function = stack.pop()
        if id(function) in seen:
            continue
        seen.add(id(function))
        labels[id(function)], kinds[id(function)] = function.name, "function"
        rows[id(function)] = 2 * function.generation + 1
        for x in function.inputs:
            add_variable(x)
            edges.append((id(x), id(function)))
            if x.creator is not None:
                stack.append(x.creator)
        for ref in function.outputs:
            y = ref()
            if y is not None:
                add_variable(y)
                edges.append((id(function), id(y)))
    placed = {}
    for a, b in edges:   # a leaf moves down to the row above its first user
        if a in leaves:
            placed[a] = min(placed.get(a, rows[b] - 1), rows[b] - 1)
    rows.update(placed)
    parents = {}
    for a, b in edges:
        parents.setdefault(b, []).append(a)
    columns = {}
    for row in sorted(set(rows.values())):
        members = [node for node in rows if rows[node] == row]
        members.sort(key=lambda node: sum(columns.get(p, 0) for p in parents.get(node, [])) /
                     max(1, len(parents.get(node, []))))
        for column, node in enumerate(members):
            columns[node] = column - (len(members) - 1) / 2  # centre each row
    nodes = {node: (labels[node], kinds[node], rows[node], columns[node]) for node in labels}
    return nodes, edges


def draw_graph_matplotlib(output, to_file):
    """Draw the graph of `output` to an image file with matplotlib (no Graphviz needed)."""
    from matplotlib.figure import Figure  # no pyplot: works headless, opens no window
    from matplotlib.patches import Ellipse, FancyBboxPatch

    nodes, edges = graph_layers(output)
    width = max(sum(1 for n in nodes.values() if n[2] == row) for row in {n[2] for n in nodes.values()})
    height = max(n[2] for n in nodes.values()) + 1
    fig = Figure(figsize=(max(3.0, 1.6 * width), max(2.0, 0.75 * height)))
    ax = fig.subplots()
    position = {node: (1.6 * column, -row) for node, (_, _, row, column) in nodes.items()}
    for a, b in edges:
        ax.annotate("", xy=position[b], xytext=position[a],
                    arrowprops=dict(arrowstyle="-|>", color="0.3", shrinkA=14, shrinkB=14))
    for node, (label, kind, _, _) in nodes.items():
        x, y = position[node]
        if kind == "variable":
            ax.add_patch(Ellipse((x, y), 1.3, 0.6, facecolor="orange", edgecolor="0.3"))
        else:
            ax.add_patch(FancyBboxPatch((x - 0.55, y - 0.25), 1.1, 0.5, boxstyle="round,pad=0.02",
                                        facecolor="lightblue", edgecolor="0.3"))
        ax.text(x, y, label, ha="center", va="center", fontsize=8)
    xs = [p[0] for p in position.values()]
    ax.set_xlim(min(xs) - 1, max(xs) + 1)
    ax.set_ylim(-height + 0.3, 0.7)
    ax.axis("off")
    fig.savefig(to_file, dpi=100, bbox_inches="tight")
    return to_file


def draw_graph(output, to_file="graph.png", verbose=True):
    """A picture of the graph of `output` in `to_file`: rendered by Graphviz when its `dot`
    program is installed, else drawn with matplotlib. Returns the picture's path."""
    to_file = Path(to_file)
    to_file.parent.mkdir(parents=True, exist_ok=True)
    if shutil.which("dot") is not None:
        return plot_dot_graph(output, to_file, verbose)
    return draw_graph_matplotlib(output, to_file)
