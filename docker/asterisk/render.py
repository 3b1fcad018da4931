"""The docker Asterisk's entrypoint: install the project's config the lab's way, then exec.

    python3 render.py [--etc DIR] [COMMAND ...]

1. Every file the lab installs (labkit.root.config_sources(): config/asterisk/*.conf and
   dialplan/*.conf, mounted read-only) is rendered by the lab's own renderer
   (labkit.root.render: CHANGE_ME_<NAME> <- CASELINE_<NAME>). The values come from the
   environment (docker/.env through compose) instead of the lab's generated secrets file;
   only the names whose placeholder some file uses are required, and they are checked
   (set, not a placeholder, long enough, nothing that ends an Asterisk config value).
2. The overlay docker/asterisk/pjsip_softphones.conf is rendered the same way and installed
   next to them (pjsip.conf ends with `#tryinclude "pjsip_softphones.conf"`).
3. pjsip.conf loses the lab's SIPp wiring for each phone the overlay makes registrable
   (every `[name](+type=aor)` there): the AOR's static `contact` line and the phone's
   identify-by-address section. Asterisk config can append to a section but not remove a
   line, and a second section of the same name and type makes res_pjsip refuse the file,
   so this is the one place where the docker config differs from the lab's by subtraction.
4. Where the stack listens (docker/.env, not secrets; SETTINGS below): the lines of the lab's
   files that name an address or a port range are replaced, each exactly as the lab has it
   (substitutions()), and `${CASELINE_...}` in the overlay is filled in. With the defaults the
   lab's lines stay as they are. One more line differs: a phone's call to an outside number
   rings the `client` softphone's registered contact, with the number as its caller ID
   (the lab dials `PJSIP/<number>@trunk`, whose request URI a softphone registered as
   `client` answers with 404).
5. asterisk.conf comes from Debian's samples, as in the lab; stale *.conf files go.
6. With a COMMAND (compose passes `asterisk -f -n`: the lab's flags, minus the lab's
   `-U root -G root`, since the image runs as the `asterisk` user), exec it.
   Without one, only render: `docker compose exec asterisk python3 ... render.py` followed
   by `asterisk -rx "dialplan reload"` applies edited files without a restart.

Standard library only: the image has python3 and nothing else of ours.
"""
from __future__ import annotations

import argparse
import ipaddress
import os
import re
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]  # the repository, or /opt/caseline in the image
sys.path.insert(0, str(PROJECT / "scripts"))

# The lab's renderer: one renderer for the lab and docker.
from labkit import root  # noqa: E402

OVERLAY = Path(__file__).resolve().with_name("pjsip_softphones.conf")
DEBIAN_SAMPLES = Path("/etc/asterisk.debian")
MIN_PASSWORD = 12
# Asterisk config values end at ';' and at the line end; voicemail.conf splits on ','.
_PASSWORD_RE = re.compile(r"[A-Za-z0-9_.~+=@%:/-]+", re.ASCII)
_PIN_RE = re.compile(r"[0-9]{4,12}", re.ASCII)
# Where the stack listens (docker/.env through compose; the defaults are a user's).
SETTINGS = {
    "CASELINE_BIND_IP": "127.0.0.1",  # loopback: SIP 5060, ARI/HTTP, AMI, the FastAGI URL
                                      # (and, in compose, Caseline's ops API and Redis)
    "CASELINE_SOFTPHONE_IP": "0.0.0.0",  # SIP 5062 for the softphones (the LAN)
    "CASELINE_RTP_PORTS": "20000-23999",  # RTP, on every address
}
# The trunk's Dial in [internal] (dialplan/extensions.conf): with SIPp the trunk's contact
# answers any number; a softphone registered as `client` knows only its own account.
LAB_OUTSIDE_DIAL = " same => n,Dial(PJSIP/${FILTER(+0-9,${EXTEN})}@trunk,30)"
SOFTPHONE_OUTSIDE_DIAL = " same => n,Dial(PJSIP/client,30,f(${CALLERID(num)} <${FILTER(+0-9,${EXTEN})}>))"
_SETTING_RE = re.compile(r"\$\{(CASELINE_[A-Z_]+)\}")
_HEADER_RE = re.compile(r"\s*\[([^\]]+)\](?:\(([^)]*)\))?\s*(?:;.*)?")
_OPTION_RE = re.compile(r"\s*([A-Za-z0-9_]+)\s*=>?\s*(.*?)\s*(?:;.*)?")


class RenderError(RuntimeError):
    """The config cannot be installed (a missing secret, a changed pjsip.conf)."""


def placeholder_names(texts: list[str]) -> list[str]:
    """The lab's secret names (labkit.root.SECRET_NAMES) whose placeholder these texts use."""
    return [name for name in root.SECRET_NAMES
            if any(f"CHANGE_ME_{name.removeprefix('CASELINE_')}" in text for text in texts)]


def secret_values(env: Mapping[str, str], names: list[str]) -> dict[str, str]:
    """`names` from the environment (docker/.env through compose), checked."""
    values: dict[str, str] = {}
    problems: list[str] = []
    for name in names:
        value = env.get(name, "")
        if not value:
            problems.append(f"{name} is not set")
        elif value.startswith("CHANGE_ME"):
            problems.append(f"{name} is still the placeholder from .env.example")
        elif name.endswith("_PIN"):
            if not _PIN_RE.fullmatch(value):
                problems.append(f"{name} must be 4-12 digits")
        elif len(value) < MIN_PASSWORD or not _PASSWORD_RE.fullmatch(value):
            problems.append(f"{name} must be at least {MIN_PASSWORD} characters of "
                            "letters, digits and _.~+=@%:/- (no spaces, ';', ',' or quotes)")
        values[name] = value
    if problems:
        raise RenderError("docker/.env: " + "; ".join(problems)
                          + " (sh docker/new-env writes a docker/.env with fresh values)")
    return values


def settings(env: Mapping[str, str]) -> dict[str, str]:
    """SETTINGS from the environment (unset or empty: the default), checked."""
    values = {name: env.get(name) or default for name, default in SETTINGS.items()}
    problems = []
    for name in ("CASELINE_BIND_IP", "CASELINE_SOFTPHONE_IP"):
        try:
            address = ipaddress.IPv4Address(values[name])
        except ValueError:
            problems.append(f"{name} must be an IPv4 address, not {values[name]!r}")
            continue
        if name == "CASELINE_BIND_IP" and not address.is_loopback:
            # ARI, AMI, FastAGI, the ops API and a Redis without a password: the host's alone
            problems.append(f"CASELINE_BIND_IP must be a loopback address (127.x.x.x), not {address}")
    ports = re.fullmatch(r"([0-9]{4,5})-([0-9]{4,5})", values["CASELINE_RTP_PORTS"])
    if not ports or not 1024 <= int(ports.group(1)) < int(ports.group(2)) <= 65535:
        problems.append("CASELINE_RTP_PORTS must be FIRST-LAST, from 1024 to 65535 "
                        f"(e.g. {SETTINGS['CASELINE_RTP_PORTS']})")
    if problems:
        raise RenderError("docker/.env: " + "; ".join(problems))
    return values


def substitutions(values: Mapping[str, str]) -> dict[str, list[tuple[str, str]]]:
    """file -> (the lab's line, docker's line(s)); every lab line must be there exactly once."""
    ip = values["CASELINE_BIND_IP"]
    first, last = values["CASELINE_RTP_PORTS"].split("-")
    permit = "permit = 127.0.0.1/255.255.255.255"
    return {
        "pjsip.conf": [("bind = 127.0.0.1:5060", f"bind = {ip}:5060")],
        "http.conf": [("bindaddr = 127.0.0.1", f"bindaddr = {ip}")],
        # Caseline connects from the host's network: to another loopback address, from
        # 127.0.0.1 (the route's preferred source), or else from that address
        "manager.conf": [("bindaddr = 127.0.0.1", f"bindaddr = {ip}"),
                         (permit, permit if ip == "127.0.0.1" else f"{permit}\npermit = {ip}/255.255.255.255")],
        "rtp.conf": [("rtpstart = 20000", f"rtpstart = {first}"), ("rtpend = 23999", f"rtpend = {last}")],
        "caseline-agi.conf": [(" same => n,Set(CASELINE_AGI_URL=agi://127.0.0.1:4573)",
                               f" same => n,Set(CASELINE_AGI_URL=agi://{ip}:4573)")],
        "extensions.conf": [(LAB_OUTSIDE_DIAL, SOFTPHONE_OUTSIDE_DIAL)],
    }


def substitute(name: str, text: str, changes: list[tuple[str, str]]) -> str:
    lines = text.split("\n")
    for old, new in changes:
        where = [i for i, line in enumerate(lines) if line == old]
        if len(where) != 1:
            raise RenderError(f"{name}: expected the line {old!r} once, found it {len(where)} times: "
                              "update substitutions() in docker/asterisk/render.py")
        lines[where[0]] = new
    return "\n".join(lines)


def fill_settings(text: str, values: Mapping[str, str]) -> str:
    """`${CASELINE_...}` of the overlay, filled in; an unknown name is an error."""
    unknown = sorted({m.group(1) for m in _SETTING_RE.finditer(text)} - set(values))
    if unknown:
        raise RenderError(f"{OVERLAY.name}: no setting named {', '.join(unknown)}")
    return _SETTING_RE.sub(lambda m: values[m.group(1)], text)


def _sections(text: str) -> list[tuple[str | None, str, list[str]]]:
    """(name, parenthesised options, lines) per section; the part before any header is None."""
    out: list[tuple[str | None, str, list[str]]] = [(None, "", [])]
    for line in text.splitlines(keepends=True):
        header = _HEADER_RE.fullmatch(line.rstrip("\n"))
        if header:
            out.append((header.group(1).strip(), header.group(2) or "", [line]))
        else:
            out[-1][2].append(line)
    return out


def _options(lines: list[str]) -> list[tuple[str, str]]:
    pairs = []
    for line in lines:
        if line.lstrip().startswith((";", "#", "[")):
            continue
        match = _OPTION_RE.fullmatch(line.rstrip("\n"))
        if match:
            pairs.append((match.group(1).lower(), match.group(2)))
    return pairs


def _is_option(line: str, key: str) -> bool:
    match = _OPTION_RE.fullmatch(line.rstrip("\n"))
    return bool(match) and not line.lstrip().startswith((";", "#")) and match.group(1).lower() == key


def registrable_aors(overlay_text: str) -> list[str]:
    """The AORs the overlay turns into softphone registrations: its `[name](+type=aor)`."""
    return [name for name, opts, _ in _sections(overlay_text)
            if name and opts.replace(" ", "") == "+type=aor"]


def without_lab_wiring(pjsip_text: str, phones: list[str]) -> str:
    """pjsip.conf without the static contacts and identify sections of `phones`.

    Comments and #include lines stay; every other line is kept byte for byte.
    """
    out: list[str] = []
    found: set[str] = set()
    for name, _, lines in _sections(pjsip_text):
        options = dict(_options(lines))
        kind = options.get("type")
        if name in phones and kind == "aor":
            found.add(name)
            lines = [line for line in lines if not _is_option(line, "contact")]
        elif kind == "identify" and options.get("endpoint") in phones:
            lines = [line for line in lines if line.lstrip().startswith((";", "#")) or not line.strip()]
        out.extend(lines)
    missing = sorted(set(phones) - found)
    if missing:
        raise RenderError(f"pjsip.conf has no AOR section for {', '.join(missing)}, which "
                          "pjsip_softphones.conf extends: update the overlay")
    return "".join(out)


def rendered_files(env: Mapping[str, str]) -> dict[str, str]:
    """Every file the docker Asterisk gets in etc/asterisk (asterisk.conf aside)."""
    sources = [*root.config_sources(), OVERLAY]
    names = [src.name for src in sources]
    if names.count(OVERLAY.name) > 1:
        raise RenderError(f"{OVERLAY.name} must not be shipped in config/asterisk or dialplan: "
                          "the lab would load the softphone accounts too")
    values = secret_values(env, placeholder_names([src.read_text() for src in sources]))
    where = settings(env)
    files = {src.name: root.render(src, values) for src in sources}
    files[OVERLAY.name] = fill_settings(files[OVERLAY.name], where)
    files["pjsip.conf"] = without_lab_wiring(files["pjsip.conf"], registrable_aors(files[OVERLAY.name]))
    for name, changes in substitutions(where).items():
        files[name] = substitute(name, files[name], changes)
    leftovers = sorted(name for name, text in files.items() if "CHANGE_ME_" in text)
    if leftovers:
        raise RenderError(f"placeholders nobody fills in: {', '.join(leftovers)}")
    return files


def install(etc: Path, files: Mapping[str, str], samples: Path = DEBIAN_SAMPLES) -> None:
    etc.mkdir(parents=True, exist_ok=True)
    for stale in etc.glob("*.conf"):
        if stale.name not in files and stale.name != "asterisk.conf":
            stale.unlink()
    if (samples / "asterisk.conf").exists():
        shutil.copy(samples / "asterisk.conf", etc / "asterisk.conf")
    for name, text in sorted(files.items()):
        target = etc / name
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(target, 0o600)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--etc", type=Path, default=Path("/etc/asterisk"))
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    try:
        files = rendered_files(os.environ)
    except RenderError as e:
        print(f"caseline-asterisk: {e}", file=sys.stderr)
        return 2
    install(args.etc, files)
    print(f"caseline-asterisk: installed {len(files)} files into {args.etc}", file=sys.stderr)
    if args.command:
        sys.stdout.flush()
        os.execvp(args.command[0], args.command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
