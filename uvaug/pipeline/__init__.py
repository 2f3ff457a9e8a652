"""``uvaug pipeline``: fit, complete and render a whole dataset in one streaming, resumable run.

:func:`run_pipeline` is the entry point; :mod:`uvaug.pipeline.local` runs the stages overlapped on this
machine (worker processes fit and render, one batched completer in between), and
:mod:`uvaug.pipeline.ray_executor` as Ray Data actor pools on a cluster; the settings, the resume index and
the report are shared by both.
"""

from uvaug.pipeline.options import PipelineOptions, SettingsMismatchError
from uvaug.pipeline.run import PipelineReport, run_pipeline

__all__ = ["PipelineOptions", "PipelineReport", "SettingsMismatchError", "run_pipeline"]
