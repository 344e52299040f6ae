"""The interactive explorer: ``HeadExplorer``, one canvas grid of every head and the selected head's
pattern, metrics and tokens (ipywidgets + anywidget, imported when the widget is built), with its exports.
"""

from .widgets import HeadExplorer

__all__ = ["HeadExplorer"]
