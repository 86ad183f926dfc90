"""Config: TOML + env overrides, validation messages that name source, key and problem."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from datatier.config import Config, load, split_host_port
from datatier.errors import ConfigError, ExitCode, UsageError
from datatier.typedtoml import Secret, dumps_toml, to_plain


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "datatier.toml"
    path.write_text(text)
    return path


def test_defaults_when_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    loaded = load(None, environ={})
    assert loaded.source == "built-in defaults"
    assert loaded.config == Config()


def test_file_values_are_typed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[mysql]
user = "backup"
connect_timeout = 3
[mysql.nodes.db1]
host = "10.0.0.1"
port = 3307
role = "primary"
[memcached]
servers = ["127.0.0.1:11211", "cache2:11211"]
""",
    )
    cfg = load(str(path), environ={}).config
    assert cfg.mysql.user == "backup"
    assert cfg.mysql.connect_timeout == 3.0
    assert cfg.mysql.nodes["db1"].port == 3307
    assert cfg.mysql.primary() == ("db1", cfg.mysql.nodes["db1"])
    assert cfg.memcached.servers == ["127.0.0.1:11211", "cache2:11211"]


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("[mysql]\nusr = 'x'\n", "mysql.usr", "unknown key"),
        ("[nosuch]\na = 1\n", "nosuch", "unknown key"),
        ("[mysql.nodes.a]\nport = 'x'\n", "mysql.nodes.a.port", "expected integer, got string"),
        ("[mysql.nodes.a]\nport = 0\n", "mysql.nodes.a.port", "below the minimum"),
        ("[mysql.nodes.a]\nrole = 'master'\n", "mysql.nodes.a.role", "is not one of"),
        ("[log]\nlevel = 3\n", "log.level", "expected string, got integer"),
        ("[memcached]\nservers = 'a:1'\n", "memcached.servers", "expected list of string"),
        ("[mysql]\npassword = 'hunter22'\n", "mysql.password", "secrets may not be written"),
        ("[mongo]\nuri = 'mongodb://u:pw@h/'\n", "mongo.uri", "holds a password"),
        (
            "[mongo.servers.b]\nuri = 'mongodb://u:pw@h/'\n",
            "mongo.servers.b.uri",
            "holds a password",
        ),
        ("[mongo.servers.b]\nusername = 'x'\n", "mongo.servers.b.uri", "missing required"),
        ("[mongo.servers.default]\nuri = 'mongodb://h/'\n", "mongo.servers.default", "[mongo]"),
        ("[memcached]\nservers = ['nohostport']\n", "memcached.servers[0]", "not HOST:PORT"),
    ],
)
def test_invalid_file_names_file_key_and_problem(
    tmp_path: Path, text: str, key: str, problem: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load(str(path), environ={})
    message = str(info.value)
    assert message.startswith(str(path))
    assert key in message and problem in message
    assert info.value.exit_code == ExitCode.USAGE
    assert "hunter22" not in message


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load(str(tmp_path / "nope.toml"), environ={})
    with pytest.raises(ConfigError, match="invalid TOML"):
        load(str(write(tmp_path, "[mysql\n")), environ={})


def test_two_primaries_are_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "[mysql.nodes.a]\nrole = 'primary'\n[mysql.nodes.b]\nrole = 'primary'\n")
    with pytest.raises(ConfigError, match="more than one primary: a, b"):
        load(str(path), environ={})


def test_env_overrides_with_types(tmp_path: Path) -> None:
    path = write(tmp_path, "[mysql.nodes.db1]\nport = 3306\n")
    env = {
        "DATATIER_MYSQL__NODES__DB1__PORT": "3310",
        "DATATIER_MYSQL__PASSWORD": "s3cr3t-pw",
        "DATATIER_MEMCACHED__SERVERS": "a:1, b:2",
        "DATATIER_S3__ENDPOINT_URL": "http://127.0.0.1:9000",
        "DATATIER_LOG__LEVEL": "debug",
        "DATATIER_CONFIG": "ignored-here",
    }
    loaded = load(str(path), environ=env)
    cfg = loaded.config
    assert cfg.mysql.nodes["db1"].port == 3310
    assert cfg.mysql.password.reveal() == "s3cr3t-pw"
    assert cfg.memcached.servers == ["a:1", "b:2"]
    assert cfg.s3.endpoint_url == "http://127.0.0.1:9000"
    assert "DATATIER_MYSQL__NODES__DB1__PORT" in loaded.source
    assert "s3cr3t-pw" in cfg.secrets()


def test_env_can_create_a_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = load(None, environ={"DATATIER_MYSQL__NODES__X__ROLE": "primary"}).config
    assert cfg.mysql.nodes["x"].role == "primary"


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("DATATIER_MYSQL__NODES__DB1__PORT", "abc", "expected an integer"),
        ("DATATIER_MYSQL__USR", "x", "unknown key 'mysql.usr'"),
        ("DATATIER_NOPE__X", "1", "unknown key 'nope'"),
        ("DATATIER_LOG__LEVEL", "loud", "is not one of"),
    ],
)
def test_bad_env_override_names_the_variable(
    name: str, value: str, problem: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load(None, environ={name: value})
    assert name in str(info.value) and problem in str(info.value)


def test_secret_files_are_read_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "pw").write_text("from-a-file\n")
    path = write(tmp_path, "[mysql]\npassword_file = 'secrets/pw'\n")
    assert load(str(path), environ={}).config.mysql.password.reveal() == "from-a-file"
    missing = write(tmp_path, "[mysql]\npassword_file = 'secrets/none'\n")
    with pytest.raises(ConfigError, match=r"mysql\.password_file: cannot read secret file"):
        load(str(missing), environ={})


def test_secret_files_that_never_end_or_are_not_text_are_config_errors(tmp_path: Path) -> None:
    """``identity_file = /dev/zero`` was an unexpected MemoryError (exit 1)."""
    path = write(tmp_path, "[encryption]\nidentity_file = '/dev/zero'\n")
    with pytest.raises(ConfigError, match=r"identity_file: secret file /dev/zero holds more"):
        load(str(path), environ={})
    (tmp_path / "latin1").write_bytes(b"caf\xe9")
    path = write(tmp_path, "[mysql]\npassword_file = 'latin1'\n")
    with pytest.raises(ConfigError, match=r"password_file: secret file .* is not UTF-8"):
        load(str(path), environ={})


def test_an_empty_secret_file_is_set_though_empty(tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")
    path = write(tmp_path, "[encryption]\nidentity_file = 'empty'\n")
    identity = load(str(path), environ={}).config.encryption.identity
    assert identity.reveal() == "" and identity.given
    assert not load(str(write(tmp_path, "")), environ={}).config.encryption.identity.given


def test_a_secret_and_its_file_both_in_the_environment_are_refused(tmp_path: Path) -> None:
    """Before, the file silently won."""
    (tmp_path / "pw").write_text("file-value")
    env = {"DATATIER_MYSQL__PASSWORD": "env", "DATATIER_MYSQL__PASSWORD_FILE": str(tmp_path / "pw")}
    with pytest.raises(ConfigError, match="DATATIER_MYSQL__PASSWORD is set too"):
        load(str(write(tmp_path, "")), environ=env)


def test_env_secret_beats_file_secret(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("file-value")
    path = write(tmp_path, "[mysql]\npassword_file = 'pw'\n")
    cfg = load(str(path), environ={"DATATIER_MYSQL__PASSWORD": "env-value"}).config
    assert cfg.mysql.password.reveal() == "env-value"


def test_redacted_rendering_round_trips_and_hides_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = {
        "DATATIER_S3__SECRET_ACCESS_KEY": "AKIAVERYSECRET",
        "DATATIER_MYSQL__NODES__P__PORT": "1",
    }
    cfg = load(None, environ=env).config
    text = dumps_toml(to_plain(cfg))
    assert "AKIAVERYSECRET" not in text
    parsed = tomllib.loads(text)
    assert parsed["s3"]["secret_access_key"] == "***"
    assert parsed["mysql"]["nodes"]["p"]["port"] == 1  # env keys are lower-cased


def test_secret_never_prints_itself() -> None:
    secret = Secret("topsecret")
    assert "topsecret" not in repr(secret) and "topsecret" not in str(secret)
    assert f"{secret}" == "Secret('***')"
    assert secret.reveal() == "topsecret"


def test_named_mongo_servers(tmp_path: Path) -> None:
    """[mongo] is the default deployment; [mongo.servers.NAME] are further ones, with their
    own credentials, reachable by name (``default`` = [mongo]); env can add one."""
    secret = tmp_path / "m2.pw"
    secret.write_text("m2-s3cret\n")
    path = write(
        tmp_path,
        """
[mongo]
uri = "mongodb://main:27017/"
[mongo.servers.analytics]
uri = "mongodb://a1:27017,a2:27017/?replicaSet=rs1"
username = "backup"
password_file = "m2.pw"
""",
    )
    env = {"DATATIER_MONGO__SERVERS__LOGS__URI": "mongodb://logs:27017/"}
    cfg = load(str(path), environ=env).config
    assert cfg.mongo.server().uri == cfg.mongo.server("default").uri == "mongodb://main:27017/"
    analytics = cfg.mongo.server("analytics")
    assert analytics.username == "backup" and analytics.password.reveal() == "m2-s3cret"
    assert analytics.server_selection_timeout == 5.0
    assert cfg.mongo.server("logs").uri == "mongodb://logs:27017/"
    assert "m2-s3cret" in cfg.secrets()
    with pytest.raises(UsageError, match="no MongoDB server 'nosuch'") as info:
        cfg.mongo.server("nosuch")
    assert info.value.hint == "known: default, analytics, logs"


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("127.0.0.1:3306", ("127.0.0.1", 3306)), ("[::1]:1", ("::1", 1)), ("h:65535", ("h", 65535))],
)
def test_host_port_forms_parse(text: str, parsed: tuple[str, int]) -> None:
    assert split_host_port(text) == parsed


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("127.0.0.1:99999", "port 99999 is out of range (1-65535)"),
        ("127.0.0.1:0", "port 0 is out of range"),
        ("127.0.0.1:", "the port '' is not a number"),
        ("127.0.0.1:\uff13\uff13", "is not a number"),  # full-width digits pass str.isdigit
        (":3306", "is not HOST:PORT"),
        ("host", "is not HOST:PORT"),
    ],
)
def test_bad_host_port_forms_say_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        split_host_port(text)
