"""Where a user's weights live: an object-storage URI or a directory, as the deployment file names them.

Accepted (``parse_uri``):

- ``s3://bucket/path``: AWS S3, or an S3-compatible store on an on-prem site (MinIO; the replica's environment then
  sets AWS_ENDPOINT_URL).
- ``gs://bucket/path``: Google Cloud Storage.
- ``https://ACCOUNT.blob.core.windows.net/CONTAINER/path``: Azure Blob Storage. vLLM's Run:ai streamer names it
  ``az://CONTAINER/path`` and reads the account from AZURE_STORAGE_ACCOUNT_NAME, so the URL form (which carries the
  account) is the one taken here; ``az://`` alone is refused for lacking it.
- a directory: absolute, ``file:///...``, or relative to the deployment file. Served as it is, from the serving host.

Anything else (``http://``, ``hdfs://``, ``hf://`` ...) is an error that says what is accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Kind = Literal["s3", "gs", "azure", "path"]
CLOUD_OF: dict[str, str] = {"s3": "aws", "gs": "gcp", "azure": "azure"}
# Which region providers each kind may name: object storage sits in its cloud (S3's API also on-prem, MinIO);
# a directory on an on-prem site or this machine.
REGION_PROVIDERS: dict[str, tuple[str, ...]] = {"s3": ("aws", "onprem"), "gs": ("gcp",), "azure": ("azure",),
                                                "path": ("onprem", "local")}
ACCEPTED = ("s3://BUCKET/path, gs://BUCKET/path, https://ACCOUNT.blob.core.windows.net/CONTAINER/path, "
            "or a directory")

_BUCKET = re.compile(r"^(s3|gs)://([a-z0-9][a-z0-9._-]{1,221}[a-z0-9])(/[^\s]*)?$")
_AZURE = re.compile(r"^https://([a-z0-9]{3,24})\.blob\.core\.windows\.net/([a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9]))(/[^\s]*)?$")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


@dataclass(frozen=True)
class StorageURI:
    kind: Kind
    raw: str
    bucket: str = ""  # s3/gs bucket, Azure container
    key: str = ""  # the path inside the bucket, without a leading /
    account: str | None = None  # Azure storage account
    path: str = ""  # kind "path": the directory, absolute when a base directory was given
    env: dict[str, str] = field(default_factory=dict)  # what the replica's environment needs to read it

    @property
    def object_storage(self) -> bool:
        return self.kind != "path"

    @property
    def cloud(self) -> str | None:
        return CLOUD_OF.get(self.kind)

    def vllm_uri(self) -> str:
        """What vLLM (and the Run:ai streamer) is given: s3://, gs://, az://CONTAINER/path, or the directory."""
        if self.kind == "path":
            return self.path
        scheme = "az" if self.kind == "azure" else self.kind
        return f"{scheme}://{self.bucket}/{self.key}".rstrip("/")

    def region_reason(self, region: str) -> str | None:
        """Why ``region`` cannot be where this lives, or None."""
        provider = region.split(":", 1)[0]
        allowed = REGION_PROVIDERS[self.kind]
        if provider in allowed:
            return None
        what = {"s3": "an s3:// bucket", "gs": "a gs:// bucket", "azure": "an Azure blob container",
                "path": "a directory"}[self.kind]
        return f"{what} lives in a region of {' or '.join(allowed)}, not {provider}"


def parse_uri(uri: str, base_dir: Path | None = None) -> StorageURI:
    """The parsed location; ValueError says what is wrong and what is accepted."""
    uri = uri.strip()
    m = _BUCKET.match(uri)
    if m:
        return StorageURI(m.group(1), uri, bucket=m.group(2), key=(m.group(3) or "").strip("/"))  # type: ignore[arg-type]
    m = _AZURE.match(uri)
    if m:
        return StorageURI("azure", uri, bucket=m.group(2), key=(m.group(3) or "").strip("/"), account=m.group(1),
                          env={"AZURE_STORAGE_ACCOUNT_NAME": m.group(1)})
    if uri.startswith("file://"):
        uri = uri[len("file://"):]
        if not uri.startswith("/"):
            raise ValueError(f"expected file:///an/absolute/path, found {uri!r}")
    scheme = _SCHEME.match(uri)
    if scheme:
        name = scheme.group(1).lower()
        if name in ("s3", "gs"):
            hint = f"{name}://BUCKET/path with a valid bucket name"
        elif name == "az":
            hint = "https://ACCOUNT.blob.core.windows.net/CONTAINER/path (az:// does not say the storage account)"
        elif name == "https" and ".blob.core.windows.net" in uri:
            hint = "https://ACCOUNT.blob.core.windows.net/CONTAINER/path (lowercase account and container)"
        else:
            return _unknown(name)
        raise ValueError(f"cannot read {uri!r}: expected {hint}")
    path = Path(uri).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = (base_dir / path).resolve()
    return StorageURI("path", uri, path=str(path))


def _unknown(scheme: str) -> StorageURI:
    raise ValueError(f"unknown scheme {scheme}://; expected {ACCEPTED}")
