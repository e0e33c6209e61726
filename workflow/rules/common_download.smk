# Helpers of rules/download.smk: which files each dataset downloads, unpacks or expects by hand.
import re

DOWNLOAD_SETTINGS = config["downloads"]  # with the schema's defaults


def _download_items():
    """{file path: (dataset, item)} of every configured download; `file` is where it is saved."""
    items = {}
    for name, ds in config["datasets"].items():
        for item in ds["source"].get("download", []):
            path = SOURCES[name].download_path(item, DOWNLOAD_SETTINGS["dir"])
            if path in items:
                raise ValueError(f"datasets.{name}.source.download: {path} is also the download of "
                                 f"datasets.{items[path][0]} (set `to:` to tell them apart)")
            items[path] = (name, item)
    return items


DOWNLOADS = _download_items()
ARCHIVES = {p: v for p, v in DOWNLOADS.items() if v[1].get("unpack")}
UNPACKED = {v[1]["unpack"]["to"]: p for p, v in ARCHIVES.items()}
MANUAL = [d for d in DATASETS if config["datasets"][d]["source"].get("manual")]


def _paths(paths):
    return "|".join(re.escape(p) for p in sorted(paths)) if paths else "(?!x)x"


def download_inputs(wildcards):
    """What a dataset's indexing and its images' readers need on disk: unpacked folders, data files
    and the check of hand-placed data."""
    return {f"download_{i}": f for i, f in enumerate(dataset_downloads(wildcards.dataset))}


def dataset_downloads(d):
    files = [p for p, (name, _) in DOWNLOADS.items() if name == d and p not in ARCHIVES]
    files += [to for to, archive in UNPACKED.items() if DOWNLOADS[archive][0] == d]
    if d in MANUAL:
        files.append(f"results/data/{d}/manual_check.json")
    return files


def _item(path):
    return DOWNLOADS[path][1]


def _archive_output(path):
    return path if DOWNLOAD_SETTINGS["keep_archives"] else temp(path)


_SHA256 = [p for p, (_, item) in ARCHIVES.items() if item.get("sha256")]
