# Stage 3: self-supervised pretraining. Every method writes the backbone weights that the
# embedding stage loads: results/ssl/{dataset}/{method}/backbone.pt. One rule trains every
# trainable kind (SSL_KINDS, from medssl.ssl.kinds); the method comes from the config
# entry, and health.json holds the final collapse signals and verdict (medssl.ssl.collapse).


rule pretrain_ssl:
    input:
        unpack(split_files),
        unpack(dataset_images),
        checked=split_check,
    output:
        backbone="results/ssl/{dataset}/{method}/backbone.pt",
        train_log="results/ssl/{dataset}/{method}/train_log.csv",
        health="results/ssl/{dataset}/{method}/health.json",
    log:
        "results/logs/pretrain_ssl/{dataset}/{method}.log",
    benchmark:
        "results/benchmarks/pretrain_ssl/{dataset}/{method}.tsv"
    wildcard_constraints:
        method=_alternation(_trainable(METHODS)),
    params:
        dataset=dataset_cfg,
        method=pretrain_method_cfg,
        backbone=config["backbone"],
        image_root=lambda wc: image_root(wc.dataset),
        work_dir=lambda wc: f"results/ssl/{wc.dataset}/{wc.method}",
    threads: pretrain_threads
    # The critical path of every run: start it before the many short jobs that do not need it.
    priority: 50
    resources:
        gpu=1,
        attempt=lambda wc, attempt: attempt,  # read by medssl.runtime.fail_once
    retries: 2
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/pretrain_ssl.py"


rule init_random_backbone:
    output:
        backbone="results/ssl/{dataset}/{method}/backbone.pt",
    log:
        "results/logs/init_random_backbone/{dataset}/{method}.log",
    benchmark:
        "results/benchmarks/init_random_backbone/{dataset}/{method}.tsv"
    wildcard_constraints:
        method=_alternation(_names(METHODS, "random_init")),
    params:
        method=method_cfg,
        backbone=config["backbone"],
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/init_random_backbone.py"


# The paper's released DINO teachers (method kind `published`) instead of pretraining: download
# (resumable, md5-checked) or a local file://, keep the backbone.* keys and load them strictly into
# the configured backbone (xcit_small_12_p8_224 for the released files).
rule fetch_published_weights:
    output:
        backbone="results/ssl/{dataset}/{method}/backbone.pt",
    log:
        "results/logs/fetch_published_weights/{dataset}/{method}.log",
    benchmark:
        "results/benchmarks/fetch_published_weights/{dataset}/{method}.tsv"
    wildcard_constraints:
        method=_alternation(_names(METHODS, "published")),
    params:
        url=lambda wc: method_cfg(wc)["urls"][wc.dataset],
        md5=lambda wc: method_cfg(wc)["md5"].get(wc.dataset),
        prefix=lambda wc: method_cfg(wc)["prefix"],
        download=lambda wc: f"results/ssl/{wc.dataset}/{wc.method}/download/checkpoint.pt",
        backbone=config["backbone"],
    localrule: True  # on a cluster the download runs where Snakemake runs (compute nodes may be offline)
    retries: 2
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/fetch_published_weights.py"


# A frozen off-the-shelf pretrained model (method kind `pretrained`, medssl.download.pretrained): the timm model
# with its pretrained tag (or a local weights file), built once per method, its state dict and timm data
# config (input size, interpolation, mean / std) saved for the embedding. A local rule, as above: a
# download (said in the log) happens where Snakemake runs; fill the cache beforehand (config/README.md).
rule fetch_pretrained_backbone:
    input:
        unpack(lambda wc: {"weights": METHODS[wc.method]["weights"]} if METHODS[wc.method].get("weights") else {}),
    output:
        backbone="results/pretrained/{method}/backbone.pt",
        data_config="results/pretrained/{method}/data_config.json",
    log:
        "results/logs/fetch_pretrained_backbone/{method}.log",
    benchmark:
        "results/benchmarks/fetch_pretrained_backbone/{method}.tsv"
    wildcard_constraints:
        method=_alternation(_names(METHODS, "pretrained")),
    params:
        spec=pretrained_spec,
    localrule: True
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/fetch_pretrained_backbone.py"
