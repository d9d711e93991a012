from workbench.core.methods.cutpaste.model import CutPaste

__all__ = ["CutPaste"]
