"""One fit of the supervised DL baseline (dataset x variant x budget x seed)."""
from medssl.runtime import die_with_snakemake, fail_once, setup_logging

log = setup_logging(snakemake.log[0])
die_with_snakemake()
with fail_once(snakemake.log[0], snakemake.resources.attempt):
    from medssl.data.checks import check_disjoint
    from medssl.data.splits import read_split
    from medssl.evaluate.supervised import resolve_device, run_supervised, write_fit
    from medssl.runtime import limit_threads
    from medssl.settings import SupervisedConfig

    limit_threads(snakemake.threads)
    wc = snakemake.wildcards
    ds = snakemake.params.dataset
    settings = SupervisedConfig.from_dict(snakemake.params.settings)
    device = resolve_device(settings)
    log.info("training on %s (%d threads); settings %s", device, snakemake.threads, settings)
    labeled, test = read_split(snakemake.input.labeled_train), read_split(snakemake.input.test)
    check_disjoint({snakemake.input.labeled_train: labeled["image"], snakemake.input.test: test["image"]})
    record, test, y_pred = run_supervised(
        labeled, test, snakemake.params.image_root,
        ds["classes"], ds["image_size"], ds["channels"], wc.budget, int(wc.seed),
        snakemake.params.min_class_size, snakemake.params.backbone, settings, device)
    write_fit(record, test, y_pred, snakemake.output.metrics, snakemake.output.predictions,
              dataset=wc.dataset, variant=wc.variant, method=wc.baseline)
