"""LoRA-Gen figures: the generated adapter's gates as a layers x experts heatmap (plotly, no UI code)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from analysis.figures import FONT

CELL_PX = 16  # height of one layer's row


def gate_heatmap(
    gates: np.ndarray, expert_names: Sequence[str], title: str = "Gates of the generated LoRA"
) -> go.Figure:
    """gates (L, n): each edge layer's KeepTop-K weights over its experts; zero cells are left blank."""
    gates = np.asarray(gates, dtype=float)
    if gates.ndim != 2 or gates.shape[1] != len(expert_names):
        raise ValueError(
            f"gates of shape {gates.shape} do not match {len(expert_names)} expert names: give (layers, experts)"
        )
    shown = np.where(gates > 0, gates, np.nan)  # (L, n): kept experts only
    layers = list(range(gates.shape[0]))
    fig = go.Figure(
        go.Heatmap(
            z=shown,
            x=list(expert_names),
            y=layers,
            zmin=0,
            zmax=1,
            colorscale="Blues",
            colorbar=dict(title="gate"),
            hovertemplate="layer %{y}<br>%{x}: %{z:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        template="plotly_white",
        font=FONT,
        title=dict(text=title, x=0.0, xanchor="left"),
        height=120 + CELL_PX * len(layers),
        margin=dict(l=60, r=20, t=60, b=90),
        xaxis=dict(title="expert", tickangle=-45),
        yaxis=dict(title="edge layer", autorange="reversed", dtick=max(1, len(layers) // 10)),
    )
    return fig
