"""docker/asterisk/render.py: the lab's files, the lab's renderer, plus the softphone overlay.

Checked here without Asterisk: what the overlay appends to exists, nothing is defined twice
(res_pjsip refuses a file with a duplicate object), the only lines taken out of pjsip.conf
are the lab's SIPp wiring of the phones, every person Caseline dials is a softphone with a
password, and the client's dialplan context is there and harmless in the lab.
"""
from __future__ import annotations

import difflib
import re
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from labkit import root

from ari_app.ops.dialplan_check import check_dialplan

from tests.support.docker import OVERLAY, PROJECT, TEST_ENV, conf_sections

PHONES = ["mgr1", "mgr2", "mgr3", "op1", "op2", "sup1"]
DIALPLAN = PROJECT / "dialplan"


@pytest.fixture(scope="module")
def files(render: ModuleType) -> dict[str, str]:
    return render.rendered_files(TEST_ENV)


def pjsip_objects(text: str) -> dict[tuple[str, str], dict[str, list[str]]]:
    """(name, type) -> options of each object, as Asterisk reads it: templates inherited,
    `[name](+type=T)` appended to the object `name` of type T."""
    templates: dict[str, dict[str, list[str]]] = {}
    objects: dict[tuple[str, str], dict[str, list[str]]] = {}
    for name, opts, options in conf_sections(text):
        parents = [p.strip() for p in opts.split(",") if p.strip()]
        if parents and parents[0].startswith("+"):
            kind = re.fullmatch(r"\+type=(\w+)", parents[0])
            assert kind and (name, kind.group(1)) in objects, f"[{name}]({opts}): nothing to append to"
            for key, values in options.items():
                objects[(name, kind.group(1))].setdefault(key, []).extend(values)
            continue
        merged: dict[str, list[str]] = {}
        for parent in parents:
            if parent != "!":
                for key, values in templates[parent].items():
                    merged.setdefault(key, []).extend(values)
        for key, values in options.items():
            merged.setdefault(key, []).extend(values)
        templates[name] = merged
        if "!" not in parents and "type" in merged:
            key = (name, merged["type"][-1])
            assert key not in objects, f"{name} ({key[1]}) defined twice: res_pjsip refuses the file"
            objects[key] = merged
    return objects


def test_the_overlay_only_appends_to_what_pjsip_conf_defines(files: dict[str, str]) -> None:
    shipped = pjsip_objects(files["pjsip.conf"])
    combined = pjsip_objects(files["pjsip.conf"] + "\n" + files[OVERLAY.name])  # what Asterisk reads
    assert set(shipped) <= set(combined)
    assert set(combined) - set(shipped) == {
        ("transport-softphones", "transport"), ("client", "endpoint"), ("client", "aor"),
        *((f"{p}-auth", "auth") for p in [*PHONES, "client"])}
    appends = [(name, opts) for name, opts, _ in conf_sections(files[OVERLAY.name]) if opts.startswith("+")]
    assert appends and all(opts in ("+type=endpoint", "+type=aor") for _, opts in appends)


def test_pjsip_conf_loses_only_the_labs_sipp_wiring(files: dict[str, str], render: ModuleType) -> None:
    lab = root.render(PROJECT / "config/asterisk/pjsip.conf", TEST_ENV).splitlines()
    docker = files["pjsip.conf"].splitlines()
    removed, i = [], 0
    for line in lab:  # docker's lines are the lab's, in order, with some left out
        if i < len(docker) and docker[i] == line:
            i += 1
        else:
            removed.append(line.strip())
    assert i == len(docker), "pjsip.conf gained or changed a line"
    assert render.registrable_aors(files[OVERLAY.name]) == PHONES
    expected = set()
    for name, _, options in conf_sections("\n".join(lab)):
        if name in PHONES and options.get("type") == ["aor"]:
            expected |= {f"contact = {c}" for c in options["contact"]}
        if options.get("type") == ["identify"] and options.get("endpoint", [""])[0] in PHONES:
            expected |= {f"[{name}]", *(f"{k} = {v[0]}" for k, v in options.items())}
    assert set(removed) - {""} == expected
    assert "contact = sip:127.0.0.2:5300" in files["pjsip.conf"], "the trunk stays as shipped"
    assert '#tryinclude "pjsip_softphones.conf"' in files["pjsip.conf"]


def test_every_person_caseline_dials_is_a_registrable_softphone(files: dict[str, str]) -> None:
    objects = pjsip_objects(files["pjsip.conf"] + "\n" + files[OVERLAY.name])
    auths = {name: o for (name, kind), o in objects.items() if kind == "auth"}
    appended = {(name, opts) for name, opts, _ in conf_sections(files[OVERLAY.name])}
    routing = yaml.safe_load((PROJECT / "config/routing.yaml").read_text())
    dialled = {person["endpoint"] for group in routing["people"].values() for person in group.values()}
    queued = set(re.findall(r"^member\s*=>\s*([^,\s]+)", files["queues.conf"], re.MULTILINE))
    assert dialled | queued == {f"PJSIP/{p}" for p in PHONES}
    for phone in [*PHONES, "client"]:
        aor = objects[(phone, "aor")]
        assert "contact" not in aor, f"{phone}: a static contact would take its calls"
        assert aor["max_contacts"][-1] == "1" and aor["remove_existing"][-1] == "yes"
        if phone in PHONES:
            assert (phone, "+type=endpoint") in appended and (phone, "+type=aor") in appended
        endpoint = objects[(phone, "endpoint")]
        auth = auths[endpoint["auth"][-1]]
        assert auth["username"] == [phone]
        assert auth["password"] == [TEST_ENV["CASELINE_PHONE_PASSWORD"]]
        assert endpoint["transport"][-1] == "transport-softphones"
        assert endpoint["aors"][-1] == phone
    transport = objects[("transport-softphones", "transport")]
    assert transport["bind"] == ["0.0.0.0:5062"]
    shipped_transport = objects[("transport-udp", "transport")]
    assert shipped_transport["bind"] == ["127.0.0.1:5060"], "the lab's transport is untouched"


def test_the_client_dials_into_both_routes(files: dict[str, str]) -> None:
    objects = pjsip_objects(files["pjsip.conf"] + "\n" + files[OVERLAY.name])
    client = objects[("client", "endpoint")]
    # Managers' calls to outside numbers (the trunk) ring the client softphone.
    assert objects[("trunk", "endpoint")]["aors"][-1] == "client"
    context = client["context"][-1]
    dialplan = (DIALPLAN / "softphone.conf").read_text()
    assert f"[{context}]" in dialplan
    body = dialplan.split(f"[{context}]", 1)[1]
    blocks: dict[str, list[str]] = {}  # extension pattern -> its applications, in order
    for line in body.splitlines():
        if match := re.match(r"exten => ([^,]+),1,(.*)$", line):
            current = blocks.setdefault(match.group(1), [match.group(2)])
        elif match := re.match(r"\s*same => n,(.*)$", line):
            current.append(match.group(1))
    assert blocks == {
        "_*[+0-9].": ["Set(CALLERID(num)=${FILTER(+0-9,${EXTEN:1})})", "Set(CALLERID(name)=)",
                      "Goto(caseline-route,s,1)"],
        "_**[+0-9].": ["Set(CALLERID(num)=${FILTER(+0-9,${EXTEN:2})})", "Set(CALLERID(name)=)",
                       "Goto(caseline-agi,s,1)"],
    }
    # The lab loads dialplan/*.conf too: no lab endpoint enters this context.
    lab_contexts = {o.get("context", [""])[-1] for o in pjsip_objects(files["pjsip.conf"]).values()}
    assert context not in lab_contexts


def test_the_dialplan_folder_passes_the_check_and_includes_the_softphone_context() -> None:
    folder = {p.name: p.read_bytes() for p in DIALPLAN.glob("*.conf")}
    assert check_dialplan(folder) == []
    includes = re.findall(r'^#include\s+"([^"]+)"', folder["extensions.conf"].decode(), re.MULTILINE)
    assert "softphone.conf" in includes, 'add #include "softphone.conf" to dialplan/extensions.conf'


def test_render_requires_every_used_secret(render: ModuleType) -> None:
    with pytest.raises(render.RenderError, match="CASELINE_PHONE_PASSWORD is not set"):
        render.rendered_files({k: v for k, v in TEST_ENV.items() if k != "CASELINE_PHONE_PASSWORD"})
    placeholders = {k: f"CHANGE_ME_{k.removeprefix('CASELINE_')}" for k in TEST_ENV}
    with pytest.raises(render.RenderError, match="still the placeholder"):
        render.rendered_files(placeholders)
    for bad in ("short", "has;semicolon-1234", "has space 123456", 'quote"12345678'):
        with pytest.raises(render.RenderError, match="CASELINE_ARI_PASSWORD must be"):
            render.rendered_files({**TEST_ENV, "CASELINE_ARI_PASSWORD": bad})
    with pytest.raises(render.RenderError, match="PIN must be"):
        render.rendered_files({**TEST_ENV, "CASELINE_VOICEMAIL_PIN": "12ab"})
    # Asterisk's files use no ops token: the Asterisk container does not get it.
    without_ops = {k: v for k, v in TEST_ENV.items() if k != "CASELINE_OPS_TOKEN"}
    assert render.rendered_files(without_ops)


def changed_lines(lab: str, docker: str) -> list[tuple[str, str]]:
    """(the lab's line, what docker has instead) for each line that differs: one line, or
    lines joined with newlines where docker adds some (nothing of the lab's goes)."""
    out = []
    a, b = lab.splitlines(), docker.splitlines()
    for op, a1, a2, b1, b2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "replace" and a2 - a1 == b2 - b1:  # line for line
            out.extend(zip(a[a1:a2], b[b1:b2], strict=True))
        elif op == "replace":
            assert a2 - a1 == 1, (a[a1:a2], b[b1:b2])
            out.append((a[a1], "\n".join(b[b1:b2])))
        elif op == "insert":
            out.append((a[a1 - 1], "\n".join([a[a1 - 1], *b[b1:b2]])))
        else:
            assert op == "equal", (op, a[a1:a2])
    return out


def test_rendered_files_are_the_labs_plus_the_overlay(files: dict[str, str], render: ModuleType) -> None:
    lab = {p.name: root.render(p, TEST_ENV) for p in root.config_sources()}
    assert set(files) == set(lab) | {OVERLAY.name}
    differ = {n for n in lab if files[n] != lab[n]}
    assert differ == {"pjsip.conf", "extensions.conf"}, "with the default addresses, the lab's lines"
    # The one line more: a phone's call to an outside number rings the client softphone's
    # registered contact (a softphone registered as `client` answers sip:<number>@ with 404),
    # with the number, and who dialled it, as the caller ID.
    assert changed_lines(lab["extensions.conf"], files["extensions.conf"]) == [
        (" same => n,Dial(PJSIP/${FILTER(+0-9,${EXTEN})}@trunk,30)",
         " same => n,Dial(PJSIP/client,30,f(${CALLERID(num)} <${FILTER(+0-9,${EXTEN})}>))")]
    internal = files["extensions.conf"].split("\n[internal]\n", 1)[1].split("\n[", 1)[0]
    assert render.SOFTPHONE_OUTSIDE_DIAL in internal and "caseline-outbound" in internal, \
        "still in [internal], still an outbound call Caseline learns (dcontext, dst, userfield)"
    assert not any("CHANGE_ME_" in text for text in files.values())
    assert "${CASELINE_" not in files[OVERLAY.name], "the overlay's settings are filled in"
    assert TEST_ENV["CASELINE_ARI_PASSWORD"] in files["ari.conf"]


STACK = {"CASELINE_BIND_IP": "127.0.5.1", "CASELINE_SOFTPHONE_IP": "127.0.5.1",
         "CASELINE_RTP_PORTS": "26000-26999"}


def test_the_addresses_come_from_the_env_and_change_only_those_lines(files: dict[str, str],
                                                                      render: ModuleType) -> None:
    """tests/docker/test_stack.py runs beside the lab: every address of the lab's files that
    docker binds or connects to, and the RTP range, come from docker/.env."""
    moved = render.rendered_files({**TEST_ENV, **STACK})
    changes = {name: changed_lines(files[name], moved[name]) for name in files if files[name] != moved[name]}
    assert changes == {
        "pjsip.conf": [("bind = 127.0.0.1:5060", "bind = 127.0.5.1:5060")],
        "http.conf": [("bindaddr = 127.0.0.1", "bindaddr = 127.0.5.1")],
        "manager.conf": [("bindaddr = 127.0.0.1", "bindaddr = 127.0.5.1"),
                         ("permit = 127.0.0.1/255.255.255.255",
                          "permit = 127.0.0.1/255.255.255.255\npermit = 127.0.5.1/255.255.255.255")],
        "rtp.conf": [("rtpstart = 20000", "rtpstart = 26000"), ("rtpend = 23999", "rtpend = 26999")],
        "caseline-agi.conf": [(" same => n,Set(CASELINE_AGI_URL=agi://127.0.0.1:4573)",
                               " same => n,Set(CASELINE_AGI_URL=agi://127.0.5.1:4573)")],
        OVERLAY.name: [("bind = 0.0.0.0:5062", "bind = 127.0.5.1:5062")],
    }
    assert render.settings({}) == render.SETTINGS, "unset: the defaults, a user's"
    assert render.settings({"CASELINE_BIND_IP": ""}) == render.SETTINGS


@pytest.mark.parametrize(("name", "value", "problem"), [
    ("CASELINE_BIND_IP", "localhost", "CASELINE_BIND_IP must be an IPv4 address"),
    ("CASELINE_BIND_IP", "192.168.1.10", "CASELINE_BIND_IP must be a loopback address"),
    ("CASELINE_SOFTPHONE_IP", "0.0.0.0:5062", "CASELINE_SOFTPHONE_IP must be an IPv4 address"),
    ("CASELINE_RTP_PORTS", "20000", "CASELINE_RTP_PORTS must be FIRST-LAST"),
    ("CASELINE_RTP_PORTS", "30000-20000", "CASELINE_RTP_PORTS must be FIRST-LAST"),
    ("CASELINE_RTP_PORTS", "80-90", "CASELINE_RTP_PORTS must be FIRST-LAST"),
])
def test_a_bad_address_setting_is_refused(render: ModuleType, name: str, value: str, problem: str) -> None:
    with pytest.raises(render.RenderError, match=problem):
        render.rendered_files({**TEST_ENV, name: value})


def test_a_changed_lab_line_stops_the_render(render: ModuleType) -> None:
    """The lab's line each substitution replaces must be there once: were the lab's file
    changed, docker would otherwise silently keep listening on 127.0.0.1."""
    with pytest.raises(render.RenderError, match="http.conf: expected the line 'bindaddr = 127.0.0.1' once, found it 0"):
        render.substitute("http.conf", "bindaddr = 0.0.0.0\n", [("bindaddr = 127.0.0.1", "bindaddr = 127.0.5.1")])
    with pytest.raises(render.RenderError, match="found it 2 times"):
        render.substitute("x.conf", "a\na\n", [("a", "b")])
    with pytest.raises(render.RenderError, match="no setting named CASELINE_NOPE"):
        render.fill_settings("bind = ${CASELINE_NOPE}:5062", render.SETTINGS)


def test_main_installs_and_execs(render: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    samples = tmp_path / "asterisk.debian"
    samples.mkdir()
    (samples / "asterisk.conf").write_text("[directories]\n")
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "stale.conf").write_text("old")
    monkeypatch.setattr(render, "DEBIAN_SAMPLES", samples)
    for name, value in TEST_ENV.items():
        monkeypatch.setenv(name, value)
    execs: list[list[str]] = []
    monkeypatch.setattr(render.os, "execvp", lambda file, argv: execs.append(argv))
    install = render.install
    monkeypatch.setattr(render, "install", lambda etc_dir, files: install(etc_dir, files, samples))
    assert render.main(["--etc", str(etc), "asterisk", "-f", "-n"]) == 0
    assert execs == [["asterisk", "-f", "-n"]]
    assert not (etc / "stale.conf").exists()
    assert (etc / "asterisk.conf").read_text() == "[directories]\n"
    assert (etc / OVERLAY.name).stat().st_mode & 0o777 == 0o600
    assert render.main(["--etc", str(etc)]) == 0 and len(execs) == 1, "no command: render only"
    monkeypatch.setenv("CASELINE_AMI_SECRET", "CHANGE_ME_AMI_SECRET")
    assert render.main(["--etc", str(etc), "asterisk"]) == 2 and len(execs) == 1
