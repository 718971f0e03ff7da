# Thin wrapper over CMake (the source of truth).
#   make train    the main job: selfsup train (SimCLR on Fashion-MNIST) + what it learned
#   make demo     every loss on random data + benchmark table
#   make check    build and run every test (installs missing Debian packages)
#   make check-sanitize   the same under AddressSanitizer + UBSan
#   make install  PREFIX=/usr/local
BUILD   ?= build
PREFIX  ?= /usr/local
JOBS    ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps build check check-sanitize train demo bench install clean

all: build

deps:
	@scripts/install-deps

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_INSTALL_PREFIX=$(PREFIX) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

check: build
	cd $(BUILD) && ctest --output-on-failure -j 1

check-sanitize: deps
	@cmake -S . -B $(BUILD)-san -DCMAKE_BUILD_TYPE=Debug \
	    -DSS_SANITIZE=address,undefined $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD)-san -j $(JOBS)
	cd $(BUILD)-san && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j 1

train: build
	$(BUILD)/selfsup train

demo: build
	$(BUILD)/selfsup demo

install: build
	cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) $(BUILD)-san
