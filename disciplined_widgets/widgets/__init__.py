"""Notebook widgets over the core: thin views with Run/Stop, live plots and results in Python.

Core ipywidgets 8 controls only, so they work in JupyterLab, Notebook 7, VS Code, Voila and
Colab without extra set-up.
"""

from .controls import LogRangeSlider
from .live_plot import LivePlot
from .range_test_widget import RangeTestWidget

__all__ = ["LivePlot", "LogRangeSlider", "RangeTestWidget"]
