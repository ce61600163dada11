"""Settings as data.

One table of settings; the file ``lightbox.toml``, ``LIGHTBOX_*`` environment
variables and command-line flags all come from it.  Precedence, lowest first:
default, file, environment, flag.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str
    choices: tuple[str, ...] = ()

    @property
    def kind(self) -> type:
        return type(self.default)

    @property
    def env_var(self) -> str:
        return "LIGHTBOX_" + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def parse(self, raw: Any) -> Any:
        """Convert a value from a file, the environment or a flag to this setting's type."""
        kind = self.kind
        if kind is bool and isinstance(raw, str):
            lowered = raw.strip().lower()
            if lowered not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError(f"{self.name}: expected a boolean, got {raw!r}")
            value: Any = lowered in ("1", "true", "yes", "on")
        elif kind is int and isinstance(raw, bool):
            raise ValueError(f"{self.name}: expected an integer, got {raw!r}")
        else:
            try:
                value = kind(raw)
            except (TypeError, ValueError):
                raise ValueError(f"{self.name}: expected {kind.__name__}, got {raw!r}") from None
        if self.choices and value not in self.choices:
            raise ValueError(f"{self.name}: expected one of {', '.join(self.choices)}, got {value!r}")
        return value


SETTINGS: tuple[Setting, ...] = (
    Setting("data", "./lightbox-data", "Data folder: the stored files, the index and the spool."),
    Setting(
        "aet",
        "LIGHTBOX",
        "Lightbox's own DICOM AE title. The initial value: one saved in the web UI (wizard or Admin page) holds "
        "instead, from the next association on.",
    ),
    Setting("host", "0.0.0.0", "Address the DICOM and HTTP servers listen on."),
    Setting("dicom_port", 11112, "DICOM port (C-ECHO, C-STORE)."),
    Setting("http_port", 8080, "HTTP port (web UI, API, /healthz)."),
    Setting("https_port", 8443, "HTTPS port (web UI, API), with the certificate of `tls_certificate`; 0: none."),
    Setting(
        "dicom_tls_port",
        2762,
        "DICOM TLS port (PS3.15 Annex B, BCP 195: TLS 1.2 or 1.3), beside the plain one; 0: none.",
    ),
    Setting(
        "dicom_tls_peers",
        "trusted",
        "Who may connect to the DICOM TLS port: trusted (a peer must show a certificate trusted for one of the "
        "DICOM nodes: its own, or one signed by the CA given for that node) or any (encryption only; the device "
        "policy still applies).",
        choices=("trusted", "any"),
    ),
    Setting(
        "tls_certificate",
        "",
        "The clinic's own certificate (PEM, with its chain) for DICOM TLS and HTTPS. Empty: Lightbox makes one on "
        "its first start (data folder/tls/, self-signed, RSA 2048, 10 years) and shows its fingerprint.",
    ),
    Setting("tls_private_key", "", "The private key (PEM) of `tls_certificate`."),
    Setting(
        "dicom_workers",
        2,
        "DICOM worker processes sharing the port, each receiving on its own core (0: in the main process).",
    ),
    Setting(
        "called_aet_check",
        "any",
        "Which called AE title a peer may use: any (as Orthanc and DCMTK's storescp by default: a modality set up "
        "with another title still gets in) or own (only Lightbox's `aet`, case-insensitively; others get "
        "A-ASSOCIATE-RJ: called AE title not recognized).",
        choices=("any", "own"),
    ),
    Setting("max_associations", 16, "Concurrent DICOM associations; more are rejected (transient)."),
    Setting(
        "max_associations_per_address",
        0,
        "Concurrent DICOM associations from one peer address (0: half of max_associations), "
        "so that one address cannot shut every modality out.",
    ),
    Setting("network_timeout", 60, "Seconds within which a whole DICOM PDU must arrive once it has begun."),
    Setting("idle_timeout", 30, "Seconds a DICOM association may stay silent between PDUs before it is closed."),
    Setting(
        "associate_timeout",
        10,
        "Seconds from a DICOM connection to its whole A-ASSOCIATE-RQ; silent connections take no association slot. "
        "Also how long a refused or aborted connection is left for the peer to close (PS3.8's ARTIM timer).",
    ),
    Setting(
        "max_pending_connections",
        64,
        "DICOM connections per worker process waiting for their A-ASSOCIATE-RQ, or refused and waiting for the "
        "peer to close; beyond it the oldest of the busiest address is dropped.",
    ),
    Setting("max_pdu", 1048576, "Largest PDU Lightbox offers to receive, in bytes."),
    Setting("max_instance_mb", 4096, "Largest single instance accepted, in MB; larger ones are refused."),
    Setting("min_free_mb", 200, "Free disk space kept in reserve; below it new instances are refused (0xA700)."),
    Setting(
        "dicomweb_max_stow_mb",
        10240,
        "Largest STOW-RS request body, in MB (buffered in the data folder's spool while it arrives, never in "
        "memory); a larger one is refused with 413 before it is read.",
    ),
    Setting("stable_age", 60, "Seconds after its last instance that a study becomes stable."),
    Setting(
        "duplicate_policy",
        "keep-first",
        "Same SOP Instance UID with different bytes: keep the first copy or replace it.",
        choices=("keep-first", "replace"),
    ),
    Setting(
        "query_retrieve_from",
        "known-nodes",
        "Who may query and retrieve (C-FIND, C-MOVE, C-GET): only nodes added with `lightbox node add`, "
        "each for its allowed operations, or any AE. C-MOVE destinations must always be known nodes.",
        choices=("known-nodes", "any"),
    ),
    Setting(
        "commitment_requires_backup",
        False,
        "Storage commitment: commit an instance only once it is also in the off-site backup and that "
        "copy was downloaded, decrypted and found equal (see `lightbox backup`); until then it is reported "
        "failed (0110). Off: stored, indexed and its file's hash verified is enough.",
    ),
    Setting(
        "device_policy",
        "learning",
        "Which devices may associate: learning admits any device and records it; locked admits only "
        "approved devices (`lightbox device approve`) and known nodes, and refuses the others "
        "(A-ASSOCIATE-RJ: calling AE title not recognized), recording them as refused. The initial value: "
        "once an admin chooses on the Devices page, that choice holds (at once, and across restarts).",
        choices=("learning", "locked"),
    ),
    Setting(
        "max_learned_devices",
        200,
        "Most devices the learned-device table keeps. When full, the least recently seen device that never "
        "stored an image and no admin touched gives way to a newcomer; such devices also expire after 30 days.",
    ),
    Setting("find_fold_names", True, "C-FIND matches person names case- and accent-insensitively."),
    Setting(
        "find_max_results",
        10000,
        "Most matches one C-FIND may return; a query matching more is refused (0xA700, out of resources). 0: no cap.",
    ),
    Setting(
        "worklist_keep_days",
        1,
        "Modality Worklist: a scheduled item whose start date is more than this many days before today leaves the "
        "worklist modalities see (the Schedule page still lists it under an earlier `since` date: "
        "`/api/worklist?since=YYYYMMDD`).",
    ),
    Setting(
        "worklist_keep_done",
        False,
        "Modality Worklist: completed, discontinued and cancelled items stay on the worklist modalities see.",
    ),
    Setting(
        "hl7_port",
        0,
        "Port of the HL7 v2 (MLLP) listener that takes orders (ORM^O01, OMI^O23) and patient updates (ADT^A08) "
        "from a RIS/HIS into the worklist; 0: off. 2575 is MLLP's registered port.",
    ),
    Setting(
        "hl7_allowed_addresses",
        "",
        "Addresses or networks (CIDR, comma-separated, e.g. `192.168.1.20, 10.0.5.0/24`) that may send HL7 "
        "messages; a connection from any other is closed unanswered. Empty: none may (name the RIS to let it in).",
    ),
    Setting(
        "dicomweb_cors_origins",
        "",
        "Other web origins (comma-separated, e.g. `https://viewer.example.org`) whose pages may use /dicom-web/ "
        "(CORS, with HTTP Basic; never the session cookie); empty: same origin only.",
    ),
    Setting(
        "audit_retention_days",
        2190,
        "Days the audit trail keeps an event (2190: six years, as HIPAA asks of such records); 0: for ever. "
        "An event not yet sent to the syslog collector is kept.",
    ),
    Setting(
        "audit_syslog",
        "",
        "The clinic's audit collector: udp://HOST[:514], tcp://HOST[:601] or tls://HOST[:6514]; every audit event "
        "goes there as a DICOM audit message (PS3.15 A.5) in RFC 5424 syslog. Empty: the events stay on the box.",
    ),
    Setting(
        "audit_syslog_ca",
        "",
        "For tls://: the CA certificate(s) (PEM) the collector's certificate must chain to; empty: the system's CAs.",
    ),
    Setting(
        "audit_syslog_cert", "", "For tls://: Lightbox's client certificate (PEM), when the collector asks for one."
    ),
    Setting("audit_syslog_key", "", "For tls://: the client certificate's private key (PEM)."),
    Setting("session_idle_timeout", 1800, "Seconds without a request after which a web session ends."),
    Setting("session_max_age", 43200, "Seconds after login after which a web session ends, however busy."),
    Setting("share_days", 7, "Days a new share link stays valid unless its maker chooses otherwise."),
    Setting("share_max_days", 90, "The longest a share link can be made valid for, in days."),
    Setting(
        "setup_code_file",
        "",
        "File that keeps the first-run setup code (mode 0600) until the first administrator exists, so the "
        "code stays the same across restarts; it is removed when setup is done. The appliance image copies "
        "it to the SD card's boot partition and the console. Empty: a new code at each start, in the log only.",
    ),
    Setting(
        "imaging_max_decode_mb",
        1024,
        "Largest pixel data decoded for display, in MB (rows x columns x frames x samples x bytes, as declared); "
        "larger images are refused (HTTP 413).",
    ),
    Setting("thumbnail_size", 160, "Side of the square that series thumbnails fit in, in pixels."),
    Setting("thumbnail_cache_mb", 64, "Disk space for cached thumbnails (data folder/cache/thumbnails), in MB."),
    Setting(
        "video_ffmpeg",
        "/usr/bin/ffmpeg",
        "ffmpeg, which makes stored videos (MPEG-2, H.264, HEVC) playable in a browser; ffprobe must be beside it. "
        "Without it the web UI says that video playback needs ffmpeg.",
    ),
    Setting(
        "attach_max_mb",
        1024,
        "Largest file attached to a study (PDF, photo, video) from the study page or the API, in MB; a larger "
        "upload is refused with 413 before it is read.",
    ),
    Setting(
        "video_cache_mb",
        1024,
        "Disk space for videos made playable (data folder/cache/videos: MP4 copies, first frames), in MB; "
        "the least recently played go first.",
    ),
    Setting(
        "video_transcodes",
        1,
        "Videos transcoded to H.264 at once (MPEG-2 and the like; each keeps a core busy and takes ~190 MB at 1080p). "
        "0: none (those videos then cannot be played in the browser; they stay in the series ZIP).",
    ),
    Setting("video_timeout", 1800, "Seconds one video may take to be made playable before ffmpeg is stopped."),
    Setting(
        "forward_retry_initial",
        30,
        "Seconds before a failed forward is tried again; the wait doubles after each failure, up to an hour.",
    ),
    Setting(
        "discovery",
        True,
        "Announce Lightbox on the LAN (mDNS/DNS-SD: `_dicom._tcp` with its AE title, `_dicom-tls._tcp` for the DICOM "
        "TLS port, `_http._tcp` for the "
        "web UI, `_dicomweb._tcp` for DICOMweb) and keep a list of the DICOM services others announce.",
    ),
    Setting("mdns_hostname", "lightbox", "Host name announced over mDNS (with `.local` appended)."),
    Setting(
        "mdns_interfaces",
        "",
        "Network interfaces (names or IPv4 addresses, comma-separated) to announce and browse on; empty for all.",
    ),
    Setting("log_level", "info", "Log level.", choices=("debug", "info", "warning", "error")),
    Setting(
        "backup_schedule",
        "nightly",
        "When the service backs up (once `lightbox backup init` has set a bucket): nightly at `backup_time`, "
        "continuously once the archive has been quiet for `backup_delay` seconds, or only by `lightbox backup run`. "
        "A schedule saved on the web UI's Backup page wins over this, `backup_time` and `backup_delay`.",
        choices=("nightly", "continuous", "manual"),
    ),
    Setting(
        "backup_time",
        "02:00",
        "Time (HH:MM) of the nightly backup, in the clinic's time zone (chosen in the web UI; else the system's).",
    ),
    Setting("backup_delay", 300, "Continuous backup: seconds without new changes before a run starts."),
    Setting("backup_bandwidth_kbps", 0, "Upload limit of a backup run in KiB/s (0: unlimited)."),
    Setting("backup_concurrency", 4, "Objects a backup run uploads at once."),
    Setting(
        "backup_retention_days",
        30.0,
        "Days a deleted or replaced instance stays in the bucket before the backup deletes it there.",
    ),
    Setting(
        "superseded_keep_days",
        30.0,
        "Days the original files of a corrected patient identity stay on disk when no backup is set up "
        "(with a backup they stay until a backup run has them).",
    ),
    Setting(
        "backup_verify_days",
        7.0,
        "Days between scheduled verifications (a sample is downloaded, decrypted and checked; 0: never).",
    ),
    Setting("backup_verify_sample_pct", 1.0, "Share of the objects a scheduled verification checks, in percent."),
    Setting(
        "backup_checksums",
        "when_required",
        "Request checksums sent to the bucket: only where the S3 API requires them (suits S3 clones), or "
        "whenever supported (AWS S3 buckets with Object Lock default retention need this).",
        choices=("when_required", "when_supported"),
    ),
)

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


class ConfigError(ValueError):
    """A setting has a bad value or a file cannot be read."""


@dataclass
class Settings:
    values: dict[str, Any]
    config_file: Path | None = None

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def data_dir(self) -> Path:
        return Path(self.values["data"]).expanduser().resolve()


def load(
    flags: Mapping[str, Any] | None = None,
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve every setting: defaults < lightbox.toml < LIGHTBOX_* < flags.

    ``flags`` holds only the flags given on the command line (``None`` values are ignored).
    The file is ``config_file``, else ``$LIGHTBOX_CONFIG``; there is no implicit file.
    """
    environ = os.environ if environ is None else environ
    values = {s.name: s.default for s in SETTINGS}
    path = config_file or environ.get("LIGHTBOX_CONFIG")
    if path:
        values.update(_read_file(Path(path)))
    for setting in SETTINGS:
        if setting.env_var in environ:
            values[setting.name] = _parse(setting, environ[setting.env_var], setting.env_var)
    for name, raw in (flags or {}).items():
        if raw is not None and name in BY_NAME:
            values[name] = _parse(BY_NAME[name], raw, BY_NAME[name].flag)
    return Settings(values, Path(path) if path else None)


def _read_file(path: Path) -> dict[str, Any]:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    unknown = sorted(set(raw) - set(BY_NAME))
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s) {', '.join(unknown)}")
    return {name: _parse(BY_NAME[name], value, str(path)) for name, value in raw.items()}


def _parse(setting: Setting, raw: Any, origin: str) -> Any:
    try:
        return setting.parse(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{origin}: {exc}") from exc


def effective(settings: Settings) -> list[dict[str, Any]]:
    """Every setting with its value in force, for an admin to read (none of them is secret:
    credentials live in their own files, e.g. backup/target.json)."""
    return [
        {
            "name": s.name,
            "value": settings.values[s.name],
            "default": s.default,
            "help": s.help,
            "choices": list(s.choices),
        }
        for s in SETTINGS
    ]


def markdown_table() -> str:
    """The settings as the Markdown table shown in README.md (a test keeps them equal)."""
    rows = ["| setting | flag | environment | default | meaning |", "|---|---|---|---|---|"]
    for s in SETTINGS:
        default = f"`{s.default}`"
        meaning = s.help + (f" One of: {', '.join(s.choices)}." if s.choices else "")
        rows.append(f"| `{s.name}` | `{s.flag}` | `{s.env_var}` | {default} | {meaning} |")
    return "\n".join(rows)
