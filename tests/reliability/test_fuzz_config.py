"""Property-based fuzzing of config loading: routing.yaml, caseline.yaml, clients.yaml and
legal_entities.yaml.

Config files are written by ops staff by hand and reloaded live, so a typo must never take
the process down: any text, any bytes, any YAML structure gives either a valid model or a
ConfigError whose `file` names the file. Never another exception type. Deep nesting and
alias bombs ("billion laughs") are refused as ConfigError, fast.
"""
from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ari_app.config.files import MAX_CONFIG_BYTES, ConfigError
from ari_app.config.directories import load_legal_directory
from ari_app.crm.adapters.file import load_directory
from ari_app.config.policy import load_policy
from ari_app.config.settings import load_settings

from tests.support.hostile_inputs import FUZZ

CONFIG = Path(__file__).resolve().parents[2] / "config"
# Each example writes and parses a file (PyYAML's pure-Python safe loader, ~10 ms for the
# shipped routing.yaml): fewer examples per test, four files, five strategies.
FUZZ_FILES = settings(FUZZ, max_examples=150)


def _settings(path: Path) -> object:
    return load_settings(path.parent, env={})


# name -> (file name, loader taking the file's path)
LOADERS: dict[str, tuple[str, Callable[[Path], object]]] = {
    "routing": ("routing.yaml", load_policy),
    "caseline": ("caseline.yaml", _settings),
    "clients": ("clients.yaml", load_directory),
    "legal_entities": ("legal_entities.yaml", load_legal_directory),
}
SHIPPED = {name: yaml.safe_load((CONFIG / file).read_text()) for name, (file, _) in LOADERS.items()}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    # module-scoped: Hypothesis runs many examples per test, each rewrites the file
    yield tmp_path_factory.mktemp("config-fuzz")


def load(workdir: Path, name: str, data: bytes) -> object | ConfigError:
    """Write `data` as the named file and load it: the model, or the ConfigError raised."""
    file, loader = LOADERS[name]
    directory = workdir / name
    directory.mkdir(exist_ok=True)
    path = directory / file
    path.write_bytes(data)
    try:
        return loader(path)
    except ConfigError as e:
        assert e.file == str(path), f"ConfigError names {e.file!r}, not the file"
        assert str(e).startswith(str(path))
        return e
    # any other exception type fails the test with its own traceback


# -- strategies -----------------------------------------------------------------------------------

SCALARS = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
           | st.dates() | st.datetimes()
           | st.sampled_from(["", "holder", "queue:operators", "manager:mgr1", "PJSIP/mgr1", "09:00-19:00",
                              "23:00-06:00", "25:00-26:00", "Europe/Moscow", "Mars/Olympus", "A", "2h", "1d",
                              "-1d", "0", "1e309", "+79161234567", "8 916 123-45-67", "${SHELL(id)}", "../x",
                              "CHANGE_ME", "x" * 300]))
YAML_DATA = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                         | st.dictionaries(st.text(max_size=12) | st.sampled_from(
                             ["people", "managers", "endpoint", "queues", "rules", "target", "hours", "numbers",
                              "clients", "entities", "id", "prefixes", "crm", "http", "ari", "history"]),
                             inner, max_size=4), max_leaves=25)
TOKENS = st.sampled_from(["a", ":", ": ", "- ", "\n", "  ", "\t", "[", "]", "{", "}", ",", "&x ", "*x", "<<: *x",
                          "!!python/object/apply:os.system ['id']", "!!binary", "!!set", "? ", "|", ">", "'", '"',
                          "#", "---", "...", "%YAML 1.1\n", "2025-13-45", "2025-01-01 10:00:00+99:00",
                          "9" * 5000, "0x" + "f" * 100, ".nan", ".inf", "~", "\x00", "\ufeff", "\udcff", "é"])
YAML_SOUP = st.lists(TOKENS | st.text(max_size=5), max_size=60).map("".join)


def paths_of(data: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    out = [prefix]
    if isinstance(data, dict):
        for k, v in data.items():
            out += paths_of(v, (*prefix, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += paths_of(v, (*prefix, i))
    return out


@st.composite
def mutated(draw: st.DrawFn, name: str) -> object:
    """The shipped file with one to three values replaced, deleted or retyped."""
    data = copy.deepcopy(SHIPPED[name])
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths_of(data)))
        if not path:
            data = draw(YAML_DATA) if draw(st.integers(0, 9)) == 0 else data
            continue
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "replace", "delete", "wrap"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "wrap":
            parent[path[-1]] = [parent[path[-1]]]
        else:
            parent[path[-1]] = draw(YAML_DATA)
    return data


def dump(data: object) -> bytes:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False).encode("utf-8", "surrogatepass")


# -- the properties ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(LOADERS))
def test_shipped_files_load(workdir: Path, name: str) -> None:
    file, _ = LOADERS[name]
    assert not isinstance(load(workdir, name, (CONFIG / file).read_bytes()), ConfigError)


@pytest.mark.parametrize("name", list(LOADERS))
@FUZZ_FILES
@given(data=st.data())
def test_mutated_shipped_files_load_or_raise_config_error(workdir: Path, name: str, data: st.DataObject) -> None:
    load(workdir, name, dump(data.draw(mutated(name))))


@pytest.mark.parametrize("name", list(LOADERS))
@FUZZ_FILES
@given(data=YAML_DATA)
def test_arbitrary_structures_load_or_raise_config_error(workdir: Path, name: str, data: object) -> None:
    load(workdir, name, dump(data))


@pytest.mark.parametrize("name", list(LOADERS))
@FUZZ_FILES
@given(text=YAML_SOUP | st.text(max_size=300))
def test_arbitrary_text_loads_or_raises_config_error(workdir: Path, name: str, text: str) -> None:
    load(workdir, name, text.encode("utf-8", "surrogatepass"))


@pytest.mark.parametrize("name", list(LOADERS))
@FUZZ_FILES
@given(raw=st.binary(max_size=300))
def test_arbitrary_bytes_load_or_raise_config_error(workdir: Path, name: str, raw: bytes) -> None:
    load(workdir, name, raw)


# -- the hostile classics ------------------------------------------------------------------------------

BILLION_LAUGHS = (
    "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
    + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))
)
HOSTILE_FILES = {
    "billion_laughs": BILLION_LAUGHS,
    "alias_in_value": "company: &c {name: x, timezone: Europe/Moscow}\nother: *c\n",
    "merge_key": "base: &b {x: 1}\npeople:\n  <<: *b\n",
    "self_alias": "a: &a [*a]\n",
    "deep_flow_lists": "x: " + "[" * 10_000 + "]" * 10_000 + "\n",
    "deep_flow_maps": "x: " + "{a: " * 5_000 + "1" + "}" * 5_000 + "\n",
    "deep_block": "".join("  " * i + f"k{i}:\n" for i in range(2_000)) + "  " * 2_000 + "v\n",
    "deep_block_lists": "".join("  " * i + "-\n" for i in range(2_000)),
    "python_object": "x: !!python/object/apply:os.system ['touch /tmp/caseline-pwned']\n",
    "python_name": "x: !!python/name:os.system\n",
    "bad_date": "holidays: [2025-13-45]\nhours: {holidays: [2025-02-30]}\n",
    "bad_offset": "x: 2025-01-01 10:00:00+99:00\n",
    "huge_int": "x: " + "9" * 5000 + "\n",
    "huge_float": "x: 1e99999\n",
    "nan": "x: .nan\n",
    "binary": "x: !!binary '%%%not base64'\n",
    "unhashable_key": "? [a, b]\n: 1\n",
    "duplicate_keys": "x: 1\nx: 2\n",
    "bom": "\ufeffx: 1\n",
    "nul": "x: \x00\n",
    "tabs": "x:\n\t- 1\n",
    "only_comment": "# nothing\n",
    "empty": "",
    "document_stream": "x: 1\n---\ny: 2\n",
    "top_level_list": "- 1\n- 2\n",
    "top_level_scalar": "hello\n",
}


@pytest.mark.parametrize("name", list(LOADERS))
@pytest.mark.parametrize("text", HOSTILE_FILES.values(), ids=list(HOSTILE_FILES))
def test_hostile_yaml_is_a_config_error_and_fast(workdir: Path, name: str, text: str) -> None:
    started = time.perf_counter()
    result = load(workdir, name, text.encode())
    assert time.perf_counter() - started < 5.0
    if name == "caseline" and text.strip() in ("", "# nothing"):
        return  # an empty caseline.yaml means "all defaults"
    if name in ("clients", "legal_entities") and text.strip() in ("", "# nothing"):
        return  # an empty directory is a valid (empty) directory
    assert isinstance(result, ConfigError), f"{name}: accepted {text[:60]!r}"


def test_alias_bomb_is_refused_before_it_expands(workdir: Path) -> None:
    result = load(workdir, "routing", BILLION_LAUGHS.encode())
    assert isinstance(result, ConfigError) and "aliases are not allowed" in result.reason


def test_python_tags_never_run(workdir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = f"x: !!python/object/apply:os.system ['touch {marker}']\n"
    for name in LOADERS:
        assert isinstance(load(workdir, name, text.encode()), ConfigError)
    assert not marker.exists()


@pytest.mark.parametrize("name", list(LOADERS))
def test_oversized_unreadable_and_non_utf8_files(workdir: Path, name: str) -> None:
    assert isinstance(load(workdir, name, b"# " + b"x" * MAX_CONFIG_BYTES), ConfigError)
    assert isinstance(load(workdir, name, b"x: \xff\xfe\n"), ConfigError)
    file, loader = LOADERS[name]
    directory = workdir / f"{name}-dir"
    (directory / file).mkdir(parents=True, exist_ok=True)  # a directory where the file should be
    with pytest.raises(ConfigError) as error:
        loader(directory / file)
    assert error.value.file == str(directory / file)


def test_settings_from_a_hostile_environment_raise_config_error(workdir: Path) -> None:
    """Env overrides are validated like the file's; the error never echoes a value."""
    (workdir / "env").mkdir(exist_ok=True)
    for port in ("not-a-port", "99999999", "9" * 5000, "-1", "1.5", "0x10"):
        env = {"CASELINE_AMI_PORT": port}
        with pytest.raises(ConfigError) as error:
            load_settings(workdir / "env", env={**env, "CASELINE_ARI_PASSWORD": "pw-SECRET-1"})
        assert "pw-SECRET-1" not in str(error.value)
        assert port not in str(error.value)
