"""medssl: self-supervised pretraining and few-label evaluation for medical images.

One module per pipeline stage:
    data      datasets (generated, folder, CSV manifest), image checks, splits, image loading
    augment   batched multi-crop augmentation on uint8 image tensors
    ssl       DINO: projection head, loss, schedules, EMA teacher, training loop with resume
    embed     frozen-backbone feature extraction
    classify  label budgets, classifiers on embeddings, per-fit metrics
    report    aggregation, summary tables, figures
"""

__version__ = "0.1.0"
