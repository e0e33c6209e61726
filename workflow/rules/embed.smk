# Stage 4: frozen-backbone embeddings of the labeled pool and the test set. A frozen pretrained model
# (kind `pretrained`) is embedded with its own architecture, input size, interpolation and mean / std.


rule embed:
    input:
        unpack(split_files),
        unpack(dataset_images),
        unpack(embed_weights),
        checked=split_check,
    output:
        labeled_train="results/embeddings/{dataset}/{method}/labeled_train.npz",
        test="results/embeddings/{dataset}/{method}/test.npz",
    log:
        "results/logs/embed/{dataset}/{method}.log",
    benchmark:
        "results/benchmarks/embed/{dataset}/{method}.tsv"
    params:
        dataset=dataset_cfg,
        backbone=method_backbone,
        views=pretraining_views,
        image_root=lambda wc: image_root(wc.dataset),
        precision=config["evaluation"]["embedding_precision"],
    threads: config["evaluation"]["embedding_threads"]
    priority: 40  # on the critical path behind pretraining
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/embed.py"
