"""Drawing graphs offline: Mermaid text, ASCII art, PNG.

PNG uses pygraphviz when it is installed (LangGraph's own `draw_png`); otherwise a small matplotlib
renderer lays the nodes out in layers. Mermaid's PNG renderer is not used: it calls a web service.
"""

from __future__ import annotations

import io
from typing import Literal

from langchain_core.runnables.graph import Graph

Format = Literal["mermaid", "ascii", "png"]


def _layers(graph: Graph) -> dict[str, int]:
    """Longest-path layer of every node from the start (cycles are broken by visit order)."""
    layer = {node_id: 0 for node_id in graph.nodes}
    for _ in range(len(graph.nodes)):
        changed = False
        for edge in graph.edges:
            deeper = layer[edge.source] + 1
            if edge.source != edge.target and layer[edge.target] < deeper < len(graph.nodes):
                layer[edge.target] = deeper
                changed = True
        if not changed:
            break
    return layer


def png_matplotlib(graph: Graph) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    layers = _layers(graph)
    rows: dict[int, list[str]] = {}
    for node_id in graph.nodes:
        rows.setdefault(layers[node_id], []).append(node_id)
    depth = max(rows) + 1
    width = max(len(r) for r in rows.values())
    pos = {}
    for level, ids in rows.items():
        for i, node_id in enumerate(ids):
            pos[node_id] = ((i + 1) / (len(ids) + 1) * width, depth - level)
    fig, ax = plt.subplots(figsize=(max(3.0, 2.6 * width), 1.1 * depth + 0.4), dpi=120)
    for edge in graph.edges:
        (x0, y0), (x1, y1) = pos[edge.source], pos[edge.target]
        ax.annotate("", xy=(x1, y1 + 0.22), xytext=(x0, y0 - 0.22),
                    arrowprops={"arrowstyle": "-|>", "color": "#555", "linestyle": "--" if edge.conditional else "-"})
    for node_id, (x, y) in pos.items():
        name = graph.nodes[node_id].name
        terminal = name in ("__start__", "__end__")
        label = name.strip("_") if terminal else name
        ax.add_patch(FancyBboxPatch((x - 0.8, y - 0.2), 1.6, 0.4, boxstyle="round,pad=0.02",
                                    fc="#e8eef8" if terminal else "#f2f0ff", ec="#446"))
        ax.text(x, y, label, ha="center", va="center", fontsize=10)
    ax.set_xlim(-0.5, width + 0.5)
    ax.set_ylim(0.4, depth + 0.6)
    ax.axis("off")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def draw(graph: Graph, fmt: Format) -> str | bytes:
    if fmt == "mermaid":
        return graph.draw_mermaid()
    if fmt == "ascii":
        return graph.draw_ascii()
    try:
        return graph.draw_png()  # pygraphviz, if installed
    except ImportError:
        return png_matplotlib(graph)
