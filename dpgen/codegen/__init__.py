"""Code generation: kernel plans from adjoints, rendered through ``templates/``."""

from .plan import KernelPlan, make_plan
from .render import CodegenOptions, GeneratedModule, content_hash, render_module

__all__ = ["CodegenOptions", "GeneratedModule", "KernelPlan", "content_hash", "make_plan", "render_module"]
