# geoscribe: the two commands of the README, each of which sets up and builds first.
#   make test   install dependencies, build, run the test suite, then again under ASan+UBSan
#   make demo   install dependencies, build, run the demo (see README)
# Other targets: setup, build, asan, check (tests of the normal build only), fuzz, clean.
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=

.PHONY: all setup build asan check check-asan fuzz test demo clean format

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
# Open MPI (also a singleton MPI_Init without mpirun) leaks on purpose at exit: exact stacks
# (fast_unwind_on_malloc=0) and components kept loaded let tests/lsan.supp match those leaks.
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:fast_unwind_on_malloc=0 \
	  OMPI_MCA_mca_base_component_disable_dlclose=1 PMIX_MCA_mca_base_component_disable_dlclose=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure

# libFuzzer targets of tests/fuzz (clang, ASan+UBSan), each for a bounded time: about
# GS_FUZZ_TOTAL_S (100) seconds of wall time for all of them, two at a time.
fuzz: setup
	cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
	  -DGS_WERROR=ON -DGS_FUZZ=ON $(CMAKE_ARGS) >/dev/null
	cmake --build $(FUZZ_BUILD) -j$(JOBS) --target gs_fuzz
	cd $(FUZZ_BUILD) && ctest -L fuzz -j2 --output-on-failure

test: check check-asan fuzz

demo: build
	./deploy/demo.sh $(BUILD)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
