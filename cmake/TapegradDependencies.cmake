# Every dependency comes from Debian's packages, which scripts/install-deps.sh installs. A missing
# one stops the configuration with the name of the package to install.

# find_package(name ARGN) that, when the package is missing, names the Debian package providing it.
macro(tg_require name debian_package)
  find_package(${name} ${ARGN} QUIET)
  if(NOT ${name}_FOUND)
    message(FATAL_ERROR "tapegrad needs ${name}, which was not found: install Debian's package ${debian_package} "
                        "(apt-get install ${debian_package}), or run scripts/install-deps.sh for all of them.")
  endif()
endmacro()

tg_require(Threads libc6-dev)
tg_require(xtl xtl-dev)
tg_require(xtensor libxtensor-dev)
tg_require(xsimd libxsimd-dev)  # SIMD kernels (kernels/simd.hpp), private to the library
tg_require(fmt libfmt-dev)
tg_require(ZLIB zlib1g-dev)
tg_require(CURL libcurl4-openssl-dev)
tg_require(OpenSSL libssl-dev COMPONENTS Crypto)
tg_require(nlohmann_json nlohmann-json3-dev)

# OpenBLAS: the plain library and cblas.h (float64 products, kernels/blas.cpp).
find_library(TG_OPENBLAS_LIBRARY NAMES openblas)
find_path(TG_CBLAS_INCLUDE_DIR NAMES cblas.h PATH_SUFFIXES openblas-pthread openblas)
if(NOT TG_OPENBLAS_LIBRARY OR NOT TG_CBLAS_INCLUDE_DIR)
  message(FATAL_ERROR "tapegrad needs OpenBLAS (libopenblas.so and cblas.h), which was not found: install Debian's "
                      "package libopenblas-dev, or run scripts/install-deps.sh for all of them.")
endif()
add_library(tg_blas INTERFACE)
target_link_libraries(tg_blas INTERFACE ${TG_OPENBLAS_LIBRARY})
target_include_directories(tg_blas INTERFACE ${TG_CBLAS_INCLUDE_DIR})

# oneDNN (Debian's libdnnl-dev, the build PyTorch uses) for float32 GEMMs and convolutions with
# many input channels. Its CMake package requires OpenCL's (a GPU runtime tapegrad does not use),
# whose headers and library come from a package that libdnnl-dev only recommends.
tg_require(OpenCL ocl-icd-opencl-dev)
tg_require(dnnl libdnnl-dev CONFIG)
# oneDNN's CPU runtime is OpenMP: its API is used only to run oneDNN on one thread per call
# (kernels/omp_guard.hpp). libgomp comes with the compiler.
tg_require(OpenMP "g++ (libgomp)" COMPONENTS CXX)

# Open MPI (Debian's libopenmpi-dev and openmpi-bin) for data-parallel training (distributed/).
# Optional: without it the library builds with a world of one process, and the distributed tests
# are skipped, saying so.
# MPI's C API through the C++ compiler; the deprecated MPI C++ bindings are left out.
set(MPI_CXX_SKIP_MPICXX ON)
find_package(MPI COMPONENTS CXX QUIET)
if(MPI_CXX_FOUND)
  set(TG_MPI_FOUND ON)
  # What the tests and examples run under mpiexec need: Open MPI refuses to start as root (the CI
  # root is root) unless told it may, and more ranks than cores are allowed for correctness tests.
  # Under AddressSanitizer, Open MPI's own allocations that live until exit are not leaks of ours.
  set(TG_MPI_TEST_ENVIRONMENT
      "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_rmaps_base_oversubscribe=1")
  if(TG_SANITIZE)
    string(APPEND TG_MPI_TEST_ENVIRONMENT ";ASAN_OPTIONS=detect_leaks=0")
  endif()
else()
  set(TG_MPI_FOUND OFF)
  message(STATUS "tapegrad: MPI not found: building without distributed training (install libopenmpi-dev and "
                 "openmpi-bin, or run scripts/install-deps.sh, to have it)")
endif()
