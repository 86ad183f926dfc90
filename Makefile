# datatier: every target installs what it needs and is safe to run again.
#   make demo   bring the sandbox of real servers up and run the main job end to end
#   make test   install everything, then run unit + integration tests (on local processes, then
#               again with every server in a container), lint and type checks
#   make demo PORT_BASE=N BACKEND=containers   the same demo on other ports / in containers
SHELL := /bin/bash
# Debian's own interpreter, the one python3-venv and python3-dev below serve. A python3 put
# first on PATH by pyenv and the like is often built without PGO/LTO: on this project's CI
# machine pyenv's 3.11.7 took ~12 % longer for a 1M-row `backup run` than Debian's 3.11.2
# (and ~25 % longer on pure-Python loops).
PYTHON ?= /usr/bin/python3
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := mariadb-server mariadb-client mariadb-backup memcached haproxy zstd age \
	mydumper percona-toolkit libmariadb-dev pkg-config build-essential python3-dev python3-venv systemd \
	openssl util-linux openjdk-17-jdk-headless maven time openssh-client
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export DATATIER_FERRETDB := $(CURDIR)/.bin/ferretdb
export DATATIER_MONGO_JAVA_SERVER := $(CURDIR)/.bin/mongo-java-server

PORT_BASE ?=
BACKEND ?=

.PHONY: help deps venv ferretdb mongo-java-server sandbox-deps bench-tools podman images test unit lint type demo down clean

help:
	@echo "make demo [PORT_BASE=N] [BACKEND=containers] | test | unit | lint | type | images | bench-tools | down | clean"

# Debian packages: the MariaDB servers and clients, memcached, haproxy, zstd, mydumper, and
# what pip needs to build mysqlclient (the C MySQL driver the cache warmer reads with);
# systemd for `systemd-analyze verify` of the rendered units; openssl (a test CA for the TLS
# tests) and util-linux (`unshare`, for the full-disk test); Java 17 and Maven for the
# sandbox's second MongoDB-protocol server (mongo-java-server); age (the stock tool that
# decrypts encrypted backups, used by the tests of that path); openssh-client, through which
# the Ansible test reaches its target container.
deps:
	@if ! dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then \
		echo "installing Debian packages: $(APT_PACKAGES)"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	fi

$(BIN)/.installed: setup.cfg pyproject.toml | deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,sandbox,lint]' tox
	touch $@

venv: $(BIN)/.installed

# No mongod in Debian: build FerretDB (MongoDB wire protocol over SQLite) into .bin/.
ferretdb: deps
	@if command -v mongod >/dev/null; then echo "mongod found: FerretDB not needed"; \
	else ./scripts/install-ferretdb.sh >/dev/null; fi

# The sandbox's second MongoDB-protocol server: mongo-java-server's jars fetched with Maven,
# its small wrapper compiled with javac, into .bin/mongo-java-server (cached).
mongo-java-server: deps
	./scripts/install-mongo-java-server.sh

sandbox-deps: deps venv ferretdb mongo-java-server

# For the benchmarks only (`--s3 gofakes3`, benchmarks/s3_server.py): gofakes3, a Go in-memory
# S3 server whose requests cost a tenth of moto's CPU, into .bin/ (cached).
GOFAKES3 := github.com/johannesboyne/gofakes3/cmd/gofakes3@v1.2.0
bench-tools: sandbox-deps
	@test -x .bin/gofakes3 || PATH="$$PATH:/usr/local/go/bin" GOFLAGS=-mod=mod \
		GOBIN=$(CURDIR)/.bin go install $(GOFAKES3)

# The container engine of the sandbox's containers backend and of the image tests: podman
# with runc, debootstrap, and the drop-in that makes podman work here (see the script).
podman:
	./scripts/install-podman.sh

# The containers backend's images, built from Debian packages where no registry is reachable.
# Tags are content hashes of the recipes: when nothing changed this takes a second.
images: podman sandbox-deps
	$(BIN)/datatier sandbox images --build

# py311: unit + integration tests, servers as local processes (plus the deploy image built
# with podman); containers: the integration tests again, every server in a container.
# The passes run side by side (tox prints a pass's whole output when it fails): one after
# the other they took 84 minutes, each with the machine's two cores about 43 % busy.
test: sandbox-deps podman images
	$(BIN)/tox run-parallel --parallel all --parallel-no-spinner -e py311,containers,lint,type

unit: venv
	$(BIN)/pytest tests/unit -q

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

type: venv
	$(BIN)/mypy

demo: sandbox-deps $(if $(filter containers,$(BACKEND)),images)
	PORT_BASE="$(PORT_BASE)" BACKEND="$(BACKEND)" ./scripts/demo.sh

# Stops the sandbox named by the config in use ($$DATATIER_CONFIG), else .sandbox.
down: venv
	$(BIN)/datatier sandbox down

clean: down
	rm -rf .sandbox .tox .bin $(VENV)
