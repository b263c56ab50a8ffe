"""Training, evaluation, checkpoints and the trained-model cache."""
from .cache import TrainedModel, cache_root, get_model, run_dir, trained
from .checkpoint import (CheckpointError, CheckpointWriteError, build_dequantizer, build_model, load_checkpoint,
                         load_trained, load_trained_with_dequantizer, run_config_of, save_checkpoint, write_csv)
from .evaluate import Splits, bits_per_image, evaluate, mean_and_sem, prepare_splits, seeded
from .loop import TrainingFailed, TrainResult, resolve_device, train, training_loss, update_ema, warmup_steps
from .run_folder import RunFolderBusy

__all__ = ["TrainedModel", "cache_root", "get_model", "run_dir", "trained", "CheckpointError",
           "CheckpointWriteError", "build_dequantizer", "build_model", "load_checkpoint", "load_trained",
           "load_trained_with_dequantizer", "run_config_of", "save_checkpoint", "write_csv", "Splits",
           "bits_per_image", "evaluate", "mean_and_sem", "prepare_splits", "seeded", "TrainingFailed", "TrainResult",
           "resolve_device", "train", "training_loss", "update_ema", "warmup_steps", "RunFolderBusy"]
