"""Video classifiers for attacks: loading (`load_model`, `list_models`) and the differentiable view
(`ModelView`, `Preprocess`, `BoundModel`) that attacks receive."""

from __future__ import annotations

from vidattack.models.load import list_models, load_model
from vidattack.models.view import BoundModel, ModelView, Preprocess

__all__ = ["BoundModel", "ModelView", "Preprocess", "list_models", "load_model"]
