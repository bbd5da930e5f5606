"""Notebook widgets over the core: thin views with Run/Stop, live plots and results in Python.

Core ipywidgets controls only, so they work in JupyterLab, Notebook 7, VS Code, Voila and
Colab without extra set-up, under ipywidgets 8 and 7.7 (Colab's; see ``compat``).
"""

from .compare_widget import CompareWidget
from .controls import LogRangeSlider
from .live_plot import LivePlot
from .range_test_widget import RangeTestWidget
from .schedule_widget import ScheduleWidget
from .search_widget import SearchWidget
from .train_widget import TrainWidget

__all__ = ["CompareWidget", "LivePlot", "LogRangeSlider", "RangeTestWidget", "ScheduleWidget", "SearchWidget",
           "TrainWidget"]
