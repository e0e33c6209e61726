"""Evaluation of the frozen and trained backbones on few labels, one module per arm and its parts.

    budgets          embeddings of a split; the labeled subset of a (budget, seed), class weights, holdouts
    preprocessing    the features' preprocessing fit on each labeled subset (power_transform: Yeo-Johnson)
    estimators       the classifiers medssl bundles (k-NNs, LinearProbe), named in configs by path
    classify         classifiers on embeddings (rule classify): building them, scores, per-fit records
    probes           SmallDataSSL's trained MLP head on embeddings ("linear evaluation")
    fit_sweep        every budget x seed x classifier of one job, in worker processes
    draws            many label draws at small budgets (evaluation.draws)
    supervised       the supervised end-to-end DL baseline (rule supervised)
    linear_layer     a linear layer trained on images through the frozen SSL backbone (rule linear_layer)

Classifiers a config names live here, e.g. ``medssl.evaluate.estimators.LinearProbe``.
"""
