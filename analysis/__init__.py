"""Analysis of LoGo results: metrics, task similarity, figures and exports, on plain data (never the model).

Modules (import the one you need; nothing heavy is imported here):
- `analysis.similarity`: MiniLM task embeddings and centroids, cached as JSON.
- `analysis.figures`: the Plotly figures (signal heatmap, weight-similarity scatter, latency, sweeps) and tables.
- `analysis.export`: HTML, PNG, CSV and zip bundles of those figures and tables.
"""
