"""Downloads: datasets (resumable fetch, checksums, atomic unpacking, hand-placed sources) and weights.

Every failure is a :class:`DownloadError` whose message names the URL or the path concerned and what
to do. The rules in ``workflow/rules/download.smk`` are thin wrappers around :func:`fetch`,
:func:`unpack` and :func:`check_manual`.

    transfer    resumable HTTP(S) fetch with retries and checksums
    archives    zip / tar unpacking into place
    manual      checks of hand-placed data and of .npz archives
    weights     the paper's published DINO weights
    pretrained  timm's pretrained backbones, fetched once into the cache
"""

from medssl.download.archives import MAX_UNPACKED_GB, archive_format, unpack
from medssl.download.manual import IMAGE_EXTENSIONS, check_manual, check_npz, manual_instructions
from medssl.download.transfer import ChecksumError, DownloadError, fetch, file_hash, local_path, verify_checksum

__all__ = ["DownloadError", "ChecksumError", "file_hash", "verify_checksum", "fetch", "unpack",
           "archive_format", "local_path", "check_npz", "check_manual", "manual_instructions",
           "IMAGE_EXTENSIONS", "MAX_UNPACKED_GB"]
