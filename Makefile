# datatier: every target installs what it needs and is safe to run again.
#   make demo   bring the sandbox of real servers up and run the main job end to end
#   make test   install everything, then run unit + integration tests, lint and type checks
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := mariadb-server mariadb-client mariadb-backup memcached haproxy zstd \
	mydumper percona-toolkit libmariadb-dev pkg-config build-essential python3-dev python3-venv systemd \
	openssl util-linux openjdk-17-jdk-headless maven
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export DATATIER_FERRETDB := $(CURDIR)/.bin/ferretdb
export DATATIER_MONGO_JAVA_SERVER := $(CURDIR)/.bin/mongo-java-server

.PHONY: help deps venv ferretdb mongo-java-server sandbox-deps test unit lint type demo down clean

help:
	@echo "make demo | test | unit | lint | type | down | clean"

# Debian packages: the MariaDB servers and clients, memcached, haproxy, zstd, mydumper, and
# what pip needs to build mysqlclient (the C MySQL driver the cache warmer reads with);
# systemd for `systemd-analyze verify` of the rendered units; openssl (a test CA for the TLS
# tests) and util-linux (`unshare`, for the full-disk test); Java 17 and Maven for the
# sandbox's second MongoDB-protocol server (mongo-java-server).
deps:
	@if ! dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then \
		echo "installing Debian packages: $(APT_PACKAGES)"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	fi

$(BIN)/.installed: setup.cfg pyproject.toml
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

test: sandbox-deps
	$(BIN)/tox -e py311,lint,type

unit: venv
	$(BIN)/pytest tests/unit -q

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

type: venv
	$(BIN)/mypy

demo: sandbox-deps
	./scripts/demo.sh

down: venv
	$(BIN)/datatier sandbox down

clean: down
	rm -rf .sandbox .tox .bin $(VENV)
