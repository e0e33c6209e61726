"""medssl: self-supervised pretraining and few-label evaluation for medical images.

One package or module per pipeline stage; the rule files in workflow/rules/ carry the same names:
    data       datasets (generated, folder, CSV manifest, npz), image checks, splits, image loading
    download   dataset and weight downloads: resumable fetch, checksums, unpacking, hand-placed data
    augment    batched multi-crop augmentation on uint8 image tensors
    ssl        self-supervised pretraining: the shared trainer and one module per method
    embed      frozen-backbone feature extraction
    evaluate   label budgets, classifiers on embeddings, the DL baseline and linear-layer arms
    report     aggregation, summary tables, SSL health, figures
Shared by several stages: backbone (timm models and their weights), settings (typed settings of the
trained arms), checks (plan-time config checks), runtime (devices, precision, logs, atomic writes).
"""

__version__ = "0.1.0"
