# Pollen: `make run` serves the platform with its embedded defaults, `make test` runs the suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
SUPERNODES ?= 2

.PHONY: run test setup setup-dev migrate demo check-deploy bench protos clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.deps: requirements.txt constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.deps-dev: requirements.txt requirements-dev.txt $(VENV)/.deps
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

setup: $(VENV)/.deps
setup-dev: $(VENV)/.deps-dev

migrate: setup
	$(BIN)/python manage.py migrate --noinput

demo: migrate
	$(BIN)/python manage.py seed_demo

run: demo
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/python manage.py runplatform --host $(HOST) --port $(PORT) --supernodes $(SUPERNODES)

test: setup-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

check-deploy: setup
	POLLEN_ENV=production SECRET_KEY=$$($(BIN)/python -c 'import secrets;print(secrets.token_urlsafe(64))') \
	ALLOWED_HOSTS=pollen.example.com $(BIN)/python manage.py check --deploy --fail-level WARNING

bench: setup-dev
	$(BIN)/python benchmarks/api_list.py
	$(BIN)/python benchmarks/engine.py
	$(BIN)/python benchmarks/aggregate.py
	$(BIN)/python benchmarks/update_ingest.py
	$(BIN)/python benchmarks/budget_summary.py

# The device gRPC service's Python code, from protos/ (the generated modules are committed).
# grpcio-tools is a codegen tool only: 1.81.1 is the newest that works with protobuf 6.33.
GRPC_TOOLS ?= grpcio-tools==1.81.1
GRPC_PKG   := nodes/protocol/grpc
protos: setup
	$(BIN)/python -c "import grpc_tools" 2>/dev/null || $(BIN)/pip install --quiet "$(GRPC_TOOLS)"
	$(BIN)/python -m grpc_tools.protoc -Iprotos --python_out=$(GRPC_PKG) --pyi_out=$(GRPC_PKG) \
		--grpc_python_out=$(GRPC_PKG) protos/wia/federatedlearning/v1/federated_learning.proto
	mv $(GRPC_PKG)/wia/federatedlearning/v1/federated_learning_pb2* $(GRPC_PKG)/
	rm -rf $(GRPC_PKG)/wia
	sed -i 's/^from wia\.federatedlearning\.v1 import/from . import/' $(GRPC_PKG)/federated_learning_pb2_grpc.py

clean:
	rm -rf $(VENV) var
