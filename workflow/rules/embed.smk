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
        normalize=lambda wc: method_cfg(wc).get("augmentation", {}).get("normalize", "imagenet"),
        image_root=lambda wc: image_root(wc.dataset),
        precision=config["evaluation"].get("embedding_precision", "auto"),
    threads: config["evaluation"].get("embedding_threads", 4)
    priority: 40  # on the critical path behind pretraining
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/embed.py"
