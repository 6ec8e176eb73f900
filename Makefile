# geoscribe: the two commands of the README, each of which sets up and builds first.
#   make test   install dependencies, build, run the test suite, then again under ASan+UBSan
#   make demo   install dependencies, build, run the demo (see README)
# Other targets: setup, build, asan, check (tests of the normal build only), clean.
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=

.PHONY: all setup build asan check check-asan test demo clean format

all: build

setup:
	./deploy/setup.sh

build: setup
	cmake -S . -B $(BUILD) -DGS_WERROR=ON $(CMAKE_ARGS) >/dev/null
	cmake --build $(BUILD) -j$(JOBS)

asan: setup
	cmake -S . -B $(ASAN_BUILD) -DGS_WERROR=ON -DGS_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug $(CMAKE_ARGS) >/dev/null
	cmake --build $(ASAN_BUILD) -j$(JOBS)

check: build
	cd $(BUILD) && ctest --output-on-failure

check-asan: asan
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 OMPI_MCA_mca_base_component_disable_dlclose=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure

test: check check-asan

demo: build
	./deploy/demo.sh $(BUILD)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
