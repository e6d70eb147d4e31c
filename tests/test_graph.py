"""zero.graph: the layered layout and the picture with and without Graphviz."""
import itertools
import subprocess
import sys

import numpy as np
import pytest

import zero.functions as F
from zero import Function, Variable
from zero.graph import draw_graph, get_dot_graph, graph_layers, plot_dot_graph
from zero.utils import gradient_check


def _expression():
    x = Variable(np.ones((2, 3)), name="x")
    y = F.sum(F.tanh(x * 2.0))
    y.name = "y"
    return x, y


def test_layers_put_every_arrow_downwards_and_name_the_nodes():
    x, y = _expression()
    nodes, edges = graph_layers(y)
    labels = sorted(label for label, *_ in nodes.values())
    assert labels == sorted(["x\n2x3", "2x3", "2x3", "2", "Mul", "Tanh", "Sum", "y\nscalar"])  # the constant 2.0: its value
    assert len(edges) == 7  # x, 2.0 -> Mul -> . -> Tanh -> . -> Sum -> y
    for a, b in edges:
        assert nodes[a][2] < nodes[b][2]
    kinds = {label: kind for label, kind, *_ in nodes.values()}
    assert kinds["Mul"] == "function" and kinds["x\n2x3"] == "variable"
    rows = [row for _, _, row, _ in nodes.values()]
    assert len(rows) == len(nodes) and nodes[id(y)][2] == max(rows)


def test_a_leaf_sits_just_above_the_first_function_that_uses_it():
    # the constant 3 and the parameter w enter two and three functions after x: in row 0 their
    # arrows crossed the picture, through other nodes
    x, w = Variable(np.ones(2), name="x"), Variable(np.ones(2), name="w")
    h = F.tanh(F.tanh(x)) * 3.0
    y = F.sum(h * w)
    nodes, _ = graph_layers(y)
    row = {label: r for label, _, r, _ in nodes.values()}   # the labels that matter here are unique
    mul_rows = sorted(r for label, _, r, _ in nodes.values() if label == "Mul")   # (tanh tanh x) * 3, then h * w
    assert row["3"] == mul_rows[0] - 1 and row["w\n2"] == mul_rows[1] - 1
    assert row["x\n2"] == 0


def test_draw_graph_without_graphviz_writes_a_png(tmp_path, monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    _, y = _expression()
    path = draw_graph(y, tmp_path / "sub" / "graph.png")
    assert path == tmp_path / "sub" / "graph.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_draw_graph_uses_graphviz_when_installed(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("shutil.which", lambda name: "/usr/bin/dot")
    monkeypatch.setattr("subprocess.run", lambda command, check: calls.append(command))
    _, y = _expression()
    path = draw_graph(y, tmp_path / "graph.png")
    assert path == tmp_path / "graph.png"
    assert calls and calls[0][0] == "/usr/bin/dot" and (tmp_path / "graph.dot").exists()


def test_graph_of_a_gradient_built_with_create_graph():
    x = Variable(np.array(2.0), name="x")
    y = x ** 4 - 2 * x ** 2
    y.backward(create_graph=True)
    nodes, edges = graph_layers(x.grad)
    assert any(label == "Pow" for label, *_ in nodes.values()) and edges


def _diamond():
    """x -> Tanh -> a, and a feeds two functions (Exp and Mul) that meet again in Add."""
    x = Variable(np.ones(3), name="x")
    a = F.tanh(x)
    y = F.exp(a) + a * 2.0
    return x, y


def test_dot_labels_unnamed_variables_by_shape_and_only_names_when_not_verbose():
    _, y = _expression()
    verbose = get_dot_graph(y)
    assert 'label="2x3 float64"' in verbose                # an unnamed intermediate: no leading ": "
    brief = get_dot_graph(y, verbose=False)
    assert 'label="x"' in brief and 'label="y"' in brief and 'label=""' in brief
    assert "float64" not in brief and "2x3" not in brief


def test_a_variable_used_twice_gives_each_function_once():
    _, y = _diamond()
    text = get_dot_graph(y)
    assert text.count("shape=box") == 4                   # Tanh, Exp, Mul, Add
    assert text.count("->") == 10                         # x>Tanh>a, a>Exp>., a>Mul, 2.0>Mul, Mul>., two >Add, Add>y
    nodes, edges = graph_layers(y)
    assert sorted(label for label, kind, *_ in nodes.values() if kind == "function") == ["Add", "Exp", "Mul", "Tanh"]
    assert len(edges) == len(set(edges)) == 10


def test_graph_of_a_variable_without_creator_is_one_node():
    x = Variable(np.ones(2), name="x")
    text = get_dot_graph(x)
    assert 'label="x: 2 float64"' in text and "->" not in text
    nodes, edges = graph_layers(x)
    assert list(nodes.values()) == [("x\n2", "variable", 0, 0.0)] and edges == []


def _crossings(nodes, edges):
    """Pairs of arrows between the same two rows whose ends are in opposite order."""
    def column(node):
        return nodes[node][3]
    return sum(1 for (a, b), (c, d) in itertools.combinations(edges, 2)
               if nodes[a][2] == nodes[c][2] and nodes[b][2] == nodes[d][2]
               and (column(a) - column(c)) * (column(b) - column(d)) < 0)


def test_layers_order_each_row_under_its_inputs_and_centre_it():
    x, w = Variable(np.ones(2), name="x"), Variable(np.ones(2), name="w")
    y = F.tanh(x) + F.exp(w)                               # two chains that meet at the end
    nodes, edges = graph_layers(y)
    assert _crossings(nodes, edges) == 0
    for row in {row for _, _, row, _ in nodes.values()}:
        columns = sorted(column for _, _, r, column in nodes.values() if r == row)
        assert columns == [c - (len(columns) - 1) / 2 for c in range(len(columns))]   # ..., -0.5, 0.5, ... around 0


@pytest.fixture
def fake_dot(tmp_path, monkeypatch):
    """A stand-in for Graphviz's dot program that records its arguments and exits with $FAKE_DOT_STATUS."""
    if sys.platform == "win32":
        pytest.skip("the stand-in dot is a shell script")
    script = tmp_path / "bin" / "dot"
    script.parent.mkdir()
    script.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$(dirname "$0")/args"\nexit "${FAKE_DOT_STATUS:-0}"\n')
    script.chmod(0o755)
    monkeypatch.setattr("shutil.which", lambda name: str(script))
    return script


def test_plot_dot_graph_asks_graphviz_for_the_file_type_and_reports_its_failure(tmp_path, monkeypatch, fake_dot):
    _, y = _expression()
    path = plot_dot_graph(y, tmp_path / "out" / "graph.svg")
    assert path == tmp_path / "out" / "graph.svg"
    args = (fake_dot.parent / "args").read_text().split("\n")
    assert args[:5] == [str(tmp_path / "out" / "graph.dot"), "-T", "svg", "-o", str(path)]
    monkeypatch.setenv("FAKE_DOT_STATUS", "3")
    with pytest.raises(subprocess.CalledProcessError):     # not a path to a picture that was never drawn
        plot_dot_graph(y, tmp_path / "graph.png")


def test_plot_dot_graph_without_graphviz_creates_the_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("shutil.which", lambda name: None)
    _, y = _expression()
    path = plot_dot_graph(y, tmp_path / "new" / "graph.png")
    assert path == tmp_path / "new" / "graph.dot" and path.read_text() == get_dot_graph(y)
    assert "Graphviz is not installed" in capsys.readouterr().out


def test_draw_graph_passes_verbose_on_to_graphviz(tmp_path, monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: "/usr/bin/dot")
    monkeypatch.setattr("subprocess.run", lambda command, check: None)
    _, y = _expression()
    draw_graph(y, tmp_path / "graph.png", verbose=False)
    assert (tmp_path / "graph.dot").read_text() == get_dot_graph(y, verbose=False)


def test_dot_labels_a_zero_dimensional_variable_scalar():
    _, y = _expression()
    assert 'label="y: scalar float64"' in get_dot_graph(y)


def test_dot_labels_a_variable_without_data_by_its_name_only():
    text = get_dot_graph(Variable(None, name="w"))
    assert 'label="w"' in text and "->" not in text


def test_gradient_check_returns_the_largest_difference_over_all_inputs():
    """Central differences of v^3 are 3 v^2 + eps^2 (0.01 off the backward at eps 0.1); of 2 w, exact."""
    worst = gradient_check(lambda v, w: v ** 3 + w * 2.0, np.array([1.0, -2.0]), np.array([0.5, 3.0]),
                           eps=0.1, rtol=1.0)
    assert worst == pytest.approx(0.01)


class _SquareOffBy(Function):
    """x^2 with a backward `offset` too large."""
    def __init__(self, offset):
        self.offset = offset

    def forward(self, x):
        return x * x

    def backward(self, gy):
        return gy * 2 * self.inputs[0] + self.offset


def test_gradient_check_allows_an_absolute_error_of_1e_5_where_the_gradient_is_zero():
    at_zero = np.zeros(2)
    assert gradient_check(lambda v: _SquareOffBy(5e-6)(v), at_zero) == pytest.approx(5e-6)
    with pytest.raises(AssertionError, match="gradient check failed for input 0"):
        gradient_check(lambda v: _SquareOffBy(1e-4)(v), at_zero)


def test_dot_draws_variables_as_filled_orange_ovals_and_functions_as_filled_blue_boxes():
    _, y = _diamond()
    text = get_dot_graph(y)
    node_lines = [line for line in text.splitlines() if "[label=" in line]
    functions = [line for line in node_lines if "shape=box" in line]
    assert len(functions) == 4 and all("color=lightblue, style=filled" in line for line in functions)
    variables = [line for line in node_lines if "shape=box" not in line]
    assert variables and all(line.endswith("color=orange, style=filled]") for line in variables)


def test_picture_layers_label_a_variable_without_data_by_its_name_only():
    nodes, edges = graph_layers(Variable(None, name="w"))
    assert [label for label, *_ in nodes.values()] == ["w"] and edges == []


def test_a_quote_or_backslash_in_a_name_is_escaped_in_the_dot_text():
    """A name such as 'x "input"' ended the DOT string early: a file Graphviz cannot read."""
    x = Variable(np.ones(2), name='x "input" \\ raw')
    text = get_dot_graph(x * 2.0)
    assert 'label="x \\"input\\" \\\\ raw: 2 float64"' in text   # the whole label inside one DOT string


class _Halves(Function):
    """Two outputs: the first two elements and the rest."""

    def forward(self, x):
        return x[:2], x[2:]

    def backward(self, ga, gb):
        return F.concatenate([ga, gb])


def test_every_variable_an_arrow_of_the_dot_graph_touches_is_declared_once_with_its_label():
    """The other output of a two-output function got an arrow but no declaration (the walk back from
    y never reaches it), so Graphviz drew it as a bare id() number; inputs were declared once per use.
    (Found by a helper's mutation audit.)"""
    import re
    x = Variable(np.arange(4.0), name="x")
    a, b = _Halves()(x)
    b.name = "unused_half"
    y = a * a * 2.0
    text = get_dot_graph(y)
    declared = re.findall(r"^(\d+) \[label=", text, flags=re.M)
    arrow_ends = {end for edge in re.findall(r"^(\d+) -> (\d+)$", text, flags=re.M) for end in edge}
    assert arrow_ends <= set(declared), f"drawn without a label: {sorted(arrow_ends - set(declared))}"
    assert len(declared) == len(set(declared))
    assert '"unused_half: 2 float64"' in text
