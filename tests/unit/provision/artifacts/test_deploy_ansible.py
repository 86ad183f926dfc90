"""`deploy render ansible` without a host: ansible-lint (production profile) and Ansible's
syntax check pass on the rendered role and playbook, the config template renders into a
config datatier loads (secrets from files, optional ones left out), no secret of the source
config reaches a rendered file, and policies the role cannot place are refused at render
with nothing written. Applied for real: tests/integration/test_deploy_ansible.py."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

from datatier.backup.policy import load_policy
from datatier.cli import main
from datatier.config import MySQLNode, MySQLSettings, load
from datatier.provision.artifacts.ansible import AnsibleRenderer
from datatier.provision.artifacts.ansible.layout import Layout
from datatier.provision.artifacts.base import RenderContext

ROOT = Path(__file__).resolve().parents[4]
EXAMPLE_CONFIG = ROOT / "deploy" / "example" / "datatier.toml"
BIN = Path(sys.executable).parent
ROLE = Path("ansible/roles/datatier")


def need(tool: str) -> str:
    path = BIN / tool
    if not path.exists():
        reason = f"{tool} is not installed (the test extra of setup.cfg)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return str(path)


def render(out: Path, config: Path, *extra: str) -> int:
    return main(
        ["--config", str(config), "deploy", "render", "ansible", "--output-dir", str(out), *extra]
    )


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("DATATIER_CONFIG", raising=False)
    assert render(tmp_path / "out", EXAMPLE_CONFIG) == 0
    return tmp_path / "out" / "ansible"


def test_ansible_lint_and_syntax_check_pass(example: Path, tmp_path: Path) -> None:
    lint = need("ansible-lint")
    env = {**os.environ, "ANSIBLE_HOME": str(tmp_path / "home"), "NO_COLOR": "1"}
    argv = [lint, "--offline", "--profile", "production", "--nocolor"]
    linted = subprocess.run(argv, cwd=example, env=env, capture_output=True, text=True)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert "Profile 'production' was required, and it passed" in linted.stdout + linted.stderr
    syntax = subprocess.run(
        [need("ansible-playbook"), "--syntax-check", "-i", "inventory.ini", "site.yml"],
        cwd=example,
        env=env,
        capture_output=True,
        text=True,
    )
    assert syntax.returncode == 0, syntax.stdout + syntax.stderr
    # The lint bites: a command task that always reports a change is refused.
    spoiled = tmp_path / "spoiled"
    shutil.copytree(example, spoiled)
    main_yml = spoiled / "roles/datatier/tasks/main.yml"
    main_yml.write_text(main_yml.read_text().replace("changed_when: false", "tags: [x]", 1))
    spoiled_run = subprocess.run(argv, cwd=spoiled, env=env, capture_output=True, text=True)
    assert spoiled_run.returncode != 0 and "no-changed-when" in spoiled_run.stdout


def test_the_role_reuses_the_systemd_units_and_ships_the_policies(
    example: Path, tmp_path: Path
) -> None:
    assert (
        main(
            [
                "--config",
                str(EXAMPLE_CONFIG),
                "deploy",
                "render",
                "systemd",
                "--output-dir",
                str(tmp_path),
            ]
        )
        == 0
    )
    rendered = {p.name: p.read_text() for p in (tmp_path / "systemd").iterdir()}
    shipped = {p.name: p.read_text() for p in (example / "roles/datatier/files/systemd").iterdir()}
    assert shipped == rendered
    constants = load_yaml(example / "roles/datatier/vars/main.yml")
    assert constants["datatier_units"] == sorted(rendered)
    assert constants["datatier_policies"] == ["analytics", "app-mongo", "shop"]
    for name in constants["datatier_policies"]:
        policy = EXAMPLE_CONFIG.parent / "backups" / f"{name}.toml"
        assert (
            example / f"roles/datatier/files/backups/{name}.toml"
        ).read_text() == policy.read_text()
    # The example places each policy on its source node's host, the one-per-tier services
    # on the primary's.
    hosts = {p.stem: load_yaml(p) for p in (example / "host_vars").iterdir()}
    assert hosts["db2"]["datatier_backup_policies"] == ["shop"]
    assert hosts["db3"]["datatier_backup_policies"] == ["analytics"]
    assert hosts["db1"] == {
        "datatier_backup_policies": ["app-mongo"],
        "datatier_heartbeat": True,
        "datatier_binlog_archiver": True,
    }
    assert "db1 ansible_host=10.0.0.11" in (example / "inventory.ini").read_text()


def test_argument_specs_agree_with_the_defaults(example: Path) -> None:
    defaults = load_yaml(example / "roles/datatier/defaults/main.yml")
    options = load_yaml(example / "roles/datatier/meta/argument_specs.yml")["argument_specs"][
        "main"
    ]["options"]
    for name, value in defaults.items():
        assert options[name]["default"] == value, name
    secrets = {n: o for n, o in options.items() if o.get("no_log")}
    assert secrets["datatier_mysql_password"]["required"] is True  # MySQL nodes exist
    assert "required" not in secrets["datatier_s3_secret_access_key"]  # instance roles work
    assert not set(secrets) & set(defaults), "a secret has a default"
    group_vars = load_yaml(example / "group_vars/datatier/vars.yml")
    assert group_vars["datatier_mysql_password"] == "{{ vault_datatier_mysql_password }}"


def packages(role: Path, **values: Any) -> list[str]:
    """``datatier_packages`` as Ansible computes it from the role's vars and ``values``."""
    env = jinja2.Environment(autoescape=False)
    scope: dict[str, Any] = {**load_yaml(role / "defaults/main.yml"), **values}
    constants = load_yaml(role / "vars/main.yml")
    for name in ("datatier_client_packages", "datatier_pip_packages"):
        scope[name] = constants[name]
    for name in ("datatier_method_packages", "datatier_packages"):
        scope[name] = env.compile_expression(constants[name].strip("{} "))(**scope)
    result: list[str] = scope["datatier_packages"]
    return result


def test_packages_follow_the_install_method_and_encryption(example: Path) -> None:
    role = example / "roles/datatier"
    pip = packages(role)
    for tool in ("mariadb-client", "mariadb-backup", "zstd", "python3-venv", "libmariadb-dev"):
        assert tool in pip
    assert "age" not in pip and "podman" not in pip
    image = packages(role, datatier_install_method="image", datatier_encryption=True)
    assert "podman" in image and "age" in image and "python3-venv" not in image


def test_config_template_gives_a_config_datatier_loads(tmp_path: Path) -> None:
    (tmp_path / "backups").mkdir()
    (tmp_path / "backups" / "shop.toml").write_text(
        'engine = "mysql"\nschedule = "15 2 * * *"\n[source]\nnode = "db1"\n'
    )
    (tmp_path / "pw").write_text("not-in-the-role\n")
    source = tmp_path / "datatier.toml"
    source.write_text(
        '[mysql]\npassword_file = "pw"\nuser = "bk"\n[mysql.nodes.db1]\nrole = "primary"\n'
        '[s3]\nregion = "eu-west-1"\n[notify]\ncommand = "logger {{ not jinja }}"\n'
        '[backup]\ndefault_store = "s3://b/p"\n'
    )
    target = tmp_path / "target" / "etc"
    config_path = target / "datatier.toml"
    assert render(tmp_path / "out", source, "--config-path", str(config_path)) == 0
    role = tmp_path / "out" / ROLE
    for path in (tmp_path / "out").rglob("*"):
        assert not path.is_file() or "not-in-the-role" not in path.read_text(), path
    template = (role / "templates/datatier.toml.j2").read_text()
    env = jinja2.Environment(trim_blocks=True, autoescape=False)
    # As the role writes it: secret files from the Vault variables given, here the
    # MySQL password and the S3 secret key but not the access key ID.
    given = {"datatier_mysql_password": "from-the-vault", "datatier_s3_secret_access_key": "sk"}
    layout = Layout(config_path=str(config_path), binary="/x", user="datatier")
    Path(layout.secrets_dir).mkdir(parents=True)
    Path(layout.policies_dir).mkdir()
    for var, value in given.items():
        name = var.removeprefix("datatier_").replace("_", "-")
        (Path(layout.secrets_dir) / name).write_text(value)
    config_path.write_text(env.from_string(template).render(**given))
    loaded = load(str(config_path), environ={}).config
    assert loaded.mysql.password.reveal() == "from-the-vault"
    assert loaded.s3.secret_access_key.reveal() == "sk"
    assert not loaded.s3.access_key_id
    assert loaded.mysql.user == "bk" and loaded.s3.region == "eu-west-1"
    assert loaded.notify.command == "logger {{ not jinja }}"  # verbatim through {% raw %}
    assert loaded.backup.policies_dir == layout.policies_dir
    # Without the required password variable the argument specs stop the role.
    options = load_yaml(role / "meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    assert options["datatier_mysql_password"]["required"] is True


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (
            'engine = "mysql"\nschedule = "@daily"\n[source]\nnode = "db9"\n',
            "shop.toml: source.node: unknown node 'db9'",
        ),
        (
            'engine = "mongo"\nschedule = "@daily"\n[source]\nserver = "nope"\n',
            "shop.toml: source.server: unknown MongoDB server 'nope'",
        ),
        (
            'engine = "mysql"\nschedule = "@daily"\nstore = "file:///tmp/bk"\n'
            '[source]\nnode = "db1"\n',
            "under a private /tmp of the systemd units",
        ),
    ],
)
def test_a_policy_the_role_cannot_place_renders_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], policy: str, message: str
) -> None:
    (tmp_path / "backups").mkdir()
    (tmp_path / "backups" / "shop.toml").write_text(policy)
    config = tmp_path / "datatier.toml"
    config.write_text('[mysql.nodes.db1]\nrole = "primary"\n[backup]\ndefault_store = "s3://b/p"\n')
    out = tmp_path / "out"
    assert render(out, config) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) <= 2, err
    assert not out.exists(), "nothing was written"


def test_a_file_store_is_a_directory_the_role_creates(tmp_path: Path) -> None:
    (tmp_path / "backups").mkdir()
    (tmp_path / "backups" / "shop.toml").write_text(
        'engine = "mysql"\nschedule = "@daily"\nstore = "file:///var/backups/dt"\n'
        '[source]\nnode = "db1"\n'
    )
    config = tmp_path / "datatier.toml"
    config.write_text('[mysql.nodes.db1]\nrole = "primary"\n[backup]\ndefault_store = "s3://b/p"\n')
    assert render(tmp_path / "out", config) == 0
    role = tmp_path / "out" / ROLE
    assert load_yaml(role / "vars/main.yml")["datatier_file_stores"] == ["/var/backups/dt"]
    wrapper = (role / "templates/datatier-image.sh.j2").read_text()
    assert "--volume /var/backups/dt:/var/backups/dt" in wrapper


def test_image_wrapper_runs_the_image_as_the_units_expect(tmp_path: Path) -> None:
    """The image mode's binary, rendered as Ansible renders it, run with a stand-in
    ``podman`` that prints its arguments (no image runs here: podman itself is exercised
    by tests/integration/test_deploy_image.py)."""
    (tmp_path / "backups").mkdir()
    (tmp_path / "backups" / "shop.toml").write_text(
        'engine = "mysql"\nschedule = "@daily"\nstore = "file:///var/backups/dt"\n'
        '[source]\nnode = "db1"\n'
    )
    config = tmp_path / "datatier.toml"
    config.write_text('[mysql.nodes.db1]\nrole = "primary"\n[backup]\ndefault_store = "s3://b/p"\n')
    assert render(tmp_path / "out", config, "--user", "root", "--metrics-dir", "/var/lib/ne") == 0
    env = jinja2.Environment(trim_blocks=True, autoescape=False)
    env.filters["quote"] = shlex.quote
    template = (tmp_path / "out" / ROLE / "templates/datatier-image.sh.j2").read_text()
    wrapper = tmp_path / "datatier"
    wrapper.write_text(
        env.from_string(template).render(
            datatier_image="registry.example/datatier:1.0", datatier_image_volumes=["/a b:/c"]
        )
    )
    wrapper.chmod(0o755)
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "podman").write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    (fake / "podman").chmod(0o755)
    path = f"{fake}:{os.environ['PATH']}"
    ran = subprocess.run(
        [str(wrapper), "backup", "run", "shop"],
        env={**os.environ, "PATH": path},
        capture_output=True,
        text=True,
        check=True,
    )
    argv = ran.stdout.splitlines()
    assert argv[:4] == ["run", "--rm", "--network", "host"]
    assert argv[argv.index("--user") + 1] == "0:0"
    volumes = [argv[i + 1] for i, a in enumerate(argv) if a == "--volume"]
    assert volumes == [
        "/etc/datatier:/etc/datatier:ro",
        "/var/backups/dt:/var/backups/dt",
        "/var/lib/ne:/var/lib/ne",
        "/a b:/c",
    ]
    assert "DATATIER_CONFIG=/etc/datatier/datatier.toml" in argv
    assert argv[-4:] == ["registry.example/datatier:1.0", "backup", "run", "shop"]


def test_encryption_recipients_turn_age_on_by_default(tmp_path: Path) -> None:
    """With ``[encryption]`` recipients in the config the role installs age unless told
    otherwise (rendered straight from a config document: the section is another branch's)."""
    policy = tmp_path / "shop.toml"
    policy.write_text('engine = "mysql"\nschedule = "@daily"\n[source]\nnode = "db1"\n')
    loaded = load_policy(policy, "s3://b/p")
    mysql = MySQLSettings(nodes={"db1": MySQLNode(role="primary")})

    def defaults(doc: dict[str, Any]) -> dict[str, Any]:
        ctx = RenderContext(policies=(loaded,), mysql=mysql, config_doc=doc)
        files = AnsibleRenderer().render(ctx)
        result: dict[str, Any] = yaml.safe_load(files[f"{ROLE}/defaults/main.yml"])
        return result

    assert defaults({})["datatier_encryption"] is False
    on = defaults({"encryption": {"recipients": ["age1example"]}})
    assert on["datatier_encryption"] is True
