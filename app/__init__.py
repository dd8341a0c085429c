"""LoGo Studio, the Gradio app: layout (ui.py), handlers (ui_handlers.py) and the data it shows (ui_data.py)."""
