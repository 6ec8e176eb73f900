# Third-party libraries, all from Debian packages (deploy/setup.sh installs them). Each target is
# linked by the one module that may include its headers.
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
find_package(MPI REQUIRED COMPONENTS C)
find_package(GDAL CONFIG REQUIRED)
find_package(RocksDB CONFIG REQUIRED)
find_package(OpenMP REQUIRED)          # before faiss: its config needs OpenMP::OpenMP_CXX
find_package(faiss CONFIG REQUIRED)
find_package(ZLIB REQUIRED)
pkg_check_modules(ZMQ REQUIRED IMPORTED_TARGET libzmq)
pkg_check_modules(PROTOBUFC REQUIRED IMPORTED_TARGET libprotobuf-c)
pkg_check_modules(CHECK REQUIRED IMPORTED_TARGET check)
pkg_check_modules(OPENBLAS REQUIRED IMPORTED_TARGET openblas)
pkg_check_modules(JANSSON REQUIRED IMPORTED_TARGET jansson)
pkg_check_modules(YAML REQUIRED IMPORTED_TARGET yaml-0.1)
pkg_check_modules(MHD IMPORTED_TARGET libmicrohttpd)
find_program(PROTOC_C protoc-c REQUIRED)

# The FAISS C API, built by deploy/setup.sh from Debian's faiss source package.
find_library(FAISS_C_LIB faiss_c PATHS "${GS_DEPS_PREFIX}/faiss-c/lib" NO_DEFAULT_PATH)
if(NOT FAISS_C_LIB)
  message(FATAL_ERROR "libfaiss_c.a not found under ${GS_DEPS_PREFIX}/faiss-c: run deploy/setup.sh")
endif()
add_library(gs_faiss_c STATIC IMPORTED)
set_target_properties(gs_faiss_c PROPERTIES IMPORTED_LOCATION "${FAISS_C_LIB}")
target_link_libraries(gs_faiss_c INTERFACE faiss OpenMP::OpenMP_CXX)
