"""`labelrouter report`: how labeling goes, week by week, as a self-contained HTML page (docs/report.md).

`quality` computes the figures from the store's decisions (no text is read); `html` renders them with
inline SVG plots, so the page is one file that opens anywhere without a network.
"""

from labelrouter.report.html import render_html
from labelrouter.report.quality import QualityReport, build_report

__all__ = ["QualityReport", "build_report", "render_html"]
