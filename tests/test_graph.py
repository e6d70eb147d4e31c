"""zero.graph: the layered layout and the picture with and without Graphviz."""
import numpy as np

import zero.functions as F
from zero import Variable
from zero.graph import draw_graph, graph_layers


def _expression():
    x = Variable(np.ones((2, 3)), name="x")
    y = F.sum(F.tanh(x * 2.0))
    y.name = "y"
    return x, y


def test_layers_put_every_arrow_downwards_and_name_the_nodes():
    x, y = _expression()
    nodes, edges = graph_layers(y)
    labels = sorted(label for label, *_ in nodes.values())
    assert labels == sorted(["x\n2x3", "2x3", "2x3", "scalar", "Mul", "Tanh", "Sum", "y\nscalar"])
    assert len(edges) == 7  # x, 2.0 -> Mul -> . -> Tanh -> . -> Sum -> y
    for a, b in edges:
        assert nodes[a][2] < nodes[b][2]
    kinds = {label: kind for label, kind, *_ in nodes.values()}
    assert kinds["Mul"] == "function" and kinds["x\n2x3"] == "variable"
    rows = [row for _, _, row, _ in nodes.values()]
    assert len(rows) == len(nodes) and nodes[id(y)][2] == max(rows)


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
