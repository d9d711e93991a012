from workbench.core.methods.reverse_distillation.model import ReverseDistillation

__all__ = ["ReverseDistillation"]
