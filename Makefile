# Entry points: `make deps`, `make build`, `make test` (the CI command), `make demo`, `make format`.
.PHONY: all deps build test demo format clean

JOBS ?= 2
BUILD_DIR ?= build

all: build

deps:
	scripts/deps.sh

build:
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BUILD_DIR) -j$(JOBS)

test:
	scripts/test.sh

demo:
	scripts/demo.sh

format:
	git ls-files -co --exclude-standard -- '*.h' '*.cpp' '*.cu' '*.cuh' | xargs -r clang-format -i

clean:
	rm -rf build build-asan
