"""Saving and loading the model bundle: versioned folders, an atomically switched `current` link,
and metadata checked on load so a mismatched bundle is refused with a clear message."""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.isotonic import IsotonicRegression

from predictor.atomic import replace_symlink, write_json_atomic
from predictor.errors import ArtifactError
from predictor.model.estimators import LEVEL_SOURCE, MODEL_FEATURES, CLVModel, TrainingConfig

ARTIFACT_FORMAT = 2
MODEL_FILES = {"value_model": "value.ubj", "churn_model": "churn.ubj", "interval_model": "interval.ubj",
               "next_order_model": "next_order.ubj"}


def library_versions() -> dict:
    import lifetimes
    import sklearn

    return {"python": platform.python_version(), "xgboost": xgb.__version__, "scikit-learn": sklearn.__version__,
            "pandas": pd.__version__, "numpy": np.__version__, "lifetimes": lifetimes.__version__}


@dataclass
class ModelBundle:
    model: CLVModel
    metadata: dict
    path: Path

    @property
    def horizon_days(self) -> int | None:
        """The horizon the model predicts over: the one place it is read (the training config saved with it)."""
        value = (self.metadata.get("config") or {}).get("horizon_days")
        return int(value) if value is not None else None


def save_model(model: CLVModel, model_dir: Path, data_fingerprint: str, evaluation: dict | None = None,
               promotion: dict | None = None) -> ModelBundle:
    """Write a new version folder completely, then point `current` at it in one rename. `promotion` is the
    champion/challenger comparison that let `valuedesk retrain` promote this model (predictor/model/promotion.py)."""
    if getattr(model, "text", None) is not None:
        # Text features are an evaluation-only ablation (dropped by measurement): the one-customer
        # rescoring path and the artifact's feature list know the behaviour features only.
        raise ValueError("A model trained with text_feature_dims > 0 cannot be saved; text features are for "
                         "`bench/bench_text_features.py` only.")
    model_dir.mkdir(parents=True, exist_ok=True)
    version = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    staging = Path(tempfile.mkdtemp(dir=model_dir, prefix=f".{version}."))
    try:
        for attr, name in MODEL_FILES.items():
            getattr(model, attr).save_model(staging / name)
        bg = model.scoring_bg
        metadata = {
            "artifact_format": ARTIFACT_FORMAT,
            "version": version,
            "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "features": MODEL_FEATURES,
            "training_window": model.training_window,
            "data_range": model.data_range,
            "data_fingerprint": data_fingerprint,
            "library_versions": library_versions(),
            "config": model.config.to_record(),
            "params": model.params,
            "blend_weight": model.blend_weight,
            "last_period_scale": model.last_period_scale,
            # The total's level (a scale on the blended value, and where it comes from) and the
            # interval's conformal shift (log1p spend).
            "total_scale": model.total_scale,
            "level_source": model.level_source,
            "interval_shift": model.interval_shift,
            "metrics": model.validation_metrics,
            "validation": model.validation,
            "evaluation": evaluation,
            "promotion": promotion,
            "warnings": model.warnings,
            "history_limits": model.history_limits,
            "fit_seconds": model.fit_seconds,
            "calibrator": {"x": model.calibrator.X_thresholds_.tolist(), "y": model.calibrator.y_thresholds_.tolist()},
            "bgnbd_params": bg.bgf.params_.to_dict() if bg is not None else None,
            "gamma_gamma_params": bg.ggf.params_.to_dict() if bg is not None else None,
        }
        write_json_atomic(staging / "metadata.json", metadata)
        final = model_dir / version
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    replace_symlink(model_dir / "current", version)
    return ModelBundle(model=model, metadata=metadata, path=final)


def load_model_bundle(settings) -> ModelBundle:
    from predictor.layout import current_version

    version = current_version(settings.data_dir)
    return load_model(version.model_dir, verify=version.verify, shown=version.rel)


def _bundle_file(current: Path, name: str, verify, shown) -> Path:
    """`current/name`, checked against the build's manifest when there is one (`verify`)."""
    path = current / name
    if verify is not None:
        version_root = current.resolve().parent.parent  # <version>/models/<model>/<file>
        verify(str(path.resolve().relative_to(version_root)))
    return path


def load_model(model_dir: Path, *, verify=None, shown=None) -> ModelBundle:
    """The model `model_dir/current` points at. `verify(relative_path)` checks each file against the build's
    manifest first; `shown(path)` names files in messages (relative to the data directory)."""
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    from predictor.model.baselines import BGNBDGammaGamma

    shown = shown or (lambda p: Path(p).name)
    current = model_dir / "current"
    meta_path = current / "metadata.json"
    if not meta_path.exists():
        raise ArtifactError(f"No trained model in {shown(model_dir)}; run `valuedesk score` (or `valuedesk build`) first.")
    try:
        metadata = json.loads(_bundle_file(current, "metadata.json", verify, shown).read_text())
        if not isinstance(metadata, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{shown(meta_path)} is unreadable ({type(exc).__name__}: {exc}); rebuild the model "
                            "with `valuedesk build --rescore`.") from exc
    if metadata.get("artifact_format") != ARTIFACT_FORMAT:
        raise ArtifactError(f"Model in {shown(current)} has artifact format {metadata.get('artifact_format')}, "
                            f"this version reads format {ARTIFACT_FORMAT}; retrain with `valuedesk build --rescore`.")
    if metadata.get("features") != MODEL_FEATURES:
        raise ArtifactError(f"Model in {shown(current)} was trained on a different feature list; "
                            "retrain with `valuedesk build --rescore`.")
    try:
        return _restore(metadata, current, verify, shown, BetaGeoFitter, GammaGammaFitter, BGNBDGammaGamma)
    except ArtifactError:
        raise
    except (KeyError, TypeError, ValueError, OSError, xgb.core.XGBoostError) as exc:
        raise ArtifactError(f"The model in {shown(current)} cannot be loaded ({type(exc).__name__}: "
                            f"{str(exc)[:200]}); rebuild it with `valuedesk build --rescore`.") from exc


def _restore(metadata: dict, current: Path, verify, shown, BetaGeoFitter, GammaGammaFitter,
             BGNBDGammaGamma) -> ModelBundle:
    saved_major = str(metadata["library_versions"]["xgboost"]).split(".")[0]
    if saved_major != xgb.__version__.split(".")[0]:
        raise ArtifactError(f"Model was saved with xgboost {metadata['library_versions']['xgboost']}, this install has "
                            f"{xgb.__version__}; retrain with `valuedesk build --rescore`.")
    model = CLVModel(TrainingConfig.from_record(metadata["config"]))
    for attr, name in MODEL_FILES.items():
        booster_cls = xgb.XGBClassifier if attr == "churn_model" else xgb.XGBRegressor
        estimator = booster_cls()
        path = _bundle_file(current, name, verify, shown)
        try:
            estimator.load_model(path)
        except (xgb.core.XGBoostError, OSError, ValueError) as exc:
            raise ArtifactError(f"{shown(path)} cannot be loaded ({type(exc).__name__}); rebuild the model with "
                                "`valuedesk build --rescore`.") from exc
        setattr(model, attr, estimator)
    calibrator = IsotonicRegression(out_of_bounds="clip", y_min=0.005, y_max=0.995)
    x, y = np.array(metadata["calibrator"]["x"]), np.array(metadata["calibrator"]["y"])
    calibrator.fit(x, y)
    model.calibrator = calibrator
    model.blend_weight = metadata["blend_weight"]
    model.last_period_scale = metadata["last_period_scale"]
    # Models saved before the level and the conformal interval existed: no rescaling, the raw interval.
    model.total_scale = metadata.get("total_scale", 1.0)
    model.level_source = metadata.get("level_source", LEVEL_SOURCE)
    model.interval_shift = metadata.get("interval_shift", 0.0)
    model.params = metadata["params"]
    model.training_window = metadata["training_window"]
    model.data_range = metadata["data_range"]
    model.validation_metrics = metadata["metrics"]
    model.validation = metadata.get("validation")
    model.warnings = metadata.get("warnings", [])
    model.history_limits = metadata.get("history_limits", [])
    model.fit_seconds = metadata.get("fit_seconds", 0.0)
    model.scoring_bg = None
    if metadata.get("bgnbd_params"):
        bg = BGNBDGammaGamma()
        bg.bgf, bg.ggf = BetaGeoFitter(), GammaGammaFitter()
        bg.bgf.params_ = pd.Series(metadata["bgnbd_params"])
        bg.ggf.params_ = pd.Series(metadata["gamma_gamma_params"])
        model.scoring_bg = bg
    return ModelBundle(model=model, metadata=metadata, path=current.resolve())
