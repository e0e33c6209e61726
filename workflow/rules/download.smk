# Stage 0: fetch the datasets. Every entry of datasets.<name>.source.download is a file behind a URL,
# optionally an archive unpacked into place; datasets.<name>.source.manual is data a user must place
# by hand (the rule prints what and where, then checks it). Downloads run where Snakemake runs
# (localrule: cluster compute nodes are often offline).
include: "common_download.smk"


# `snakemake download_data --keep-going --configfile ...`: fetch every dataset that can be fetched, check the hand-placed
# ones, and nothing else.
rule download_data:
    input:
        [f for d in DATASETS for f in dataset_downloads(d)],
    localrule: True


rule download_archive:
    output:
        archive=_archive_output("{archive}"),
    log:
        "results/logs/download/{archive}.log",
    benchmark:
        "results/benchmarks/download/{archive}.tsv"
    wildcard_constraints:
        archive=_paths(set(ARCHIVES) - set(_SHA256)),
    params:
        item=lambda wc: _item(wc.archive),
        settings=DOWNLOAD_SETTINGS,
    localrule: True
    retries: 1  # a second attempt resumes the partial file
    conda:
        "../../envs/sklearn.yaml"
    script:
        "../scripts/download.py"


# The same for files whose sha256 is published: Snakemake checks it again after the job.
rule download_archive_sha256:
    output:
        archive=_archive_output(ensure("{archive}", sha256=lambda wc: _item(wc.archive)["sha256"])),
    log:
        "results/logs/download/{archive}.log",
    benchmark:
        "results/benchmarks/download/{archive}.tsv"
    wildcard_constraints:
        archive=_paths(_SHA256),
    params:
        item=lambda wc: _item(wc.archive),
        settings=DOWNLOAD_SETTINGS,
    localrule: True
    retries: 1
    conda:
        "../../envs/sklearn.yaml"
    script:
        "../scripts/download.py"


# Files that are the data themselves (a MedMNIST .npz, a ground-truth CSV): kept, never unpacked.
rule download_file:
    output:
        file="{file}",
    log:
        "results/logs/download/{file}.log",
    benchmark:
        "results/benchmarks/download/{file}.tsv"
    wildcard_constraints:
        file=_paths(set(DOWNLOADS) - set(ARCHIVES)),
    params:
        item=lambda wc: _item(wc.file),
        settings=DOWNLOAD_SETTINGS,
    localrule: True
    retries: 1
    conda:
        "../../envs/sklearn.yaml"
    script:
        "../scripts/download.py"


rule unpack_archive:
    input:
        archive=lambda wc: UNPACKED[wc.unpacked],
    output:
        folder=directory("{unpacked}"),
    log:
        "results/logs/unpack_archive/{unpacked}.log",
    benchmark:
        "results/benchmarks/unpack_archive/{unpacked}.tsv"
    wildcard_constraints:
        unpacked=_paths(UNPACKED),
    params:
        unpack=lambda wc: _item(UNPACKED[wc.unpacked])["unpack"],
        max_gb=DOWNLOAD_SETTINGS["max_unpacked_gb"],
    localrule: True
    conda:
        "../../envs/sklearn.yaml"
    script:
        "../scripts/unpack_archive.py"


# Data that cannot be fetched by a script (TCIA's Aspera-only bone-marrow set, Kaggle copies):
# fails with what to download and where to put it until the files are there and complete.
rule check_manual_data:
    output:
        report="results/data/{dataset}/manual_check.json",
    log:
        "results/logs/check_manual_data/{dataset}.log",
    benchmark:
        "results/benchmarks/check_manual_data/{dataset}.tsv"
    wildcard_constraints:
        dataset=_alternation(MANUAL),
    params:
        manual=lambda wc: dataset_cfg(wc)["source"]["manual"],
    localrule: True
    conda:
        "../../envs/sklearn.yaml"
    script:
        "../scripts/check_manual_data.py"
