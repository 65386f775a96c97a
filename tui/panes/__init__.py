"""The inference panes after the Jobs pane, in tab order. Each is a widget class with ``pane_id`` and ``title``."""

from __future__ import annotations

from tui.panes.analyze import AnalyzePane
from tui.panes.classify import ClassifyPane
from tui.panes.explain import ExplainPane
from tui.panes.gradcam import GradCamPane

PANES = (ClassifyPane, GradCamPane, ExplainPane, AnalyzePane)
