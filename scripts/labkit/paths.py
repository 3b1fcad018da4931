"""Where the lab lives. The Asterisk root is cached outside the work tree and reused by clones."""
from __future__ import annotations

import os
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
LAB_HOME = Path(os.environ.get("CASELINE_LAB_HOME", Path.home() / ".cache" / "caseline"))
ROOT = LAB_HOME / "asterisk-root"
READY_MARK = ROOT / ".caseline-root-ready"
SECRETS = LAB_HOME / "lab.env"  # generated passwords, never in the repo
ASTERISK_OUT = LAB_HOME / "asterisk.out"
PIDFILE = LAB_HOME / "asterisk.pid"
DIGEST = LAB_HOME / "installed-config.sha256"

CONFIG_DIRS = (PROJECT / "config" / "asterisk", PROJECT / "dialplan")

ARI_URL = "http://127.0.0.1:8088"
AMI_PORT = 5038
SIP_PORT = 5060
